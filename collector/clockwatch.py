"""Steps of the host's wall clock, recorded in `events` (issue 24).

Every receive time (`capture_ts`) follows the host's wall clock (collector/clock.py: a forward step
at once, a backward step absorbed so that receive times never run backward); a step of that clock
(NTP correcting a wrong clock, an operator's `date -s`) does not move the monotonic clock the
collector's timers use. Nothing in the rows shows
such a jump, so the watch compares the two clocks every `interval` seconds: when their difference
moves by more than `threshold` seconds it records one `clock_step` event per exchange collected
(`count` = the step in ms, signed; interval_start/interval_end = the wall clock at the last check
and now; `detail` says which way and how far). A `clock_step` breaks no series: the feeds were not cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable

from daedalus.collector.clock import receive_ns
from daedalus.collector.connection import Emitter, event_row
from daedalus.collector.queue import Record

CLOCK_STEP_THRESHOLD_S = 1.0  # NTP slews drift far slower; a step is a jump at least this large
CLOCK_CHECK_INTERVAL_S = 1.0


def exchanges_of(collectors: Iterable[object]) -> list[tuple[str, str]]:
    """(source, exchange) of every collector: the events name each exchange, never a source."""
    out = []
    for c in collectors:
        exchange = getattr(c, "exchange_id", None)
        out.append(("ccxt", exchange) if exchange else ("coinbase", "coinbase"))
    return out


def step_detail(step_ns: int) -> str:
    way = "forward" if step_ns > 0 else "backward"
    return (
        f"host wall clock stepped {way} by {abs(step_ns) / 1e9:.3f} s (against the monotonic clock); "
        "receive times (capture_ts) follow a forward step at once and absorb a backward one "
        "(collector/clock.py: they never run backward)"
    )


async def watch_clock(
    emitter: Emitter,
    exchanges: list[tuple[str, str]],
    stop: asyncio.Event,
    *,
    interval: float = CLOCK_CHECK_INTERVAL_S,
    threshold: float = CLOCK_STEP_THRESHOLD_S,
    wall_ns: Callable[[], int] = time.time_ns,
    monotonic_ns: Callable[[], int] = time.monotonic_ns,
) -> int:
    """Until `stop`: record each step of the wall clock; returns how many steps were seen."""
    last_wall = wall_ns()
    offset = last_wall - monotonic_ns()
    steps = 0
    while not stop.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
        wall = wall_ns()
        now_offset = wall - monotonic_ns()
        step = now_offset - offset
        if abs(step) > threshold * 1e9:
            steps += 1
            for source, exchange in exchanges:
                row = event_row(
                    "clock_step",
                    exchange=exchange,
                    conn_id="collector",
                    count=step // 1_000_000,
                    interval_start=last_wall,
                    interval_end=wall,
                    detail=step_detail(step),
                    capture_ts=receive_ns(),
                )
                await emitter.emit(Record(source, "events", row))
        offset, last_wall = (
            now_offset,
            wall,
        )  # against the last check: a slow NTP slew never adds up to a step
    return steps
