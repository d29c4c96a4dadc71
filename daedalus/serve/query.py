"""`daedalus query`: any read-only SQL on the catalog, the way the DuckDB CLI runs it.

- Any statement DuckDB parses: SELECT, DESCRIBE, SUMMARIZE, SHOW, PRAGMA, EXPLAIN, CALL, SET ...,
  several separated by `;`. Each statement that returns rows prints its result, in order. The catalog
  is opened read-only, so a statement that writes fails with DuckDB's own read-only error.
- Errors keep DuckDB's whole text (the `Did you mean "..."?` hint, the LINE/caret context).
- `--format table|csv|json|parquet`; csv/json/parquet are written by DuckDB's COPY into a temporary
  file first, then moved or appended into place, so `>> file` on the shell appends (DuckDB writing to
  /dev/stdout truncated it) and `--append` appends to `--output` (csv writes its header only into an
  empty file; json appends newline-delimited records, since two JSON arrays back to back are not
  JSON; parquet cannot be appended to).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daedalus.errors import BuildError, ConfigError
from daedalus.sqltext import sql_ident, sql_str

if TYPE_CHECKING:
    from daedalus.config import Config

PRINTED = "table"  # the format rendered on the terminal; the others are written by COPY
FORMATS = (PRINTED, "csv", "json", "parquet")
_VIEW = "__daedalus_result"


def _copy_options(fmt: str, append: bool) -> str:
    if fmt == "csv":
        return "FORMAT csv, HEADER true"
    if fmt == "json":
        return "FORMAT json" if append else "FORMAT json, ARRAY true"
    return "FORMAT parquet, COMPRESSION zstd"


def _check(fmt: str, output: str | None, append: bool) -> None:
    if fmt not in FORMATS:
        raise ConfigError(f"--format: '{fmt}' is not one of {', '.join(FORMATS)}")
    if fmt == "parquet" and not output:
        raise ConfigError("--format parquet needs --output FILE")
    if fmt == "parquet" and append:
        raise ConfigError("--append: a Parquet file cannot be appended to; write a new file with --output")
    if append and not output:
        raise ConfigError("--append needs --output FILE (on the shell, `>> file` appends as well)")


def _deliver(tmp: Path, fmt: str, output: str | None, append: bool) -> None:
    """Move or append the COPY result in `tmp` to `output` (or stdout)."""
    if output is None:
        sys.stdout.flush()
        with tmp.open("rb") as src:
            shutil.copyfileobj(src, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    dest = Path(output)
    if not append:
        os.replace(tmp, dest)
        return
    has_content = dest.exists() and dest.stat().st_size > 0
    with tmp.open("rb") as src, dest.open("ab") as out:
        if fmt == "csv" and has_content:
            src.readline()  # the header is already in the file
        shutil.copyfileobj(src, out)


def _render_table(rel: Any, limit: int, output: str | None, append: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    names = rel.columns
    # values as DuckDB prints them (no Python conversion of TIMESTAMPTZ, DECIMAL ...)
    rows = (
        rel.project(", ".join(f"CAST({sql_ident(n)} AS VARCHAR)" for n in names)).limit(limit + 1).fetchall()
    )
    table = Table()
    for n in names:
        table.add_column(n)
    for r in rows[:limit]:
        table.add_row(*("NULL" if v is None else str(v) for v in r))
    width = max(120, 20 * len(names))
    if output:
        with open(output, "a" if append else "w") as f:
            Console(file=f, width=width).print(table)
    else:
        Console(width=width).print(table)
    if len(rows) > limit:
        print(f"(more than {limit} rows; use --limit or --format csv)", file=sys.stderr)


def statements(con: Any, sql: str) -> list[str]:
    """The statements of `sql`, as DuckDB's parser splits them."""
    return [s.query for s in con.extract_statements(sql)]


def run_query(
    config: Config,
    sql: str,
    fmt: str = "table",
    output: str | None = None,
    limit: int = 1000,
    append: bool = False,
) -> int:
    """Run every statement of `sql` on the read-only catalog; print or write each result. Returns
    how many statements returned a result."""
    import duckdb

    from daedalus.serve.catalog import open_catalog

    _check(fmt, output, append)
    con = open_catalog(config)
    results = 0
    workdir = Path(
        tempfile.mkdtemp(prefix="daedalus-query-", dir=Path(output).resolve().parent if output else None)
    )
    try:
        for query in statements(con, sql):
            rel = con.sql(query)
            if rel is None:
                continue  # SET, USE ...: no result to show
            results += 1
            if fmt == "parquet" and results > 1:
                raise ConfigError("--format parquet: the SQL returns more than one result; one per file")
            again = append or results > 1  # later results of one run follow the first
            if fmt == PRINTED:
                _render_table(rel, limit, output, again)
                continue
            tmp = workdir / f"result-{results}.{fmt}"
            rel.query(
                _VIEW, f"COPY (SELECT * FROM {_VIEW}) TO {sql_str(str(tmp))} ({_copy_options(fmt, append)})"
            )
            _deliver(tmp, fmt, output, again)
    except duckdb.Error as e:
        raise BuildError(f"query: {str(e).strip()}") from None
    finally:
        con.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return results
