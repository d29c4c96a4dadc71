"""`daedalus bench soak` (issue 24): a short run with faults of every family — at a venue (a wrong
checksum), to the processes (the collector and a build kill -9'd) and to the lake (a truncated file); every invariant holds: losses counted in events, recovery within its bound, served
books equal to the fakes' true books, and the lake equals a clean rebuild of its bronze."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_exchange import libfaketime_or_skip

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


@pytest.mark.s3
def test_soak_on_s3_survives_an_endpoint_outage(tmp_path: Path) -> None:
    """`--s3`: the lake on moto_server (started by the soak) behind a loopback proxy; the proxy stops
    while a build runs and a second build starts inside the outage: both fail with exit 5 and one
    line, no bronze object is lost, every view still reads, the next build exits 0, and the final S3
    lake equals a clean local rebuild of its bronze."""
    lines: list[str] = []
    report = run_soak(
        tmp_path / "lake",
        seconds=0,
        seed=3,
        cycle_seconds=6,
        echo=lines.append,
        faults=["s3_outage"],
        cycles=2,
    )
    assert report.failures == [], report.summary()
    assert report.faults == {"s3_outage": 1}  # cycle 1 is fault-free
    assert report.held["build in an S3 outage exits 5 with one error line"] >= 1
    assert report.held["S3 outage loses nothing written"] == 1
    assert report.held["catalog readable after an S3 outage"] == 1
    assert report.held["build after an S3 outage exits 0 within bound"] == 1
    assert report.held["lake equals a clean rebuild"] == 1
    assert not (tmp_path / "lake-soak.yaml").exists()  # the S3 config is removed with the server


def test_soak_holds_through_a_host_clock_step(tmp_path: Path) -> None:
    """host_clock_step: the collection child's wall clock steps +120 s and back 2 s later under
    libfaketime (monotonic untouched, as an NTP step): both steps are `clock_step` events, the books
    are served again and equal the fakes' true books, every build passes its data tests, and the
    lake equals a clean rebuild."""
    libfaketime_or_skip()
    lines: list[str] = []
    report = run_soak(
        tmp_path / "lake",
        seconds=0,
        seed=4,
        cycle_seconds=6,
        echo=lines.append,
        faults=["host_clock_step"],
        cycles=2,
    )
    assert report.failures == [], report.summary()
    assert report.faults == {"host_clock_step": 1}  # cycle 1 is fault-free
    assert report.held["venue loss counted in events"] == 1  # clock_step events reached bronze
    assert report.held["recovery within bound"] == 1
    assert report.held["served books equal the fakes' true books"] == 2
    assert report.held["build recovers (exit 0)"] == 2  # book_unserved_share among its tests
    assert report.held["lake equals a clean rebuild"] == 1
