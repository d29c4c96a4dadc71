"""Benchmark of the sequential stage on one synthetic symbol-day (daedalus.devkit.synth defaults: 864,000
snapshots at 100 ms, 20 levels a side, 10 trades/s), printed in one run:

1. kernels alone: each kernel and the whole per-series pipeline on numpy arrays, rows/s
   (target ≥ 20 M rows/s per kernel);
2. the whole sequential stage — list aggregation, Arrow conversion, kernels, UNNEST, the VPIN ASOF
   join — i.e. gold.orderbook_seq's compiled SQL for the day, against a DuckDB scan of the bronze
   order-book lists of the same day (target ≤ 1.5×);
3. JIT start-up: a fresh process with an empty numba cache (cold) and a second one reusing it (warm).

    /work/venv/bin/python benchmarks/bench_sequential.py [--root /tmp/daedalus-bench-seq] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

STARTUP = """
import time
t = time.perf_counter()
import numpy as np
from daedalus.udfs.series import Book, SeqParams, orderbook_sequential
n = 50
book = Book(np.arange(n, dtype=np.int64) * 100_000, np.full(n, 100.0), np.ones(n), \
np.arange(n + 1, dtype=np.int64),
            np.full(n, 100.01), np.ones(n), np.arange(n + 1, dtype=np.int64), \
np.zeros(n, bool), np.zeros(n, bool))
orderbook_sequential(book, None, SeqParams())
print(time.perf_counter() - t)
"""


def _best(fn, repeat: int = 3, clock=time.perf_counter) -> float:
    times = []
    for _ in range(repeat):
        t = clock()
        fn()
        times.append(clock() - t)
    return min(times)


def jit_startup() -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        runs = [
            float(
                subprocess.run(
                    [sys.executable, "-c", STARTUP], env=env, check=True, capture_output=True, text=True
                ).stdout.strip()
            )
            for _ in range(2)
        ]
    return runs[0], runs[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=str(Path(tempfile.gettempdir()) / "daedalus-bench-seq"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--kernels-only", action="store_true", help="skip the SQL stage and the JIT start-up runs"
    )
    args = ap.parse_args()

    from daedalus.build import api
    from daedalus.config import load_config
    from daedalus.devkit.synth import generate
    from daedalus.duck import connect
    from daedalus.udfs.kernels.kyle import kyle_lambda
    from daedalus.udfs.kernels.ofi import ofi_mlofi, ofi_pairs
    from daedalus.udfs.kernels.segments import segment_ids
    from daedalus.udfs.kernels.spread import spread_percentile
    from daedalus.udfs.kernels.windows import window_sum, window_sums
    from daedalus.udfs.register import book_from_arrow, trades_from_arrow
    from daedalus.udfs.series import US, SeqParams, series_from_book, series_sequential

    root = Path(args.root)
    cfg = load_config(
        None,
        {
            "storage.root": str(root),
            "duckdb.temp_directory": str(root / "_tmp"),
            "duckdb.threads": args.threads,
        },
    )
    if not (root / "bronze").exists():
        t = time.perf_counter()
        generate(root, symbols=["BTC/USDT"], start="2024-01-01", days=1)
        print(f"synth symbol-day written in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    api.build(cfg, select=["+trades", "+orderbook", "+vpin_buckets"], run_tests=False, catalog=False)
    print(f"silver (+ vpin_buckets) ready in {time.perf_counter() - t:.1f} s")

    con = connect(cfg)
    trades = f"read_parquet('{root}/silver/trades/**/*.parquet', hive_partitioning=false)"
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = ["ts", "seq", "bids", "asks", "crossed", "break_before"]
    # The newest file of each partition: a rebuild leaves replaced files for a grace period.
    newest: dict[Path, Path] = {}
    for f in (root / "silver" / "orderbook").rglob("*.parquet"):
        if f.parent not in newest or f.stat().st_mtime > newest[f.parent].stat().st_mtime:
            newest[f.parent] = f
    tbl = pa.concat_tables([pq.read_table(f, columns=cols) for f in sorted(newest.values())])
    tbl = tbl.sort_by([("ts", "ascending"), ("seq", "ascending")])
    rows = pa.StructArray.from_arrays(
        [tbl[c].combine_chunks() for c in ("ts", "bids", "asks", "crossed", "break_before")],
        names=["ts", "bids", "asks", "crossed", "break_before"],
    )
    book = book_from_arrow(rows)
    tarr = con.execute(
        f"SELECT list({{'ts': ts, 'buy': CASE WHEN side = 'buy' THEN amount ELSE 0.0 END, "
        f"'sell': CASE WHEN side = 'sell' THEN amount ELSE 0.0 END}} ORDER BY ts, trade_id) FROM {trades}"
    ).arrow()
    tarr = tarr.read_all() if hasattr(tarr, "read_all") else tarr
    flow = trades_from_arrow(tarr.column(0).combine_chunks()[0].values)
    n = book.ts.shape[0]
    p = SeqParams()
    print(
        f"\n1. kernels alone — {n:,} snapshots, {flow.ts.shape[0]:,} trades, "
        f"{book.bid_px.shape[0]:,} bid levels"
    )
    seg = segment_ids(book.ts, book.break_before, np.int64(300 * US))
    sr = series_from_book(book, p)
    out = series_sequential(sr, flow, p)
    hi = np.arange(n, dtype=np.int64)
    kernels = {
        "segment_ids": lambda: segment_ids(book.ts, book.break_before, np.int64(300 * US)),
        "ofi_mlofi (10 levels)": lambda: ofi_mlofi(
            book.bid_px,
            book.bid_sz,
            book.bid_off,
            book.ask_px,
            book.ask_sz,
            book.ask_off,
            seg,
            book.crossed,
            np.int64(10),
            0.5,
        ),
        "window_sum (one column, 900 s)": lambda: window_sum(
            book.ts, seg, out["ofi"], book.ts, seg, hi, np.int64(900 * US)
        ),
        "window_sums (3 columns, 900 s)": lambda: window_sums(
            book.ts,
            seg,
            np.stack([out["ofi"], out["mlofi"], out["log_return"]]),
            book.ts,
            seg,
            hi,
            np.int64(900 * US),
        ),
        "kyle_lambda (300 s)": lambda: kyle_lambda(
            book.ts, seg, out["log_return"], out["ofi"], np.int64(300 * US)
        ),
        "spread_percentile (300 s)": lambda: spread_percentile(
            book.ts, seg, sr.spread / sr.mid * 1e4, np.int64(300 * US)
        ),
        "ofi_pairs (row-wise UDF kernel, 10 levels)": lambda: ofi_pairs(
            book.bid_px,
            book.bid_sz,
            book.bid_off,
            book.ask_px,
            book.ask_sz,
            book.ask_off,
            book.bid_px,
            book.bid_sz,
            book.bid_off,
            book.ask_px,
            book.ask_sz,
            book.ask_off,
            np.int64(10),
            0.5,
        ),
        "series pipeline (all columns, 5 horizons)": lambda: series_sequential(sr, flow, p),
    }
    # Kernels are single-threaded: CPU time (process_time) is their cost even on a shared machine;
    # wall time is printed beside it.
    print(f"   {'kernel':<44} {'CPU ms':>8}   {'M rows/s (CPU)':>14}   {'wall ms':>8}")
    for name, fn in kernels.items():
        cpu = _best(fn, clock=time.process_time)
        wall = _best(fn)
        print(f"   {name:<44} {cpu * 1e3:8.1f}   {n / cpu / 1e6:14.1f}   {wall * 1e3:8.1f}")

    if args.kernels_only:
        return
    print(
        f"\n2. sequential stage vs bronze scan (threads={args.threads}; wall time, same run; "
        f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )
    bronze = f"read_parquet('{root}/bronze/orderbook/**/*.parquet', hive_partitioning=true)"
    scan = _best(
        lambda: con.execute(f"SELECT sum(len(bids)) + sum(len(asks)), count(*) FROM {bronze}").fetchall()
    )
    sql = api.compile_sql(cfg, "orderbook_seq", "exchange=binance,symbol=BTC/USDT,date=2024-01-01")
    stage = _best(lambda: con.execute(f"CREATE OR REPLACE TEMP TABLE seq_out AS {sql}"), repeat=2)
    rows = con.execute("SELECT count(*) FROM seq_out").fetchone()[0]
    print(f"   DuckDB scan of bronze order-book lists      {scan:8.2f} s")
    print(f"   gold.orderbook_seq SQL ({rows:,} rows)       {stage:8.2f} s   = {stage / scan:.2f}× the scan")

    cold, warm = jit_startup()
    print(f"\n3. JIT start-up in a fresh process: cold cache {cold:.2f} s, warm cache {warm:.2f} s")


if __name__ == "__main__":
    main()
