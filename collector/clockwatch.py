"""Steps of the host's wall clock, recorded in `events` (issue 24).

Every receive time (`capture_ts`) follows the host's wall clock (collector/clock.py: a forward step
at once, a backward step absorbed so that receive times never run backward); a step of that clock
(NTP correcting a wrong clock, an operator's `date -s`) does not move the monotonic clock the
collector's timers use. Nothing in the rows shows such a jump, so the receive clock compares the two
clocks at every reading and keeps each step (a jump of their difference by more than 1 s); every
`interval` seconds the watch reads the clock (a step is noticed even when no row arrives) and records
each step kept as one `clock_step` event per exchange collected (`count` = the step in ms, signed;
interval_start/interval_end = the host clock at the readings before and after the step; `detail`
says which way and how far). A `clock_step` breaks no series: the feeds were not cut.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from pathlib import Path

from daedalus.collector.clock import ReceiveClock, receive_clock, save_high_water
from daedalus.collector.connection import Emitter, event_row
from daedalus.collector.queue import Record

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
    clock: ReceiveClock | None = None,
    raw_root: Path | None = None,
) -> int:
    """Until `stop` (and once more then): record each step of the wall clock; returns how many.
    With `raw_root`, keep the clock's high-water mark there (collector/clock.py)."""
    clock = clock or receive_clock()
    steps = 0
    while True:
        stopping = stop.is_set()
        if not stopping:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
        clock.now_ns()  # a reading: notes a step since the last one even when no row arrived
        for step, before, after in clock.take_steps():
            steps += 1
            for source, exchange in exchanges:
                row = event_row(
                    "clock_step",
                    exchange=exchange,
                    conn_id="collector",
                    count=step // 1_000_000,
                    interval_start=before,
                    interval_end=after,
                    detail=step_detail(step),
                    capture_ts=clock.now_ns(),
                )
                await emitter.emit(Record(source, "events", row))
        if raw_root is not None:  # one interval ahead: covers what is stamped until the next check
            margin = 0 if stopping else int(interval * 1e9)
            save_high_water(raw_root, clock.high_water_ns() + margin)
        if stopping:
            return steps
