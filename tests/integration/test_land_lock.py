"""`land` takes a lock like `build` (issue 17): a second lander stops with one line, and a manual
`land` during `watch` costs watch one cycle's land, not its life."""

from __future__ import annotations

from pathlib import Path

from s3_helpers import make_lakehouse

from daedalus.build.watch import watch
from daedalus.land.landing import land_lock


def test_second_land_exits_with_one_line(tmp_path: Path) -> None:
    h = make_lakehouse(tmp_path)
    h.add_trades("2024-08-08", "0001")
    with land_lock(h.spool):  # a real flock on the lake's land.lock, as a running lander holds it
        out = h.cli("land")
    assert out.returncode != 0
    lines = [
        ln for ln in out.stderr.strip().splitlines() if not ln.startswith("lake: ")
    ]  # the root announced
    assert len(lines) == 1 and "another `daedalus land`" in lines[0] and "Traceback" not in out.stderr
    assert list((h.spool / "raw" / "ready").rglob("segment_*.parquet"))  # nothing was touched
    out = h.cli("land")  # the lock is free again
    assert out.returncode == 0 and "landed 1 segments (30 rows" in out.stdout


def test_watch_survives_a_manual_land(tmp_path: Path) -> None:
    h = make_lakehouse(tmp_path)
    h.add_trades("2024-08-08", "0001")
    cfg = h.config()
    lines: list[str] = []
    with land_lock(h.spool):
        state = watch(cfg, poll_interval=0, max_cycles=1, udfs=False, echo=lines.append)
    assert state.cycles == 1 and any("another `daedalus land`" in line for line in lines), lines
    state = watch(cfg, poll_interval=0, max_cycles=1, udfs=False, echo=lines.append)
    assert state.last_cycle["segments"] == 1 and state.last_cycle["error"] is None
