"""Build benchmark of issue 4: the SQL silver/gold models against a DuckDB scan of the bronze lists.

    python benchmarks/bench_build.py [--root DIR] [--hours 24] [--memory-limit 512MB]

Generates a synthetic symbol-day (daedalus.devkit.synth: 864,000 snapshots at 100 ms, 20 levels a side,
10 trades/s) as bronze (in a subprocess, so its memory does not count), then times in this one
process: the floor — DuckDB reading every bronze order-book list (prices and sizes of both sides) —
and the build of each model, and prints the ratios and this process's peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MY_GOLD = ("orderbook_hf", "orderbook_bars", "trade_bars", "ticker_hf")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", help="lake root (default: a temporary directory)")
    ap.add_argument("--hours", type=float, default=24.0, help="hours of the synthetic day (default 24)")
    ap.add_argument("--memory-limit", default="512MB")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    root = Path(args.root or tempfile.mkdtemp(prefix="daedalus-bench-"))

    if not (root / "bronze" / "orderbook").exists():
        t = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-c",
                (
                    "from daedalus.devkit.synth import generate; import json; "
                    f"print(json.dumps(generate({str(root)!r}, hours={args.hours}).as_dict()['rows']))"
                ),
            ],
            check=True,
        )
        print(f"synthetic bronze generated in {time.perf_counter() - t:.1f} s under {root}")

    import duckdb

    from daedalus.build import build
    from daedalus.config import load_config

    overrides = {
        "storage.root": str(root),
        "duckdb.temp_directory": str(root / "_tmp"),
        "duckdb.memory_limit": args.memory_limit,
    }
    if args.threads:
        overrides["duckdb.threads"] = args.threads
    cfg = load_config(overrides=overrides)

    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{args.memory_limit}'")
    if args.threads:
        con.execute(f"SET threads = {args.threads}")
    glob = f"{root}/bronze/orderbook/*/*/*.parquet"
    # The floor: decode every bronze list (offsets and the price/size children of both sides).
    t = time.perf_counter()
    n, levels, _, _ = con.execute(
        "SELECT count(*), sum(len(bids) + len(asks)), max(bids[-1].price) + max(bids[-1].size), "
        f"max(asks[-1].price) + max(asks[-1].size) FROM read_parquet('{glob}')"
    ).fetchone()
    floor = time.perf_counter() - t
    # For scale: the same scan evaluating one lambda over every level of both sides.
    t = time.perf_counter()
    con.execute(
        "SELECT sum(list_sum(list_transform(bids, l -> l.price * l.size)) "
        f"+ list_sum(list_transform(asks, l -> l.price * l.size))) FROM read_parquet('{glob}')"
    ).fetchone()
    touch = time.perf_counter() - t
    con.close()
    print(
        f"floor: scan of {n:,} bronze snapshots ({levels:,} levels): {floor:.2f} s "
        f"(one lambda over every level: {touch:.2f} s)"
    )

    t = time.perf_counter()
    result = build(cfg, full_refresh=True, catalog=False, run_tests=False)
    total = time.perf_counter() - t
    rows = []
    for name, st in result.stats.items():
        rows.append((name, st.rows, st.seconds))
        print(f"  {name:16s} {st.rows:>10,} rows {st.seconds:7.2f} s  {st.seconds / floor:5.1f}x floor")
    mine = sum(s for name, _, s in rows if name in MY_GOLD)
    silver = sum(s for name, _, s in rows if name in ("orderbook", "trades", "ticker", "events"))
    print(f"SQL gold models of issue 4 ({', '.join(MY_GOLD)}): {mine:.2f} s = {mine / floor:.1f}x floor")
    print(f"silver models: {silver:.2f} s = {silver / floor:.1f}x floor; whole build {total:.2f} s")
    print(
        f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB "
        f"(duckdb.memory_limit {args.memory_limit})"
    )


if __name__ == "__main__":
    main()
