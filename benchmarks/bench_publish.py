"""What the one-file-per-partition layout (issue 15) costs a build: the merge of time slices.

    python benchmarks/bench_publish.py [--hours 24] [--snapshot-ms 100] [--slice-hours 2]

Generates a synthetic symbol-day as bronze (daedalus.devkit.synth, in a subprocess), builds every model
with the Pi profile's slicing (`etl.slice_hours`, one thread, `memory_limit` 256MB) and prints the
build time, the time spent merging each sliced partition's slice files into its one `data.parquet`
(daedalus/build/materializations/partitioned.py `merge_files`), and the time spent publishing (renames).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--snapshot-ms", type=int, default=100)
    ap.add_argument("--slice-hours", type=int, default=2)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="daedalus-publish-"))
    subprocess.run(
        [
            sys.executable,
            "-c",
            (
                "from daedalus.devkit.synth import generate; "
                f"generate({str(root / 'lake')!r}, hours={args.hours}, snapshot_ms={args.snapshot_ms})"
            ),
        ],
        check=True,
    )

    from daedalus.build import api, execute, publish
    from daedalus.build.materializations import partitioned
    from daedalus.config import load_config

    spent = {"merge": 0.0, "publish": 0.0, "merged": 0}
    real_merge, real_publish = partitioned.merge_files, publish.publish_model

    def merge(*a, **k):  # noqa: ANN002, ANN003, ANN202
        t = time.perf_counter()
        try:
            return real_merge(*a, **k)
        finally:
            spent["merge"] += time.perf_counter() - t
            spent["merged"] += len(a[3]) > 1

    def publish_model(*a, **k):  # noqa: ANN002, ANN003, ANN202
        t = time.perf_counter()
        try:
            return real_publish(*a, **k)
        finally:
            spent["publish"] += time.perf_counter() - t

    partitioned.merge_files = merge
    execute.publish_model = publish_model
    cfg = load_config(
        overrides={
            "storage.root": str(root / "lake"),
            "duckdb.temp_directory": str(root / "tmp"),
            "duckdb.threads": 1,
            "duckdb.memory_limit": "256MB",
            "etl.slice_hours": args.slice_hours,
        }
    )
    t = time.perf_counter()
    result = api.build(cfg, run_tests=False)
    total = time.perf_counter() - t
    rows = sum(s.rows for s in result.stats.values())
    print(
        f"{args.hours} h synthetic day at {args.snapshot_ms} ms, slices of {args.slice_hours} h: "
        f"build {total:.1f} s "
        f"({rows} rows written), merging slices {spent['merge']:.1f} s ({spent['merge'] / total:.0%}, "
        f"{spent['merged']} partitions), publishing {spent['publish']:.2f} s; lake {root / 'lake'}"
    )


if __name__ == "__main__":
    main()
