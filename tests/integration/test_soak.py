"""`daedalus bench soak` (issue 24): a short run with the faults that damage files and kill builds;
every invariant holds and the lake equals a clean rebuild of its bronze."""

from __future__ import annotations

from pathlib import Path

import pytest

from daedalus.devkit.soak import run_soak

pytestmark = [pytest.mark.network, pytest.mark.slow]


def test_soak_recovers_from_truncated_files_and_a_killed_build(tmp_path: Path) -> None:
    lines: list[str] = []
    report = run_soak(
        tmp_path / "lake",
        seconds=0,
        seed=5,
        cycle_seconds=4,
        echo=lines.append,
        faults=["truncate_bronze", "kill_build", "truncate_raw"],
        cycles=4,
    )
    assert report.failures == [], report.summary()
    assert report.faults == {"none": 1, "truncate_bronze": 1, "kill_build": 1, "truncate_raw": 1}
    assert report.held["loss counted in events"] == 2
    assert report.held["lake equals a clean rebuild"] == 1
    assert report.held["no temp file or empty staging folder"] == 4
    assert len(lines) == 4 and "every invariant held" in report.summary()
