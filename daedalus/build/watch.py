"""`daedalus watch`: land → incremental build of the touched partitions → data tests, in a loop.

One cycle:
1. note the ready segments and when each became ready (file mtime: the collector's close);
2. land them (local lake: `land`; S3 lake: land in the local spool, push verified);
3. build the selected models from the earliest touched date on (the build's fingerprints pick
   exactly the stale partitions: those reading a touched bronze partition, and their children),
   with data tests; a failure is reported and the cycle's dates stay pending in the checkpoint;
4. save `_state/watch.json` (atomic) with the cycle count and the ready→gold latency: from the
   moment the oldest landed segment became ready until its gold partitions were written.

Stopping: SIGINT/SIGTERM ask the loop to stop after the step in progress; if that step has not
finished `stop_timeout` seconds later it is abandoned (a land or build interrupted anywhere is
repaired by the next run: segments are re-landed from raw/processing/, builds follow the
manifest), and the process exits 0. A second Ctrl+C stops at once. A lock under `_state/` keeps a
second watcher of the same lake from racing the first. Memory is bounded: nothing accumulates
across cycles (the state keeps the last `HISTORY` latencies only; each build opens and closes its
own DuckDB connection).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from daedalus.errors import DaedalusError, StorageError

if TYPE_CHECKING:
    from daedalus.config import Config
    from daedalus.lake import Lake

STATE = "_state/watch.json"
HISTORY = 100  # latencies kept in the state file


class StopNow(BaseException):
    """Raised in the main thread when a stop request outlives `stop_timeout` (or on a second Ctrl+C)."""


@dataclass
class CycleReport:
    cycle: int
    segments: int = 0
    partitions: int = 0
    rebuilt: int = 0
    latency_seconds: float | None = None  # ready → gold of the oldest segment landed in this cycle
    seconds: float = 0.0
    error: str | None = None

    def line(self) -> str:
        lat = f", ready→gold {self.latency_seconds:.2f}s" if self.latency_seconds is not None else ""
        err = f", error: {self.error}" if self.error else ""
        return (
            f"cycle {self.cycle}: landed {self.segments} segments, rebuilt {self.rebuilt} partitions "
            f"in {self.seconds:.2f}s{lat}{err}"
        )


@dataclass
class WatchState:
    """`_state/watch.json`: what survives a restart."""

    cycles: int = 0
    pending_since: str | None = None  # earliest date landed but not yet built successfully
    latencies: list[float] = field(default_factory=list)
    last_cycle: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, lake: Lake) -> WatchState:
        raw = lake.read_bytes(STATE)
        if raw is None:
            return cls()
        try:
            d = json.loads(raw)
            return cls(
                int(d["cycles"]),
                d.get("pending_since"),
                [float(x) for x in d.get("latencies", [])],
                dict(d.get("last_cycle", {})),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise StorageError(
                f"{lake.url(STATE)}: corrupt watch state ({type(e).__name__}: {e}); fix or "
                "delete it (the next cycle then rebuilds from the manifest)"
            ) from None

    def save(self, lake: Lake) -> None:
        self.latencies = self.latencies[-HISTORY:]
        lake.write_atomic(
            STATE,
            json.dumps(
                {
                    "cycles": self.cycles,
                    "pending_since": self.pending_since,
                    "latencies": self.latencies,
                    "last_cycle": self.last_cycle,
                    "saved_at": time.time(),
                }
            ).encode(),
        )


class Stopper:
    """Signal handling: first SIGINT/SIGTERM = stop after this step (bounded), second = stop now."""

    def __init__(self, stop_timeout: float) -> None:
        self.event = threading.Event()
        self.stop_timeout = stop_timeout
        self.in_step = False
        self._old: dict[int, Any] = {}

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        self._old[signal.SIGALRM] = signal.signal(signal.SIGALRM, self._alarm)

    def restore(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.event.is_set() and self.in_step:
            raise StopNow("second signal")
        self.event.set()
        if self.in_step:
            signal.setitimer(signal.ITIMER_REAL, self.stop_timeout)
            # A step stuck inside C code (a long DuckDB query) never sees the alarm: past twice the
            # timeout, leave without cleanup. Every step is crash-safe, so this loses nothing.
            timer = threading.Timer(2 * self.stop_timeout + 1, os._exit, args=(0,))
            timer.daemon = True
            timer.start()

    def _alarm(self, signum: int, frame: Any) -> None:
        if self.in_step:
            raise StopNow(f"the step did not finish within {self.stop_timeout}s of the stop request")

    @contextlib.contextmanager
    def step(self) -> Iterator[None]:
        self.in_step = True
        try:
            yield
        finally:
            self.in_step = False
            signal.setitimer(signal.ITIMER_REAL, 0)


def _ready_times(config: Config) -> dict[str, float]:
    """Segment name → when it became ready (mtime), for the segments now in raw/ready/."""
    from daedalus.fsio import is_local_root, raw_segments_root
    from daedalus.land.landing import SEGMENT_SUFFIXES, LandLayout

    if not is_local_root(config.storage.root) and not config.ingestion.local_root:
        return {}  # no local spool: nothing to time
    out: dict[str, float] = {}
    for _, _, seg in LandLayout(raw_segments_root(config.storage.root, config.ingestion.local_root)).segments(
        "ready"
    ):
        if seg.suffix in SEGMENT_SUFFIXES:
            with contextlib.suppress(FileNotFoundError):
                out[seg.name] = seg.stat().st_mtime
    return out


def run_cycle(
    config: Config,
    state: WatchState,
    stopper: Stopper,
    select: list[str] | None = None,
    udfs: bool = True,
    catch_up: bool = False,
) -> CycleReport:
    """One land → build → test cycle (see the module docstring). `catch_up` builds whatever is
    stale at any date (the first cycle after a start: a crash may have landed data whose dates
    never reached the checkpoint)."""
    from daedalus.build import api
    from daedalus.land.lander import land_any

    started = time.monotonic()
    report = CycleReport(state.cycles + 1)
    ready = _ready_times(config)
    with stopper.step():
        landed = land_any(config)
    report.segments = landed.segments
    report.partitions = len(landed.partitions)
    if landed.errors:
        report.error = "; ".join(landed.errors)
    dates = sorted(d for _, _, d in landed.partitions)
    if dates and (state.pending_since is None or dates[0] < state.pending_since):
        state.pending_since = dates[0]
    if (catch_up or state.pending_since is not None) and not stopper.event.is_set():
        try:
            with stopper.step():
                start = None if catch_up else state.pending_since
                result = api.build(config, select=select or None, start=start, udfs=udfs)
            report.rebuilt = len(result.rebuilt)
            state.pending_since = None
            if landed.segments and ready:
                oldest = min(ready.values())
                report.latency_seconds = max(0.0, time.time() - oldest)
                state.latencies.append(round(report.latency_seconds, 3))
        except DaedalusError as e:
            # The dates stay pending, so the next cycle retries: after a failing data test the
            # partitions of that model are built (fingerprints match, so it is not re-tested) and
            # the build goes on to the models downstream of it; a storage error is simply retried.
            report.error = str(e)
    state.cycles += 1
    report.seconds = time.monotonic() - started
    state.last_cycle = {k: v for k, v in vars(report).items()}
    return report


@contextlib.contextmanager
def watcher_lock(lake: Lake) -> Iterator[None]:
    """`_state/watch.lock`: one watcher per lake; the second refuses naming the lock (and its owner)."""
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(lake.lock("watch"))
    except StorageError as e:
        detail = str(e).split(": ", 1)[-1]
        raise StorageError(
            f"{lake.url('_state/watch.lock')}: another `daedalus watch` is already running on "
            f"this lake ({detail}); stop it first: one watcher per lake"
        ) from None
    with stack:
        yield


def watch(
    config: Config,
    poll_interval: float | None = None,
    max_cycles: int | None = None,
    select: list[str] | None = None,
    stop_timeout: float = 20.0,
    udfs: bool = True,
    echo: Callable[[str], None] = print,
) -> WatchState:
    """Run cycles until a signal (or `max_cycles`); returns the final state. Exit code 0 on a stop."""
    from daedalus.lake import open_lake

    interval = config.watch.poll_interval_seconds if poll_interval is None else poll_interval
    lake = open_lake(config)
    stopper = Stopper(stop_timeout)
    stopper.install()
    try:
        with watcher_lock(lake):
            state = WatchState.load(lake)  # a corrupt file is an error naming it, never a reset
            done = 0
            caught_up = False  # until one build after the start has succeeded
            while not stopper.event.is_set() and (max_cycles is None or done < max_cycles):
                try:
                    report = run_cycle(config, state, stopper, select, udfs, catch_up=not caught_up)
                    caught_up = caught_up or report.error is None
                except StopNow as e:
                    echo(f"stopping: {e}; the interrupted step is repaired by the next run")
                    break
                except DaedalusError as e:  # e.g. the endpoint is down: report, retry next cycle
                    report = CycleReport(state.cycles + 1, error=str(e))
                    state.cycles += 1
                with stopper.step():
                    state.save(lake)
                if report.segments or report.rebuilt or report.error:
                    echo(report.line())
                done += 1
                if report.segments or report.rebuilt:
                    gc.collect()  # drop a build's cycles of objects now, not at some later cycle
                del report
                stopper.event.wait(interval)
            return state
    finally:
        stopper.restore()
