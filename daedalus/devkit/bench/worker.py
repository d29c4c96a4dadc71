"""One measured task of `daedalus bench`, run in a fresh process:
`python -m daedalus.devkit.bench.worker SPEC_JSON`.

A fresh process per task keeps each scenario's peak RSS its own (numba, Arrow buffers and DuckDB's
buffer pool of an earlier scenario are not in it) and makes the numba cold/warm start a real
process start. The task prints one JSON line (measure.emit_result) with its timings, `max_rss`
(this process's exact peak) and `error` when it failed: a failed scenario is a row in the table,
not the end of the suite.

Tasks: floor, build, kernels, jit, collect (see the functions below for their spec keys).
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from typing import Any

from daedalus.devkit.bench.measure import FLOOR_SCANS, emit_result, self_max_rss
from daedalus.fsio import fix_malloc_thresholds, tune_duckdb_allocator, use_system_arrow_pool

FLOOR_SQL = (
    "SELECT count(*) AS snapshots, sum(len(bids) + len(asks)) AS levels, "
    "max(bids[-1].price) + max(bids[-1].size) + max(asks[-1].price) + max(asks[-1].size) AS checksum "
    "FROM read_parquet({files}, hive_partitioning = true)"
)
"""The floor: DuckDB reading every bronze order-book list. Touching price and size of each side makes
the reader decode both child columns of every list (a bare count or len() could be answered from
metadata and offsets alone) while adding almost no work on top of the read; the same query as
benchmarks/bench_build.py, so the two report the same floor."""


def _config(spec: dict[str, Any]):
    from daedalus.config import load_config

    return load_config(spec.get("config_path"), spec.get("overrides") or {}, environ={})


def task_floor(spec: dict[str, Any]) -> dict[str, Any]:
    """spec: root, overrides (duckdb limits), repeat, channel (orderbook, or book_updates: its lists of
    changed levels). One untimed warm-up pass, then `repeat` timed ones."""
    import glob

    from daedalus import duck

    cfg = _config(spec)
    channel = spec.get("channel", "orderbook")
    files = sorted(glob.glob(f"{spec['root']}/bronze/{channel}/**/*.parquet", recursive=True))
    if not files:
        return {"error": f"no bronze {channel} files under {spec['root']}"}
    con = duck.connect(cfg, udfs=False)
    sql = FLOOR_SQL.format(files="[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]")
    con.execute(sql).fetchall()  # page cache and DuckDB's metadata cache warm, as for the build after it
    times, row = [], None
    for _ in range(int(spec.get("repeat", FLOOR_SCANS))):
        t = time.perf_counter()
        row = con.execute(sql).fetchone()
        times.append(time.perf_counter() - t)
    assert row is not None
    return {"seconds": times, "snapshots": int(row[0]), "levels": int(row[1]), "files": len(files)}


def task_build(spec: dict[str, Any]) -> dict[str, Any]:
    """spec: config_path, overrides, select, exclude, full_refresh, run_tests, catalog."""
    from daedalus.build import api
    from daedalus.errors import DaedalusError

    cfg = _config(spec)
    t = time.perf_counter()
    out: dict[str, Any] = {}
    try:
        result = api.build(
            cfg,
            select=spec.get("select"),
            exclude=spec.get("exclude"),
            full_refresh=bool(spec.get("full_refresh")),
            run_tests=bool(spec.get("run_tests", True)),
            catalog=bool(spec.get("catalog", True)),
        )
    except DaedalusError as e:
        out["error"] = str(e).splitlines()[0]
        return {**out, "seconds": time.perf_counter() - t}
    seconds = time.perf_counter() - t
    models = {
        name: {
            "seconds": s.seconds,
            "rows": s.rows,
            "bytes": s.bytes,
            "partitions": s.partitions,
            "layer": s.relation.split(".")[0],
        }
        for name, s in result.stats.items()
    }
    return {
        "seconds": seconds,
        "build_seconds": result.seconds,
        "models": models,
        "partitions": len(result.plan),
        "tests": len(result.tests),
        "failed_tests": sum(1 for r in result.tests if not getattr(r, "passed", True)),
    }


def task_kernels(spec: dict[str, Any]) -> dict[str, Any]:
    """spec: root (a built lake). The whole per-series kernel pipeline over one symbol-day of silver,
    numpy in and out (no DuckDB, no Arrow conversion in the timed part): best of `repeat` after a warm-up."""
    import glob

    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from daedalus.udfs.register import book_from_arrow
    from daedalus.udfs.series import SeqParams, Trades, orderbook_sequential

    root = spec["root"]
    # one file per partition (daedalus/build/publish.py): a glob of the model folder reads each once
    book_files = sorted(glob.glob(f"{root}/silver/orderbook/**/*.parquet", recursive=True))
    trade_files = sorted(glob.glob(f"{root}/silver/trades/**/*.parquet", recursive=True))
    if not book_files:
        return {"error": f"no silver order-book files under {root}: build first"}
    cols = ["ts", "seq", "bids", "asks", "crossed", "break_before"]
    tbl = pa.concat_tables([pq.read_table(f, columns=cols) for f in book_files])
    tbl = tbl.sort_by([("ts", "ascending"), ("seq", "ascending")])
    rows = pa.StructArray.from_arrays([tbl[c].combine_chunks() for c in cols], names=cols)
    book = book_from_arrow(rows)
    tr = (
        pa.concat_tables(
            [pq.read_table(f, columns=["ts", "trade_id", "side", "amount"]) for f in trade_files]
        )
        if trade_files
        else None
    )
    if tr is not None and tr.num_rows:
        tr = tr.sort_by([("ts", "ascending")])
        ts = np.asarray(
            pc.cast(tr["ts"].combine_chunks(), pa.timestamp("us", tz="UTC")).cast(pa.int64()), np.int64
        )
        amount = np.asarray(tr["amount"].combine_chunks().to_numpy(zero_copy_only=False), np.float64)
        is_buy = np.asarray(pc.equal(tr["side"].combine_chunks(), "buy").to_numpy(zero_copy_only=False), bool)
        trades = Trades(ts, np.where(is_buy, amount, 0.0), np.where(is_buy, 0.0, amount))
    else:
        trades = None
    params = SeqParams()
    n = int(book.ts.shape[0])
    orderbook_sequential(book, trades, params)  # JIT (or cache load) outside the timing
    times = []
    for _ in range(int(spec.get("repeat", 3))):
        t = time.perf_counter()
        orderbook_sequential(book, trades, params)
        times.append(time.perf_counter() - t)
    best = min(times)
    return {
        "rows": n,
        "trades": 0 if trades is None else int(trades.ts.shape[0]),
        "seconds": best,
        "rows_per_second": n / best if best > 0 else None,
        "levels": int(book.bid_px.shape[0] + book.ask_px.shape[0]),
        "per_kernel": _per_kernel(lambda: orderbook_sequential(book, trades, params), n),
    }


def _per_kernel(call: Any, n: int) -> dict[str, dict[str, float]]:
    """Each numba kernel's own time in one pipeline call, read from cProfile (a jitted function is
    one opaque call to it, so the profiler's overhead is per call, not per row): rows/s per call."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    call()
    prof.disable()
    out: dict[str, dict[str, float]] = {}
    for (filename, _line, func), (_cc, ncalls, tottime, _ct, _callers) in pstats.Stats(prof).stats.items():  # type: ignore[attr-defined]
        if "/kernels/" not in filename.replace("\\", "/") or tottime <= 0:
            continue
        name = f"{filename.rsplit('/', 1)[-1].removesuffix('.py')}.{func}"
        per_call = tottime / ncalls
        out[name] = {"calls": ncalls, "seconds": tottime, "rows_per_second": n / per_call}
    return out


