"""`daedalus watch`: cycles land → build → tests, the checkpoint in _state/watch.json, SIGTERM/SIGINT
exit 0 promptly, a second watcher on the same lake refuses, a corrupt state file is an error."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import pytest
from s3_helpers import make_lakehouse

from daedalus.build.watch import STATE, watch
from daedalus.errors import StorageError


def _state(h) -> dict:
    p = Path(h.root) / STATE
    return json.loads(p.read_text()) if p.exists() else {}


def _wait(pred, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(
                f"watcher exited early with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}"
            )
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _gold_rows(h) -> int:
    files = list(Path(h.root).glob("gold/toy_bars/**/*.parquet"))
    if not files:
        return 0
    return (
        duckdb.connect()
        .execute(f"SELECT sum(n_trades) FROM read_parquet({[str(f) for f in files]})")
        .fetchone()[0]
    )


def test_cycles_land_build_and_report_latency(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DAEDALUS_NO_UDFS", "1")
    h = make_lakehouse(tmp_path)
    h.add_trades("2024-08-08", "0001", n=30)
    lines: list[str] = []
    state = watch(h.config(), poll_interval=0.01, max_cycles=2, udfs=False, echo=lines.append)
    assert state.cycles == 2
    assert state.pending_since is None
    assert len(state.latencies) == 1 and 0 < state.latencies[0] < 120
    assert _gold_rows(h) == 30
    assert (
        lines[0].startswith("cycle 1: landed 1 segments, rebuilt 2 partitions") and "ready→gold" in lines[0]
    )
    assert len(lines) == 1  # the idle second cycle prints nothing

    # new data for another day: only that day is rebuilt; the state survives a restart
    h.add_trades("2024-08-09", "0002", n=12, start_id=500)
    state = watch(h.config(), poll_interval=0.01, max_cycles=1, udfs=False, echo=lines.append)
    assert state.cycles == 3
    assert "rebuilt 2 partitions" in lines[-1]
    assert _gold_rows(h) == 42
    saved = _state(h)
    assert saved["cycles"] == 3 and len(saved["latencies"]) == 2
    assert saved["last_cycle"]["rebuilt"] == 2


def test_corrupt_state_is_an_error_naming_the_file(tmp_path: Path) -> None:
    h = make_lakehouse(tmp_path)
    p = Path(h.root) / STATE
    p.parent.mkdir(parents=True)
    p.write_text('{"cycles": 3, "latenc')
    with pytest.raises(StorageError, match=r"_state/watch.json: corrupt watch state"):
        watch(h.config(), poll_interval=0.01, max_cycles=1, udfs=False)
    assert p.read_text() == '{"cycles": 3, "latenc'  # never silently reset


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_zero_promptly_and_second_watcher_refuses(tmp_path: Path, sig: int) -> None:
    h = make_lakehouse(tmp_path)
    h.add_trades("2024-08-08", "0001", n=30)
    first = h.popen(
        "watch", "--poll-interval", "0.2", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait(lambda: _state(h).get("cycles", 0) >= 2, proc=first)
        assert _gold_rows(h) == 30
        second = h.cli("watch", "--poll-interval", "0.2", timeout=60)
        assert second.returncode == 5
        assert "another `daedalus watch` is already running on this lake" in second.stderr
        assert "_state/watch.lock" in second.stderr
        errors = [
            ln for ln in second.stderr.splitlines() if not ln.startswith("lake: ")
        ]  # the root announced
        assert len(errors) == 1 and "Traceback" not in second.stderr  # one line, no traceback
        t0 = time.monotonic()
        first.send_signal(sig)
        rc = first.wait(timeout=30)
        elapsed = time.monotonic() - t0
    finally:
        if first.poll() is None:
            first.kill()
    assert rc == 0, first.stderr.read()
    assert elapsed < 10
    assert "watch stopped after" in first.stderr.read()
    # the lock is free again: a new watcher runs one cycle
    again = h.cli("watch", "--poll-interval", "0.01", "--max-cycles", "1")
    assert again.returncode == 0, again.stderr


@pytest.mark.slow
def test_sigterm_during_a_build_finishes_or_abandons_the_step(tmp_path: Path) -> None:
    """A stop requested mid-build: exit 0 within the stop timeout, and the next run completes the
    lake (same rows as an uninterrupted build)."""
    h = make_lakehouse(tmp_path)
    for i in range(6):
        h.add_trades(f"2024-08-0{i + 1}", f"{i:04d}", n=40, start_id=i * 100)
    proc = h.popen(
        "watch",
        "--poll-interval",
        "0.1",
        "--stop-timeout",
        "2",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # as soon as the first partition file appears the build is in progress
        _wait(lambda: any(Path(h.root).glob("silver/toy_trades/**/*.parquet")), proc=proc)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 0
    out = h.cli("watch", "--poll-interval", "0.01", "--max-cycles", "1")
    assert out.returncode == 0, out.stderr
    assert _gold_rows(h) == 240


def test_restart_builds_what_a_killed_watcher_landed(tmp_path: Path, monkeypatch) -> None:
    """Killed after land, before its checkpoint: the landed dates are in no state file. The first
    cycle after a start builds whatever is stale at any date, so nothing stays unbuilt."""
    from daedalus.land.lander import land_any

    monkeypatch.setenv("DAEDALUS_NO_UDFS", "1")
    h = make_lakehouse(tmp_path)
    h.add_trades("2024-08-09", "0001", n=30)
    watch(h.config(), poll_interval=0.01, max_cycles=1, udfs=False, echo=lambda _: None)
    h.add_trades("2024-08-01", "0002", n=10, start_id=500)  # an older date than the checkpoint knows
    land_any(h.config())  # what the killed watcher did
    assert _gold_rows(h) == 30
    state = watch(h.config(), poll_interval=0.01, max_cycles=1, udfs=False, echo=lambda _: None)
    assert state.last_cycle["segments"] == 0 and state.last_cycle["rebuilt"] == 2
    assert _gold_rows(h) == 40
