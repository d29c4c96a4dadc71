"""`partitioned`: hive Parquet, one directory per partition, incremental by partition.

Partitions are keyed by `partition_by`. An input partitioned by fewer keys (bronze is
exchange/date, no symbol) maps onto the shared keys; the values of a key it lacks (symbol) are
discovered with a `SELECT DISTINCT` over its files (cached in the manifest by file fingerprint).
A partition reads the input partitions of the same series whose dates lie in
[date − ceil(lookback), date]; the model's rows are filtered to the target partition before writing.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from daedalus.build.durations import lookback_seconds
from daedalus.build.layout import DATA_FILE
from daedalus.build.materializations.base import (
    BuildContext,
    Inputs,
    Materialization,
    PartPlan,
    WriteResult,
    copy_sql,
    order_clause,
    partition_filter,
    partition_id,
)
from daedalus.build.partition import PartitionCtx
from daedalus.build.slicing import auto_slice_hours
from daedalus.errors import CompileError, StorageError
from daedalus.lake import LocalLake
from daedalus.sqltext import sql_ident, sql_str, ts_literal

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    from daedalus.build.parts import InputPart
    from daedalus.build.project import Model, ModelConfig
    from daedalus.config import Config
    from daedalus.lake import FileInfo


def _may_hold(lo: str | None, hi: str | None, symbol: str) -> bool:
    """Whether a row group whose symbol statistics are [lo, hi] may hold rows of `symbol`."""
    return (lo is None or lo <= symbol) and (hi is None or symbol <= hi)


def lookback_days(model: Model) -> int:
    return math.ceil(lookback_seconds(model.config.lookback) / 86400)


def reads_for(inputs: Inputs, model: Model, keys: dict[str, str]) -> list[InputPart]:
    """The input partitions a partition with these keys reads (lookback included)."""
    day = dt.date.fromisoformat(keys["date"])
    dates = [(day - dt.timedelta(days=i)).isoformat() for i in range(lookback_days(model), -1, -1)]
    out: list[InputPart] = []
    for rel in inputs.leaf_relations(model):
        rkeys = inputs.relation_keys(rel)
        registry = inputs.parts(rel)
        if "date" in rkeys:  # only the lookback's dates, through the registry's date index
            by_date = registry.by_date()
            pool = [ip for d in dates for ip in by_date.get(d, ())]
        else:
            pool = list(registry.values())
        match = [k for k in rkeys if k != "date" and k in keys]
        # Sorted by partition id: the file order is part of the compiled SQL and so of the fingerprint.
        out.extend(
            sorted(
                (ip for ip in pool if all(ip.keys.get(k) == keys[k] for k in match)), key=lambda ip: ip.pid
            )
        )
    return out


class PartitionedMaterialization(Materialization):
    name = "partitioned"
    partitioned = True
    options = frozenset({"partition_by", "carry_state", "slice_by"})

    def check_config(self, cfg: ModelConfig, where: str) -> None:
        if not cfg.partition_by:
            raise CompileError(
                f"{where}: materialized='partitioned' needs partition_by, e.g. ['exchange','symbol','date']"
            )
        if "date" not in cfg.partition_by:
            raise CompileError(f"{where}: partition_by must include 'date' (got {cfg.partition_by})")

    def relation_keys(self, model: Model) -> list[str]:
        return list(model.config.partition_by)

    def candidates(self, inputs: Inputs, model: Model) -> list[PartPlan]:
        wanted = list(model.config.partition_by)
        found: dict[str, dict[str, str]] = {}
        for rel in inputs.leaf_relations(model):
            rkeys = inputs.relation_keys(rel)
            if not rkeys:
                continue  # an unpartitioned input is read whole by every partition; it adds none
            missing = [k for k in wanted if k not in rkeys]
            for ip in inputs.parts(rel).values():
                have = {k: ip.keys[k] for k in wanted if k in ip.keys}
                combos = (
                    [have]
                    if not missing
                    else [{**have, **found_vals} for found_vals in inputs.discover(rel, ip, missing)]
                )
                for c in combos:
                    keys = {k: c[k] for k in wanted if k in c}
                    if len(keys) != len(wanted) or not inputs.in_range(keys.get("date")):
                        continue
                    found.setdefault(partition_id(keys), keys)
        plans = []
        for pid, keys in sorted(found.items(), key=lambda kv: tuple(kv[1].values())):
            plans.append(PartPlan(model.name, pid, keys, reads_for(inputs, model, keys)))
        return plans

    def reads(self, inputs: Inputs, model: Model, part: PartPlan) -> list[InputPart]:
        return reads_for(inputs, model, part.keys)

    def select_sql(
        self, model: Model, part: PartPlan, sql: str, bounds: tuple[dt.datetime, dt.datetime] | None = None
    ) -> str:
        where = partition_filter(part.keys)
        if bounds is not None:
            col = sql_ident(model.config.slice_by or "")
            where += f" AND {col} >= {ts_literal(bounds[0])} AND {col} < {ts_literal(bounds[1])}"
        return f"SELECT * FROM (\n{sql}\n) AS __daedalus_model\nWHERE {where}{order_clause(model)}"

    def slice_hours(self, config: Config, inputs: Inputs, model: Model, part: PartPlan) -> float:
        """etl.slice_hours, or with `auto` the length daedalus/build/slicing.py picks for this
        partition from the footers of the bronze it is built from (its day, its symbol)."""
        hours = config.etl.slice_hours
        if hours != "auto":
            return float(hours)
        if not model.config.slice_by or "date" not in part.keys:
            return 24.0
        day = PartitionCtx(dict(part.keys))
        day_ms = int(day.day_start_dt.timestamp() * 1000)
        budget = config.etl.slice_bronze_mb * 1_000_000
        hours = 24.0
        for rel in inputs.source_relations(model):
            # Per channel: the busiest one sets the length (a book's trades add little to its memory).
            spans: list[tuple[int, int | None, int | None]] = []
            match = [k for k in inputs.relation_keys(rel) if k != "date" and k in part.keys]
            for ip in inputs.parts(rel).by_date().get(part.keys["date"], ()):
                if not all(ip.keys.get(k) == part.keys[k] for k in match):
                    continue
                symbol = part.keys.get("symbol") if "symbol" not in ip.keys else None
                spans.extend(
                    (g.bytes, g.lo_ms, g.hi_ms)
                    for g in inputs.row_group_spans(ip)
                    if symbol is None or _may_hold(g.symbol_lo, g.symbol_hi, symbol)
                )
            hours = min(hours, auto_slice_hours(spans, day_ms, budget))
        return hours

    def slice_bounds(
        self, config: Config, inputs: Inputs, model: Model, part: PartPlan
    ) -> list[tuple[dt.datetime, dt.datetime]] | None:
        if not model.config.slice_by or "date" not in part.keys:
            return None
        hours = self.slice_hours(config, inputs, model, part)
        if hours >= 24:
            return None
        return PartitionCtx(dict(part.keys)).slices(hours)

    def write(self, ctx: BuildContext, model: Model, part: PartPlan, sql: str) -> WriteResult:
        slices = self.slice_bounds(ctx.config, ctx.inputs, model, part)
        if slices is None:
            return super().write(ctx, model, part, sql)
        # One query per slice, each rendered with its own bounds (and lookback before them): DuckDB's
        # memory follows the slice. Their rows stream in slice order (each slice is in order_by order)
        # into ONE COPY, the partition's one file (daedalus/build/publish.py: one file per partition is
        # what a glob reader can see whole): the Parquet encoding is paid once, not per slice file
        # and again to merge them.
        selects = [
            self.select_sql(model, part, ctx.compile(model, part, bounds=bounds), bounds) for bounds in slices
        ]
        info, rows = write_stream(ctx, model, part, selects)
        return WriteResult([info], rows, info.size)


STREAM_BATCH_ROWS = 2048
"""Rows per Arrow batch of a slice streamed into the partition's COPY: one DuckDB vector. The batch is
all that the stream holds beside what main's COPY per slice held (gold.orderbook_hf, ~80 columns and
two book lists, Pi profile: 16,384 rows kept ~+20 MB resident during the slices, 2,048 ~0)."""


def _slice_reader(con: duckdb.DuckDBPyConnection, tz: str, sql: str) -> tuple[Any, Any, list[str]]:
    """A cursor running one slice's query, its Arrow reader and the Python relations it bound."""
    from daedalus.udfs import relations

    cur = con.cursor()
    try:
        cur.execute(f"SET TimeZone = {sql_str(tz)}")
        names = relations.bind(cur, sql)  # what execute_copy does for a query run on `con`
        reader = cur.execute(sql).to_arrow_reader(STREAM_BATCH_ROWS)
    except BaseException:
        cur.close()
        raise
    return cur, reader, names


