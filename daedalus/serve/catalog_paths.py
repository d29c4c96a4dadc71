"""What the catalog's views read: each model's folder by a glob, relative to the lake root.

Two choices, both for readers that hold the catalog for hours and for lakes that move:

- **Globs, not file lists.** A partition is one file with a stable name (daedalus/build/publish.py), so a
  glob over the model folder always reads each partition whole, sees the partitions a later build
  adds, and never names a file a build deletes. A view's text therefore changes only when the
  project does (a model, its columns, its docs, a partition failing its tests), and the catalog file
  is only replaced then (`fingerprint` below). This matters because DuckDB keeps one database
  instance per file in a process: a pool that never closes all its connections never sees a new
  catalog file, but always sees new data through the old one.
- **Paths relative to the lake root, resolved when the catalog is opened** (DuckDB's
  `file_search_path`, set to the catalog's folder, which is the lake root): a `cp -a` copy reads its
  own files, a moved lake works as it is. Rewriting absolute paths on open was the other option; it
  cannot help a BI tool, which opens the file without Daedalus, and a stale absolute catalog reads
  the original lake silently. A relative catalog opened without the setting fails loudly ("No files
  found that match the pattern gold/…") instead. An S3 lake's catalog is local and its views read
  absolute `s3://` URLs; it records its root and Daedalus refuses one of another lake.
- **A plain `duckdb` on the catalog works from any folder** (issue 24): a local view's pattern is an
  expression DuckDB folds when it binds the view (`pattern_sql`). With `file_search_path` set (every
  Daedalus reader, the BI recipe) it is the relative path; without, the folder of the database file
  itself, which DuckDB's default `temp_directory` (`<the path opened>.tmp`) gives; otherwise (the
  catalog ATTACHed, a `temp_directory` of one's own) the view fails with a message naming the fix.
  A moved or copied lake still reads its own files in every case.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

CATALOG_NAME = "catalog.duckdb"  # the catalog's file name, in the lake root
RELATIVE_ROOT = "."  # what `_daedalus.lake` holds for a catalog whose paths are relative to its folder
SIDECAR = ".catalog.json"  # beside the catalog: fingerprint of its statements + the file it describes


def reader_config(catalog_file: str) -> dict[str, str]:
    """The DuckDB config every reader of a catalog passes (docs/operations.md's BI recipe uses the same): the
    relative paths resolve against the catalog's folder. One process must open a file with one config
    (DuckDB refuses a second connection with another), so Daedalus uses this one for S3 catalogs too,
    where it is harmless."""
    return {"file_search_path": os.path.dirname(os.path.abspath(catalog_file))}


def pattern_sql(rel: str) -> str:
    """The SQL of a view's file pattern `rel` (relative to the lake root) that every reader resolves:
    relative to `file_search_path` when one is set, else to the folder of the catalog file DuckDB
    opened (its default temp_directory is that path + ".tmp"), else an error naming the fix. No
    absolute path goes into the catalog: a copy must never read (or name) the original."""
    from daedalus.sqltext import sql_str

    tmp_suffix = CATALOG_NAME + ".tmp"
    fix = (
        "this Daedalus catalog reads its files relative to the lake root, which DuckDB cannot tell "
        f"here: run SET file_search_path = '/path/to/lake' (the folder of {CATALOG_NAME}) first, "
        f"or open the file itself: duckdb -readonly /path/to/lake/{CATALOG_NAME}"
    )
    return (
        f"CASE WHEN current_setting('file_search_path') <> '' THEN {sql_str(rel)} "
        f"WHEN suffix(current_setting('temp_directory'), {sql_str(tmp_suffix)}) "
        f"THEN left(current_setting('temp_directory'), -{len(tmp_suffix)}) || {sql_str(rel)} "
        f"ELSE error({sql_str(fix)}) END"
    )


def fingerprint(statements: list[str]) -> str:
    return hashlib.sha256("\n;\n".join(statements).encode()).hexdigest()[:32]


def _stat(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def unchanged(catalog_file: str, fp: str) -> bool:
    """True when the catalog at `catalog_file` is the one written with these statements (and no other
    file was put in its place since)."""
    side = _sidecar(catalog_file)
    return side.get("fingerprint") == fp and side.get("file") == _stat(catalog_file)


def _sidecar(catalog_file: str) -> dict:
    try:
        with open(os.path.join(os.path.dirname(catalog_file), SIDECAR)) as f:
            side = json.load(f)
    except (OSError, ValueError):
        return {}
    return side if isinstance(side, dict) else {}


def spec_recorded(catalog_file: str, spec_fp: str) -> bool:
    """True when the catalog at `catalog_file` was written from a spec of this fingerprint (its views
    and their docs, serve/catalog.py `CatalogSpec.fingerprint`) and is still that file."""
    side = _sidecar(catalog_file)
    return side.get("spec") == spec_fp and side.get("file") == _stat(catalog_file)


def record(catalog_file: str, fp: str, spec_fp: str | None = None) -> None:
    """Write the sidecar of a catalog just renamed into place (atomically)."""
    side = os.path.join(os.path.dirname(catalog_file), SIDECAR)
    tmp = f"{side}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump({"fingerprint": fp, "file": _stat(catalog_file), "spec": spec_fp}, f)
    os.replace(tmp, side)
