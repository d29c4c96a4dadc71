"""`daedalus bench soak` (issue 24): a short run with faults of every family — at a venue (a wrong
checksum), to the processes (the collector and a build kill -9'd) and to the lake (a truncated file); every invariant holds: losses counted in events, recovery within its bound, served
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
        faults=["checksum", "kill_collector", "truncate_bronze", "kill_build"],
        cycles=3,
    )
    assert report.failures == [], report.summary()
    assert report.faults == {"checksum": 1, "kill_collector": 1, "truncate_bronze": 1, "kill_build": 1}
    assert report.held["loss counted in events"] == 1  # the truncation
    assert report.held["venue loss counted in events"] == 1  # the checksum break
    assert report.held["recovery within bound"] == 1
    assert report.held["served books equal the fakes' true books"] == 2  # not in the killed cycle
    assert report.held["lake equals a clean rebuild"] == 1
    assert report.held["no temp file, init file or empty staging folder"] == 3
    assert len(lines) == 3 and "every invariant held" in report.summary()
    assert not (tmp_path / "lake-soak-work").exists()