def write_stream(ctx: BuildContext, model: Model, part: PartPlan, selects: list[str]) -> tuple[FileInfo, int]:
    """The slices' rows, in slice order, as the partition's one staged file: each slice's query runs
    on a cursor of the build's connection (its Python relations bound there, as execute_copy binds
    them for a query of its own) and its Arrow batches feed one writer, in order: pyarrow's Parquet
    writer for a local lake (`_write_local`), one DuckDB COPY for a remote one. The schema is the
    first slice's (every slice has the same SELECT list); no slice with rows still writes a typed
    empty file. A slice that fails fails the write (one line naming the model and partition) and
    leaves no staged file."""
    import duckdb

    from daedalus.udfs import relations
    from daedalus.udfs.arrow_io import release_memory

    lake = ctx.lake
    target = ctx.staged_path(model, part.pid, DATA_FILE)
    lake.prepare_dir(target.rsplit("/", 1)[0])
    con = ctx.con(selects[0])  # the UDFs registered first if the slices call one (every slice alike)
    tz, order, threads = con.execute(
        "SELECT current_setting('TimeZone'), current_setting('preserve_insertion_order'), "
        "current_setting('threads')"
    ).fetchone()
    settings = f"SET preserve_insertion_order = {'true' if order else 'false'}; SET threads = {int(threads)}"
    try:  # started here: its reader holds the stream's schema
        first = _slice_reader(con, tz, selects[0])
    except duckdb.Error as e:
        raise ctx.query_error(model, part, e) from None
    counted = [0]

    def batches() -> Iterator[pa.RecordBatch]:
        # The COPY is planned by now: the build's settings again, for the slices' queries and the
        # Python relations inside them (planned as the stream reaches them). Settings are the
        # database's: a cursor of its own sets them (a statement on `con` would end the COPY).
        aside = con.cursor()
        try:
            aside.execute(settings)
        finally:
            aside.close()
        running: tuple[Any, Any, list[str]] | None = opened.pop()
        try:
            for sql in selects:
                if running is None:
                    running = _slice_reader(con, tz, sql)
                batch = None
                for batch in running[1]:
                    counted[0] += batch.num_rows
                    yield batch
                batch = None
                cur, _, names = running
                running = None  # nothing of a read slice stays referenced while the next one runs
                relations.unbind(cur, names)
                cur.close()
                release_memory()  # what the slice's query freed, before the next one sorts and joins
        finally:
            if running is not None:  # the COPY ended before this slice was read
                relations.unbind(running[0], running[2])
                running[0].close()
            release_memory()  # as a Python relation's stream does (its producers ran on this thread)

    opened = [first]
    schema = first[1].schema
    del first
    stream = batches()
    try:
        if isinstance(lake, LocalLake):
            n = _write_local_staged(ctx, model, part, target, schema, stream)
        else:
            n = _copy_stream(ctx, model, part, con, settings, schema, stream, target)
    finally:
        stream.close()  # a slice the writer did not reach is let go (its cursor closed) here
        for cur, _, names in opened:  # the write failed before it read the stream
            relations.unbind(cur, names)
            cur.close()
    info = lake.verify_write(target, n)
    if info is None or n != counted[0]:
        raise StorageError(
            f"{lake.url(target)}: streaming {len(selects)} slices wrote {n} rows, expected {counted[0]}"
        )
    return info, n


