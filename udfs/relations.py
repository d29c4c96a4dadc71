"""Python relations: a relation of a model's SQL that Python produces by streaming another query's rows.

A model's SQL names such a relation with `relation_sql(kind, params, sql)`: the relation's name, preceded
by a comment holding its kind, parameters and input query, so the compiled SQL carries everything
needed to run it. `bind(con, sql)` registers, for every relation `sql` names, a lazy Arrow stream on
`con`: when the query scans it, the input query runs on a cursor of the same database and its rows
stream through the kind's producer (registered with `register_kind`), batch by batch. Nothing is held
whole: the input comes sorted from DuckDB (which spills), and the output is consumed as it is made.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from daedalus.udfs.arrow_io import release_memory

if TYPE_CHECKING:
    import duckdb

Producer = Callable[[Iterator[pa.RecordBatch], dict[str, Any]], Iterator[pa.RecordBatch]]
"""The input query's batches and the relation's parameters → the relation's batches."""

_KINDS: dict[str, tuple[pa.Schema, Producer, dict[str, str], bool, int]] = {}
MEMO = "memo"
"""The kind of a relation that is its input query's result, computed once per text (see `memo_sql`)."""
TABLE = "table"
"""The kind of a relation that is its input query's result, made before the query naming it runs and
dropped after it (see `table_sql`)."""
_memo_lock = threading.Lock()
_MARK = re.compile(r"/\*daedalus:relation (\w+) (\{[^\n]*\})\n(.*?)\n\*/ (__daedalus_rel_\w+)", re.DOTALL)
BATCH_ROWS = 16_384
"""Input rows per batch handed to a producer (its memory follows the batch, not the slice)."""


_UDF_CALL = re.compile(r"\bdaedalus_\w+\s*\(")
_KIND = re.compile(r"/\*daedalus:relation (\w+) ")


def calls_python(sql: str) -> bool:
    """Whether `sql` calls a Daedalus UDF or names a Python relation other than a memo or a table
    (anywhere, a relation's input query included): what needs the kernels, and so numba, registered."""
    return bool(_UDF_CALL.search(sql)) or any(kind not in (MEMO, TABLE) for kind in _KIND.findall(sql))


def key_runs(
    batches: Iterator[pa.RecordBatch], keys: tuple[str, ...]
) -> Iterator[tuple[tuple[Any, ...], pa.RecordBatch]]:
    """Each run of rows with equal `keys` within a batch, with its key, in input order (a producer's
    series or connection: one key's rows may go on in the next batch)."""
    for batch in batches:
        n = batch.num_rows
        if n == 0:
            continue
        cols = [batch.column(k).to_numpy(zero_copy_only=False) for k in keys]
        change = np.zeros(n, bool)
        for c in cols:
            change[1:] |= c[1:] != c[:-1]
        starts = [0, *np.flatnonzero(change).tolist(), n]
        for a, b in zip(starts[:-1], starts[1:], strict=True):
            yield tuple(c[a] for c in cols), batch.slice(a, b - a)


RELATION = "__relation__"
"""With `register_kind(..., identify=True)`, the parameter holding the relation's name (a digest of
its kind, parameters and input query text)."""
SOURCES = "__sources__"
"""With `register_kind(..., identify=True)`, the parameter holding `sources_stamp` of its input query."""


def register_kind(
    kind: str,
    schema: pa.Schema,
    producer: Producer,
    settings: dict[str, str] | None = None,
    identify: bool = False,
    batch_rows: int = BATCH_ROWS,
) -> None:
    """`settings`: DuckDB settings the input query is planned with (restored once it is planned).
    `identify`: the producer's parameters also hold RELATION and SOURCES. `batch_rows`: input rows per
    batch (a producer whose output rows are much wider than its input's wants fewer). The input query
    runs when the producer first asks for a batch: a producer that answers without it never runs it."""
    _KINDS[kind] = (schema, producer, dict(settings or {}), identify, batch_rows)


_FILE = re.compile(r"'([^'\n]+?\.parquet)'")


