"""Partition values as path segments: escaped, never replaced, so two values never share a folder.

`BTC/USDT` and `BTC-USDT` are different symbols of one exchange and must not meet in one partition
(issue 17: mapping `/` to `-` made BTC/USDT's trades vanish under BTC-USDT's). Values are escaped the
way Hive (and Spark, DuckLake) escape partition paths: `%` + two hex digits for `/`, `=`, `%`, `:` and
the other characters Hive escapes, so `BTC/USDT` → `BTC%2FUSDT`; `-` and alphanumerics stay as they
are. Escaping is injective and `unescape` reverses it.

Lakes written before this spelled `/` as `-`. Their manifests still name those folders and files,
so they stay readable as they are; `rekey` moves such a partition to its new id (from the keys the
manifest stored), and its next rebuild writes under the new folder and retires the old files.
"""

from __future__ import annotations

from urllib.parse import unquote

# Hive's FileUtils.escapePathName set, plus space and control characters (unsafe in S3 keys too).
_ESCAPE = set("\"#%'*/:=?\\{[]^<>|") | {chr(c) for c in range(0x20)} | {" ", "\x7f"}


def path_value(value: object) -> str:
    """A key value as spelled in a partition path: `BTC/USDT` → `BTC%2FUSDT`."""
    return "".join(f"%{ord(c):02X}" if c in _ESCAPE else c for c in str(value))


def unescape(segment: str) -> str:
    """The value a path segment spells (the inverse of path_value)."""
    return unquote(segment)


def partition_id(keys: dict[str, str]) -> str:
    return "/".join(f"{k}={path_value(v)}" for k, v in keys.items())


def hive_keys(pid: str) -> dict[str, str] | None:
    """`k=v/...` path → {k: value}, values unescaped; None when a segment is not k=v."""
    keys: dict[str, str] = {}
    for seg in pid.split("/") if pid else []:
        if "=" not in seg:
            return None
        k, v = seg.split("=", 1)
        keys[k] = unescape(v)
    return keys
