"""SQL text fragments with no knowledge of projects: quoting, exact-file relations, empty relations.

A leaf module, so that materializations, the catalog and the compiler can all share them without
importing each other.
"""

from __future__ import annotations

import datetime as dt
import re

from daedalus.errors import CompileError


def sql_str(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def read_parquet_sql(urls: list[str], hive: bool) -> str:
    """A relation over exactly these files (never a glob of the lake)."""
    files = ", ".join(sql_str(u) for u in urls)
    return f"read_parquet([{files}], hive_partitioning={'true' if hive else 'false'}, union_by_name=true)"


def empty_relation_sql(columns: list[tuple[str, str]]) -> str:
    """An empty relation with these (name, DuckDB type) columns."""
    if not columns:
        raise CompileError("internal: an empty relation needs at least one column")
    cols = ", ".join(f"CAST(NULL AS {typ}) AS {sql_ident(name)}" for name, typ in columns)
    return f"(SELECT {cols} WHERE false)"


def ts_literal(value: dt.datetime) -> str:
    return f"TIMESTAMPTZ '{value.astimezone(dt.UTC).strftime('%Y-%m-%d %H:%M:%S.%f')}+00'"


# One SQL token: a string literal, a quoted identifier, a comment, a run of whitespace, a number, a
# word, or one other character. Strings come first, so `--` or `/*` inside a literal is no comment.
_TOKEN = re.compile(
    r"'(?:[^']|'')*'"
    r'|"(?:[^"]|"")*"'
    r"|(?P<skip>--[^\n]*|/\*.*?\*/|\s+)"
    r"|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?"
    r"|\w+"
    r"|.",
    re.DOTALL,
)


def canonical_sql(sql: str) -> str:
    """The query's tokens, one space apart, without comments: two texts that differ only in layout or
    comments give the same string, so a partition's fingerprint ignores them (SQLMesh tells data
    changes from metadata changes the same way). A regex pass, not sqlglot's tokenizer: a plan
    fingerprints every partition, and this is ~10× faster on compiled models."""
    return " ".join(m.group() for m in _TOKEN.finditer(sql) if m.group("skip") is None)