def task_jit(spec: dict[str, Any]) -> dict[str, Any]:
    """Process start to the first result of every sequential kernel on a tiny series: import, then
    compile (empty NUMBA_CACHE_DIR) or load from the cache (second process)."""
    t0 = time.perf_counter()
    import numpy as np

    from daedalus.udfs.series import Book, SeqParams, Trades, orderbook_sequential, vpin_partition  # noqa: F401

    t_import = time.perf_counter() - t0
    n = 64
    off = np.arange(n + 1, dtype=np.int64)
    book = Book(
        np.arange(n, dtype=np.int64) * 100_000,
        100.0 - np.arange(n) % 3 * 0.01,
        np.ones(n),
        off,
        np.full(n, 100.02),
        np.ones(n),
        off.copy(),
        np.zeros(n, bool),
        np.zeros(n, bool),
    )
    trades = Trades(np.arange(0, n, 4, dtype=np.int64) * 100_000 + 1, np.ones(n // 4), np.zeros(n // 4))
    orderbook_sequential(book, trades, SeqParams())
    return {"seconds": time.perf_counter() - t0, "import_seconds": t_import}


def task_collect(spec: dict[str, Any]) -> dict[str, Any]:
    """spec: messages. The collector engineer's benchmark (daedalus.devkit.bench.collect.bench_collect)."""
    from daedalus.devkit.bench.collect import bench_collect

    r = bench_collect(int(spec.get("messages", 50_000)), channels=spec.get("channels"))
    unaccounted = r.received - r.written - r.dropped
    return {
        "messages": r.messages,
        "measured": r.measured,
        "seconds": r.seconds,
        "rate": r.rate,
        "received": r.received,
        "written": r.written,
        "dropped": r.dropped,
        "unaccounted": unaccounted,
        "p50_ms": r.p50_ms,
        "p99_ms": r.p99_ms,
        "collector_peak_rss_mb": r.peak_rss_mb,
        "cpu_seconds": r.cpu_seconds,
        "channels": list(r.channels),
    }


TASKS = {
    "floor": task_floor,
    "build": task_build,
    "kernels": task_kernels,
    "jit": task_jit,
    "collect": task_collect,
}


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    task = TASKS[spec["task"]]
    if spec["task"] != "collect":
        use_system_arrow_pool()  # as the CLI does for everything but the collector (daedalus/fsio.py)
        fix_malloc_thresholds()
        tune_duckdb_allocator()
    try:
        out = task(spec)
    except Exception as e:  # reported as the scenario's error, with the trace on stderr for --debug
        traceback.print_exc()
        out = {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
    out["max_rss"] = self_max_rss()
    emit_result(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
