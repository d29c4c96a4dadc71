"""`daedalus query`: any read-only SQL on the catalog, the way the DuckDB CLI runs it.

- Statements that only read: SELECT (and DESCRIBE, SUMMARIZE, SHOW, PIVOT, FROM-first), EXPLAIN of
  one, CALL, PRAGMA and SET (not of profiling, logging, directories, extensions or secrets), several
  separated by `;`. Each statement that returns rows prints its result, in order. Everything else
  (COPY ... TO, ATTACH, INSTALL, LOAD, EXPORT, CREATE, INSERT ...) is refused before anything runs,
  by the statement type DuckDB's own parser gives (issue 24: a read-only catalog does not stop
  `COPY ... TO` writing into the model folders). One line, exit code 2.
- Errors keep DuckDB's whole text (the `Did you mean "..."?` hint, the LINE/caret context); a bad SQL
  is a usage error (exit 2), a lake that cannot be read a storage error (exit 5).
- `--format json` writes NaN and ±inf as null (bare NaN is not JSON).
- `--format table|csv|json|parquet`; csv/json/parquet are written by DuckDB's COPY into a temporary
  file first, then moved or appended into place, so `>> file` on the shell appends (DuckDB writing to
  /dev/stdout truncated it) and `--append` appends to `--output` (csv writes its header only into an
  empty file; json appends newline-delimited records, since two JSON arrays back to back are not
  JSON; parquet cannot be appended to).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daedalus.errors import ConfigError, QueryError, StorageError
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


_READING = ("SELECT", "CALL", "PRAGMA", "SET")  # DuckDB statement types that read (SET/PRAGMA: see below)
_RISKY_SETTING = re.compile(
    r"profil|log|director|extension|secret|external|allowed|lock|path|repository", re.I
)


def _refuse_writes(con: Any, stmt: Any) -> None:
    kind = stmt.type.name
    text = stmt.query.strip()
    if kind == "EXPLAIN":  # EXPLAIN ANALYZE runs its statement: judge that one
        inner = re.sub(r"^\s*explain\s+(analy[sz]e\s+)?", "", text, flags=re.I)
        for sub in con.extract_statements(inner):
            _refuse_writes(con, sub)
        return
    if kind not in _READING or (kind in ("SET", "PRAGMA") and _RISKY_SETTING.search(text)):
        first = " ".join(text.split()[:3])
        raise QueryError(
            f"query: '{first} ...' ({kind}) is refused: `daedalus query` only reads (SELECT, DESCRIBE, "
            "SHOW, SUMMARIZE, EXPLAIN, CALL, PRAGMA, SET); write results with --output FILE"
        )


def statements(con: Any, sql: str) -> list[str]:
    """The statements of `sql`, as DuckDB's parser splits them; QueryError for one that writes."""
    found = con.extract_statements(sql)
    for stmt in found:
        _refuse_writes(con, stmt)
    return [s.query for s in found]


def _finite(rel: Any) -> str:
    """A SELECT list with NaN/±inf of every DOUBLE/FLOAT column as NULL (JSON has no NaN)."""
    cols = []
    for name, typ in zip(rel.columns, rel.types, strict=True):
        c = sql_ident(name)
        cols.append(f"CASE WHEN isfinite({c}) THEN {c} END AS {c}" if str(typ) in ("DOUBLE", "FLOAT") else c)
    return ", ".join(cols)


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
    if not sql.strip():
        raise QueryError('query: no SQL given (e.g. daedalus query "SELECT count(*) FROM silver.trades")')
    if limit < 0:
        raise ConfigError(f"--limit: {limit} is negative; give the number of rows to show (0 or more)")
    out_dir = Path(output).expanduser().resolve().parent if output else None
    if out_dir is not None and not out_dir.is_dir():
        raise ConfigError(f"--output {output}: the folder {out_dir} does not exist; create it first")
    if output and Path(output).is_dir():
        raise ConfigError(f"--output {output}: is a folder; give a file name")
    con = open_catalog(config)
    results = 0
    try:
        todo = statements(con, sql)
        workdir = Path(tempfile.mkdtemp(prefix="daedalus-query-", dir=out_dir))
    except duckdb.Error as e:
        con.close()
        raise QueryError(f"query: {str(e).strip()}") from None
    except OSError as e:
        con.close()
        raise StorageError(f"--output {output}: {e.strerror or e}") from None
    except QueryError:
        con.close()
        raise
    try:
        for query in todo:
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
            cols = _finite(rel) if fmt == "json" else "*"
            rel.query(
                _VIEW,
                f"COPY (SELECT {cols} FROM {_VIEW}) TO {sql_str(str(tmp))} ({_copy_options(fmt, append)})",
            )
            _deliver(tmp, fmt, output, again)
    except (duckdb.IOException, duckdb.HTTPException) as e:
        raise StorageError(f"query: {str(e).strip()}") from None
    except duckdb.Error as e:
        raise QueryError(f"query: {str(e).strip()}") from None
    except OSError as e:
        raise StorageError(f"--output {output}: {e.strerror or e}") from None
    finally:
        con.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return results
