"""SQL text fragments with no knowledge of projects: quoting, exact-file relations, empty relations.

A leaf module, so that materializations, the catalog and the compiler can all share them without
importing each other.
"""

from __future__ import annotations

import datetime as dt

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