def sources_stamp(sql: str) -> str | None:
    """The local Parquet files `sql` names, each with its size and modification time: equal stamps of
    equal texts read equal rows. None when a file is not a local file (a remote lake)."""
    parts = []
    for path in sorted(set(_FILE.findall(sql))):
        try:
            st = os.stat(path)
        except OSError:
            return None
        parts.append(f"{path}\0{st.st_size}\0{st.st_mtime_ns}")
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()


def relation_sql(kind: str, params: dict[str, Any], sql: str) -> str:
    """The SQL naming the relation `kind` produces from `sql`'s rows with `params`."""
    head = json.dumps(params, sort_keys=True)
    name = f"__daedalus_rel_{kind}_{hashlib.sha1((kind + head + sql).encode()).hexdigest()[:16]}"
    return f"/*daedalus:relation {kind} {head}\n{_escape(sql)}\n*/ {name}"


def renamed(sql: str) -> str:
    """`sql` with every relation it names (nested ones first) named as `relation_sql` names its text
    as it reads now. A relation's name is a digest of its input query, which names its exact files: a
    caller that rewrites those texts (the build's fingerprint spells a staged input file as the file it
    is published as) renames them here, so that equal texts carry equal names."""

    def one(m: re.Match[str]) -> str:
        kind, head, inner, _ = m.groups()
        return relation_sql(kind, json.loads(head), renamed(_unescape(inner)))

    return _MARK.sub(one, sql)


def memo_sql(sql: str) -> str:
    """The SQL naming `sql`'s result: a table of the database, made the first time a query names it
    and kept until `drop_memos()` (or the database closes).

    For a small result that every time slice of a day asks for alike (silver's fills of unstamped book
    loads scan the whole receive day, whatever the slice): the text names its exact Parquet files, and
    bronze files do not change within a build, so the same text gives the same rows. A table, not a
    registered Arrow result: every cursor of the database sees it (a streamed relation's input runs
    on its own cursor), and the planner knows its size."""
    return relation_sql(MEMO, {}, sql)


def table_sql(sql: str) -> str:
    """The SQL naming `sql`'s result: a table of the database made by `bind`, before the query naming it
    runs (planned with preserve_insertion_order = true, so at one thread its scan gives the rows in
    `sql`'s ORDER BY), and dropped by `unbind`.

    For an intermediate result that a query reads several times, where a MATERIALIZED CTE would keep
    the operators that made it (a sort's, a hash table's memory) until the whole query ends: the table
    is made by a statement of its own, whose memory is free again before the query starts
    (gold.orderbook_bars' 1 s base bars, 24 h day at the Pi profile: −20 MB peak)."""
    return relation_sql(TABLE, {}, sql)


def drop_memos(con: duckdb.DuckDBPyConnection) -> None:
    """Drop every memo table of `con`'s database (a build session reads the lake again)."""
    with _memo_lock:
        for (name,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE starts_with(table_name, '__daedalus_rel_memo_')"
        ).fetchall():
            con.execute(f"DROP TABLE IF EXISTS {name}")


def _escape(sql: str) -> str:
    # comment delimiters in the input query (file globs: `**/*.parquet`) must not end or nest the comment
    return sql.replace("%", "%25").replace("/*", "%2F*").replace("*/", "*%2F")


def _unescape(text: str) -> str:
    return text.replace("*%2F", "*/").replace("%2F*", "/*").replace("%25", "%")