def _write_local_staged(
    ctx: BuildContext,
    model: Model,
    part: PartPlan,
    target: str,
    schema: pa.Schema,
    stream: Iterator[pa.RecordBatch],
) -> int:
    """The stream as the local staged file (`_write_local`); on any failure nothing is left staged, and
    a query's or the disk's failure is one line naming the model and partition."""
    import duckdb

    lake = ctx.lake
    try:
        return _write_local(lake.url(target), schema, stream, ctx.config.storage.row_group_rows)
    except BaseException as e:
        lake.delete([target])
        if isinstance(e, duckdb.Error):
            raise ctx.query_error(model, part, e) from None
        if isinstance(e, OSError):
            raise StorageError(
                f"{model.path}: {model.relation} partition {part.pid}: writing {lake.url(target)}: "
                f"{e.strerror or e}; nothing was published"
            ) from None
        raise


def _copy_stream(
    ctx: BuildContext,
    model: Model,
    part: PartPlan,
    con: duckdb.DuckDBPyConnection,
    settings: str,
    schema: pa.Schema,
    batches: Iterator[pa.RecordBatch],
    target: str,
) -> int:
    """The stream written by one DuckDB COPY (a remote lake: DuckDB's httpfs writes the object)."""
    import pyarrow as pa

    lake = ctx.lake
    name = f"__daedalus_slices_{uuid.uuid4().hex[:16]}"
    stream = pa.RecordBatchReader.from_batches(schema, batches)
    # Registered as a bare Arrow C stream, not as the reader: DuckDB scans a bare stream itself, one
    # batch per request on the COPY's thread, so a slice's batch is made when the writer wants it. A
    # pyarrow reader DuckDB wraps in a pyarrow Scanner, which runs the generator on an Arrow thread
    # and reads batches ahead of the writer (gold.orderbook_hf, Pi profile: +40..+70 MB resident
    # during the slices, growing from slice to slice).
    con.register(name, stream.__arrow_c_stream__())
    # The COPY keeps the stream's order (the builds run with false) and runs on one thread, as the
    # merge of slice files it replaces did (with two, DuckDB read that merge's input ahead of the
    # writer: silver.orderbook, 24 h in 24 slices, +395 MB RSS). Both are planning-time choices; the
    # stream puts the build's values back as soon as the COPY starts reading it.
    con.execute("SET preserve_insertion_order = true; SET threads = 1")
    try:
        copy = copy_sql(f"SELECT * FROM {name}", lake.url(target), ctx.config.storage)
        n = ctx.execute_copy(model, part, copy)
    except BaseException:
        lake.delete([target])  # whatever the failed COPY left: nothing staged, nothing published
        raise
    finally:
        con.execute(settings)
        con.unregister(name)
        stream.close()  # closes the generator: a slice the COPY did not reach is let go there
    return n


