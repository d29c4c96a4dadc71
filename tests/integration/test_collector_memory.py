"""The collector's memory stays under docs/deploy-pi.md's systemd `MemoryMax` under a flat-out load, with
the default and the Pi profile (issue 17): the queue is bounded in bytes (ingestion.queue_max_mb),
not only in records (50,000 full-depth books used to take ~600 MB).

Each run is `bench_collect` (the fake Binance in a child process publishing depth diffs flat out, the
real ccxt.pro client, queue and Parquet sink) in a fresh interpreter, whose peak RSS is measured.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]

RUN = """
import json, sys
from daedalus.devkit.bench.collect import bench_collect
if __name__ == "__main__":
    cfg = sys.argv[1] or None
    r = bench_collect(int(sys.argv[2]), queue_maxsize=None, config_path=cfg)
    print(json.dumps({"rss": r.peak_rss_mb, "queue_peak": r.queue_peak_mb, "queue_max": r.queue_max_mb,
                      "received": r.received, "written": r.written, "dropped": r.dropped}))
"""


def memory_max_mb() -> float:
    """MemoryMax of the collector's systemd unit in docs/deploy-pi.md."""
    text = (REPO / "docs" / "deploy-pi.md").read_text()
    unit = text[text.index("daedalus-collect.service") :]
    return float(re.search(r"MemoryMax=(\d+)M", unit).group(1))


@pytest.mark.parametrize("profile", ["", "config/pi.yaml"])
def test_collector_rss_stays_under_memory_max_flat_out(tmp_path: Path, profile: str) -> None:
    script = tmp_path / "run.py"
    script.write_text(RUN)
    cfg = str(REPO / profile) if profile else ""
    proc = subprocess.run(
        [sys.executable, str(script), cfg, "30000"], capture_output=True, text=True, timeout=900, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["received"] == r["written"] + r["dropped"]
    assert 0 < r["queue_peak"] <= r["queue_max"] + 0.1  # the byte bound holds (one record over at most)
    assert r["rss"] < memory_max_mb(), r
