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
from typing import TYPE_CHECKING

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
from daedalus.sqltext import read_parquet_sql, sql_ident, ts_literal

if TYPE_CHECKING:
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
        # One query and one file per slice, each rendered with its own bounds (and lookback before
        # them): DuckDB's memory follows the slice. File names sort in slice order, so the files
        # read in name order hold the rows in order_by order; then they become the partition's one
        # file (daedalus/build/publish.py: one file per partition is what a glob reader can see whole).
        # The first slice with rows is written compressed (alone, it is renamed into place as the
        # partition's file); the ones after it are merged right away, so they skip the compression
        # the merge does anyway.
        files: list[FileInfo] = []
        rows = 0
        empty: list[FileInfo] = []
        for i, bounds in enumerate(slices):
            slice_sql = ctx.compile(model, part, bounds=bounds)
            info, n = self.write_file(
                ctx,
                model,
                part,
                self.select_sql(model, part, slice_sql, bounds),
                f"slice-{i:03d}.parquet",
                compress=not files,
            )
            if info is None:
                continue
            (files if n else empty).append(info)
            rows += n
        if not files and empty:
            files.append(empty.pop(0))  # an empty partition still has one (typed) file
        ctx.lake.delete([f.path for f in empty])
        one = merge_files(ctx, model, part, files, rows)
        return WriteResult([one], rows, one.size)


def merge_files(
    ctx: BuildContext, model: Model, part: PartPlan, files: list[FileInfo], rows: int
) -> FileInfo:
    """The staged slice files as the partition's one staged file, rows in file order (a single file
    is renamed; several are streamed through one COPY with insertion order preserved)."""
    target = ctx.staged_path(model, part.pid, DATA_FILE)
    lake = ctx.lake
    if len(files) == 1:
        lake.rename(files[0].path, target)
        got = lake.stat(target)
        assert got is not None
        return got
    con = ctx.con()
    old = con.execute("SELECT current_setting('preserve_insertion_order')").fetchone()[0]
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    con.execute("SET preserve_insertion_order = true")  # the builds run with false
    # One thread: the rows go out in file order anyway, and with two DuckDB buffered the batches read
    # ahead of the writer (silver.orderbook, 24 h in 24 slices: +395 MB RSS against +92 MB, the peak
    # of the model, for about the same time).
    con.execute("SET threads = 1")
    try:
        sql = f"SELECT * FROM {read_parquet_sql([lake.url(f.path) for f in files], hive=False)}"
        n = ctx.execute_copy(model, part, copy_sql(sql, lake.url(target), ctx.config.storage))
    finally:
        con.execute(f"SET preserve_insertion_order = {'true' if old else 'false'}")
        con.execute(f"SET threads = {int(threads)}")
    info = lake.verify_write(target, n)
    if info is None or n != rows:
        raise StorageError(f"{lake.url(target)}: merging {len(files)} slices wrote {n} rows, expected {rows}")
    lake.delete([f.path for f in files])
    return info