def bind(con: duckdb.DuckDBPyConnection, sql: str) -> list[str]:
    """Register on `con` a stream for every Python relation `sql` names; returns their names (for
    `unbind`)."""
    names = []
    found = _MARK.findall(sql)
    # read here, not in the stream: `con` is busy with the query while the stream runs
    tz, threads = (
        con.execute("SELECT current_setting('TimeZone'), current_setting('threads')").fetchone()
        if found
        else ("UTC", 1)
    )
    for kind, head, inner, name in found:
        if kind == MEMO:
            _memo_table(con, tz, name, _unescape(inner))
            continue
        if kind == TABLE:
            try:
                _scratch_table(con, tz, name, _unescape(inner))
            except BaseException:
                unbind(con, names)
                raise
            names.append(name)
            continue
        if kind not in _KINDS:
            raise ValueError(f"relation {kind}: no such kind (known: {', '.join(sorted(_KINDS))})")
        schema, producer, settings, identify, batch_rows = _KINDS[kind]
        params = json.loads(head)
        inner = _unescape(inner)
        if identify:
            params.update({RELATION: name, SOURCES: sources_stamp(inner)})
        batches = _run(con, tz, settings, inner, params, schema, producer, batch_rows)
        stream = pa.RecordBatchReader.from_batches(schema, batches)
        # With one DuckDB thread, the bare C stream: DuckDB pulls it itself, batch by batch, so the
        # producer runs in step with the query. A pyarrow reader DuckDB wraps in a pyarrow Scanner,
        # which runs the producer on an Arrow thread, batches ahead of the query (Pi profile, 24 h
        # day: gold.orderbook_seq alone −24 MB peak RSS without it). With more threads the bare
        # stream measured higher (default profile: +30..+50 MB), so there the reader stays.
        con.register(name, stream.__arrow_c_stream__() if int(threads) == 1 else stream)
        names.append(name)
    return names


def unbind(con: duckdb.DuckDBPyConnection, names: list[str]) -> None:
    for name in names:
        if name.startswith(_TABLE_PREFIX):
            con.execute(f"DROP TABLE IF EXISTS {name}")
        else:
            con.unregister(name)


_TABLE_PREFIX = f"__daedalus_rel_{TABLE}_"


def _scratch_table(con: duckdb.DuckDBPyConnection, tz: str, name: str, sql: str) -> None:
    cur = con.cursor()
    try:
        cur.execute(f"SET TimeZone = '{tz}'")
        _planned_with(
            con,
            {"preserve_insertion_order": "true"},
            lambda: cur.execute(f"CREATE OR REPLACE TABLE {name} AS {sql}"),
        )
    finally:
        cur.close()


def _memo_table(con: duckdb.DuckDBPyConnection, tz: str, name: str, sql: str) -> None:
    # the name is a digest of the text: an existing table holds this text's rows
    with _memo_lock:
        cur = con.cursor()
        try:
            cur.execute(f"SET TimeZone = '{tz}'")
            cur.execute(f"CREATE TABLE IF NOT EXISTS {name} AS {sql}")
        finally:
            cur.close()


def _planned_with(con: duckdb.DuckDBPyConnection, settings: dict[str, str], start: Callable[[], Any]) -> Any:
    """`start()` (which plans and starts the input query) under the kind's settings. Most of them are
    database-wide (optimizer switches), so they are put back once the query is planned, from a cursor
    of their own (a statement on the query's cursor would end its result)."""
    if not settings:
        return start()
    aside = con.cursor()
    try:
        old = {k: aside.execute(f"SELECT current_setting('{k}')").fetchone()[0] for k in settings}
        try:
            for name, value in settings.items():
                aside.execute(f"SET {name} = '{value}'")
            return start()
        finally:
            for name, value in old.items():
                aside.execute(f"SET {name} = '{value}'")
    finally:
        aside.close()


def _run(
    con: duckdb.DuckDBPyConnection,
    tz: str,
    settings: dict[str, str],
    sql: str,
    params: dict[str, Any],
    schema: pa.Schema,
    producer: Producer,
    batch_rows: int,
) -> Iterator[pa.RecordBatch]:
    # A cursor: the input query runs while the query scanning this stream runs on `con`.
    cur = con.cursor()
    try:
        cur.execute(f"SET TimeZone = '{tz}'")
        inner = bind(cur, sql)  # relations named inside the input query

        def rows() -> Iterator[pa.RecordBatch]:
            # planned and started at the producer's first request
            yield from _planned_with(con, settings, lambda: cur.execute(sql).to_arrow_reader(batch_rows))

        try:
            for out in producer(rows(), params):
                if out.num_rows:
                    yield out.cast(schema) if out.schema != schema else out
        finally:
            unbind(cur, inner)
    finally:
        cur.close()
        # what the producer held is freed, in the arena of the DuckDB thread it ran on: hand it back,
        # or every later model of the build starts that much higher (Pi profile, 24 h lake: ~100 MB
        # after gold.vpin_buckets)
        release_memory()
