"""`daedalus bench soak` (issue 24): a short run with faults of every family — at the venues (a wrong
checksum, a disconnect), to the processes (the collector kill -9'd) and to the lake (truncated files,
a killed build); every invariant holds: losses counted in events, recovery within its bound, served
books equal to the fakes' true books, and the lake equals a clean rebuild of its bronze."""

from __future__ import annotations

from pathlib import Path

import pytest

from daedalus.devkit.soak import run_soak

pytestmark = [pytest.mark.network, pytest.mark.slow]


def test_soak_recovers_from_venue_process_and_file_faults(tmp_path: Path) -> None:
    lines: list[str] = []
    report = run_soak(
        tmp_path / "lake",
        seconds=0,
        seed=5,
        cycle_seconds=6,
        echo=lines.append,
        faults=["checksum", "disconnect", "kill_collector", "truncate_bronze", "kill_build", "truncate_raw"],
        cycles=4,
    )
    assert report.failures == [], report.summary()
    assert report.faults == {
        "checksum": 1,
        "disconnect": 1,
        "kill_collector": 1,
        "truncate_bronze": 1,
        "kill_build": 1,
        "truncate_raw": 1,
    }
    assert report.held["loss counted in events"] == 2  # the two truncations
    assert report.held["venue loss counted in events"] == 2  # the checksum break and the disconnect
    assert report.held["recovery within bound"] == 2
    assert report.held["served books equal the fakes' true books"] == 3  # not in the killed cycle
    assert report.held["lake equals a clean rebuild"] == 1
    assert report.held["no temp file, init file or empty staging folder"] == 4
    assert len(lines) == 4 and "every invariant held" in report.summary()
    assert not (tmp_path / "lake-soak-work").exists()
