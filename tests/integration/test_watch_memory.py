"""Bounded memory: the watcher's RSS after 1,000 cycles equals its RSS after 10 (short poll interval,
new segments landed and built every 100 cycles, measured with psutil from outside the process)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from s3_helpers import make_lakehouse

from daedalus.build.watch import STATE

pytestmark = pytest.mark.slow


def test_rss_after_1000_cycles_equals_rss_after_10(tmp_path: Path) -> None:
    h = make_lakehouse(tmp_path)
    h.add_trades("2024-08-01", "0000", n=50)
    state = Path(h.root) / STATE

    def cycles() -> int:
        try:
            return json.loads(state.read_text())["cycles"]
        except (FileNotFoundError, json.JSONDecodeError):
            return 0

    proc = h.popen(
        "watch", "--poll-interval", "0.001", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    ps = psutil.Process(proc.pid)
    rss: dict[int, int] = {}
    fed = 1
    try:
        deadline = time.monotonic() + 300
        while cycles() < 1000:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, f"only {cycles()} cycles in 300 s"
            n = cycles()
            if n >= 10 and 10 not in rss:
                # after the first build and a few idle cycles: the steady state to compare with
                rss[10] = ps.memory_info().rss
            if n >= 100 * fed and fed < 10:
                # keep it working: a new day every 100 cycles (land + build + tests + catalog)
                h.add_trades(f"2024-08-{fed + 1:02d}", f"{fed:04d}", n=50, start_id=fed * 100)
                fed += 1
            time.sleep(0.005)
        rss[1000] = ps.memory_info().rss
    finally:
        proc.terminate()
        rc = proc.wait(timeout=30)
    assert rc == 0
    assert fed == 10
    grown = rss[1000] - rss[10]
    print(f"RSS after 10 cycles {rss[10] / 2**20:.1f} MiB, after 1000 {rss[1000] / 2**20:.1f} MiB")
    assert abs(grown) <= max(8 * 2**20, 0.05 * rss[10]), f"RSS grew {grown / 2**20:.1f} MiB over 990 cycles"
    built = sorted(p.parent.name for p in Path(h.root).glob("gold/toy_bars/**/*.parquet"))
    assert built == [f"date=2024-08-{d:02d}" for d in range(1, 11)]
