"""`daedalus bench build` as a command (issue 23): a run whose workers fail exits non-zero."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_bench_build_exits_non_zero_when_its_workers_fail(tmp_path: Path) -> None:
    """The whole command: a memory limit DuckDB refuses fails every DuckDB worker; the command must
    name one and exit 4 (it exited 0 with every worker failed)."""
    out = subprocess.run(
        [
            sys.executable,
            "-P",
            "-m",
            "daedalus",
            "--memory-limit",
            "1KB",
            "bench",
            "build",
            "--hours",
            "0.02",
            "--workdir",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "DAEDALUS_CONFIG": "", "NUMBA_CACHE_DIR": str(tmp_path / "numba")},
    )
    assert out.returncode == 4, out.stdout[-2000:] + out.stderr[-2000:]
    assert "bench worker(s) failed, first floor-start:" in out.stderr
