"""What writing a built lake's silver and gold files costs, against the bronze floor (issue 23).

A build cannot take less than encoding what it writes. For every silver/gold file of a built lake
this rewrites the file's rows (read before the clock starts) with the build's own writers and prints
the seconds, the median of `--repeat` runs, and the sum as a multiple of the floor that
`daedalus bench build` divides by (DuckDB reading every bronze book list of `--channel`):
  pyarrow  the sliced partitions' writer (daedalus/build/materializations/partitioned.py _write_local)
  duckdb   one DuckDB COPY, as the other partitions and remote lakes are written (`--duckdb`)

    .venv/bin/python benchmarks/write_floor.py --lake LAKE [--channel book_updates] [--duckdb]

LAKE: e.g. a lake kept by `daedalus bench build --updates --workdir W --keep`.
"""

from __future__ import annotations

import argparse
import glob
import statistics
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from daedalus.build.materializations.partitioned import STREAM_BATCH_ROWS, _write_local
from daedalus.config import load_config
from daedalus.devkit.bench.worker import FLOOR_SQL


def floor_seconds(lake: Path, channel: str, repeat: int) -> float:
    """The bench's floor: DuckDB reading every bronze book list of `channel` (after one warm-up)."""
    from daedalus import duck

    files = sorted(glob.glob(f"{lake}/bronze/{channel}/**/*.parquet", recursive=True))
    if not files:
        raise SystemExit(f"error: no bronze {channel} files under {lake}")
    con = duck.connect(load_config(None), udfs=False)
    sql = FLOOR_SQL.format(files="[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]")
    con.execute(sql).fetchall()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        con.execute(sql).fetchall()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lake", type=Path, required=True, help="a built lake (bronze, silver, gold)")
    ap.add_argument("--channel", default="book_updates", help="the floor's bronze channel (or orderbook)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--row-group-rows", type=int, default=16384)
    ap.add_argument("--duckdb", action="store_true", help="also time one DuckDB COPY of each file")
    args = ap.parse_args()

    floor = floor_seconds(args.lake, args.channel, max(args.repeat, 3))
    con = duckdb.connect()
    con.execute("SET threads = 1; SET preserve_insertion_order = true; SET enable_progress_bar = false")
    totals = {"pyarrow": 0.0, "duckdb": 0.0}
    print(f"floor ({args.channel}): {floor:.3f} s")
    print(
        f"{'file':<40} {'rows':>9} {'MB':>6} {'pyarrow s':>10}" + (f" {'duckdb s':>9}" if args.duckdb else "")
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "out.parquet")
        for f in sorted(glob.glob(f"{args.lake}/silver/**/*.parquet", recursive=True)) + sorted(
            glob.glob(f"{args.lake}/gold/**/*.parquet", recursive=True)
        ):
            table = pq.read_table(f)
            name = "/".join(Path(f).relative_to(args.lake).parts[:2])
            py = timed(
                lambda t=table: _write_local(
                    out, t.schema, iter(t.to_batches(STREAM_BATCH_ROWS)), args.row_group_rows
                ),
                args.repeat,
            )
            totals["pyarrow"] += py
            line = f"{name:<40} {table.num_rows:>9,} {Path(f).stat().st_size / 2**20:>6.1f} {py:>10.2f}"
            if args.duckdb:
                con.register("rows_in", table)
                opts = f"FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {args.row_group_rows}"
                copy = f"COPY rows_in TO '{out}' ({opts})"
                dd = timed(lambda c=copy: con.execute(c), args.repeat)
                con.unregister("rows_in")
                totals["duckdb"] += dd
                line += f" {dd:>9.2f}"
            print(line, flush=True)
    print(f"all files, pyarrow: {totals['pyarrow']:.2f} s = {totals['pyarrow'] / floor:.1f}x the floor")
    if args.duckdb:
        print(f"all files, duckdb:  {totals['duckdb']:.2f} s = {totals['duckdb'] / floor:.1f}x the floor")


if __name__ == "__main__":
    main()