def _write_local(path: str, schema: pa.Schema, batches: Iterator[pa.RecordBatch], group_rows: int) -> int:
    """The stream written to a local file by pyarrow's Parquet writer, in row groups of `group_rows`
    (the last one shorter), zstd level 3 as the COPYs write, dictionaries for the string columns only:
    the files read back equal to a COPY's (types, values, order), and the writing takes ~0.55× the
    time of DuckDB's (a 24 h symbol-day at one thread: silver.orderbook 4.4 → 2.4 s, gold.orderbook_hf
    3.7 → 2.1 s, gold.orderbook_seq 2.1 → 1.2 s; docs/benchmarks.md), most of it the level lists.

    The row groups are encoded on a thread of their own (`_GroupWriter`) while this one runs the
    slices' queries for the next: pyarrow encodes without the GIL, and a slice's query is mostly one
    core's work (its Python relations, the ordered stream), so on two cores the writing is hidden
    behind the query. One row group is being written while the next fills (one more row group of memory)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    strings = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    pending: list[pa.RecordBatch] = []
    held = n = 0
    with (
        pq.ParquetWriter(
            path, schema, compression="zstd", compression_level=3, use_dictionary=strings or False
        ) as writer,
        _GroupWriter(writer, group_rows) as groups,
    ):
        for batch in batches:
            pending.append(batch)
            held += batch.num_rows
            if held >= group_rows:
                table = pa.Table.from_batches(pending, schema)
                whole = held - held % group_rows
                groups.put(table.slice(0, whole))
                pending = table.slice(whole).to_batches()
                held -= whole
                n += whole
                del table
        if held:  # the rest (a stream without rows: the writer's footer alone, a typed empty file)
            groups.put(pa.Table.from_batches(pending, schema))
            n += held
    return n


class _GroupWriter:
    """Row groups handed to a ParquetWriter on a thread of its own, one at a time. A failure
    of the writer (a full disk) is raised to the thread handing it groups, at its next `put` or when
    the block ends; a failure on that side (a query) ends the block after the groups already handed
    over are written, so the caller's cleanup finds the writer idle."""

    def __init__(self, writer: pq.ParquetWriter, group_rows: int) -> None:
        import queue

        self._writer = writer
        self._rows = group_rows
        self._queue: queue.Queue[pa.Table | None] = queue.Queue(maxsize=1)
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="daedalus-parquet-writer", daemon=True)

    def _run(self) -> None:
        while (table := self._queue.get()) is not None:
            if self._failure is None:  # after a failure only drained: the sender learns of it at its put
                try:
                    self._writer.write_table(table, row_group_size=self._rows)
                except BaseException as e:
                    self._failure = e
            del table
            self._queue.task_done()

    def put(self, table: pa.Table) -> None:
        # Handed over once the previous group is written: one group in the writer, the next one
        # filling here, never a third waiting between them (a row group of lists is ~10 MB).
        self._queue.join()
        self._raise()
        self._queue.put(table)

    def _raise(self) -> None:
        if self._failure is not None:
            raise self._failure

    def __enter__(self) -> _GroupWriter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._queue.put(None)
        self._thread.join()
        if exc[0] is None:
            self._raise()
