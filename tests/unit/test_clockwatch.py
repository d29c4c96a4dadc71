"""A step of the host's wall clock is recorded in `events` (issue 24): the watch compares the wall
clock with the monotonic clock; real asyncio timers, a real Emitter and BoundedQueue, and a wall clock
that steps forward 120 s then back 120 s while the monotonic clock runs on."""

from __future__ import annotations

import asyncio
import time

from daedalus.collector.clock import ReceiveClock
from daedalus.collector.clockwatch import exchanges_of, watch_clock
from daedalus.collector.connection import Emitter
from daedalus.collector.queue import BoundedQueue


def test_forward_and_backward_steps_are_events_naming_each_exchange_and_the_size() -> None:
    offset = {"ns": 0}

    def wall_ns() -> int:  # the host's wall clock, which an NTP step moves
        return time.time_ns() + offset["ns"]

    async def main() -> tuple[int, list]:
        queue = BoundedQueue(1000, 1.0)
        emitter = Emitter(queue)
        stop = asyncio.Event()
        exchanges = [("ccxt", "binance"), ("coinbase", "coinbase")]
        task = asyncio.ensure_future(
            watch_clock(emitter, exchanges, stop, interval=0.05, clock=ReceiveClock(wall_ns))
        )
        await asyncio.sleep(0.2)
        offset["ns"] = 120 * 10**9  # forward
        await asyncio.sleep(0.2)
        offset["ns"] += 300_000_000  # 0.3 s: under the threshold, no event
        await asyncio.sleep(0.2)
        offset["ns"] = 0  # back by 120.3 s
        await asyncio.sleep(0.2)
        stop.set()
        steps = await task
        rows = []
        while not queue.empty():
            rows.append(queue.get_nowait())
        return steps, rows

    steps, records = asyncio.run(main())
    assert steps == 2
    assert [(r.source, r.channel, r.row["exchange"]) for r in records] == [
        ("ccxt", "events", "binance"),
        ("coinbase", "events", "coinbase"),
    ] * 2
    rows = [r.row for r in records]
    assert {r["event_type"] for r in rows} == {"clock_step"}
    forward, back = rows[0], rows[2]
    assert 119_900 <= forward["count"] <= 120_100 and "forward by 120.0" in forward["detail"]
    assert -120_400 <= back["count"] <= -120_200 and "backward by 120.3" in back["detail"]
    # stamped with the stepped clock, and the interval spans the jump
    assert forward["interval_end"] - forward["interval_start"] > 119 * 10**9
    assert back["interval_end"] < back["interval_start"]


def test_a_step_and_its_correction_within_one_check_are_two_events() -> None:
    """The watch checks once a second (later on a busy loop); rows read the clock all the time. A step
    forward and back between two checks left the watch's own comparison unchanged: no event at all
    (the soak's host_clock_step once reached bronze with none) although rows were stamped 120 s ahead."""
    offset = {"ns": 0}

    def wall_ns() -> int:
        return time.time_ns() + offset["ns"]

    async def main() -> list:
        queue = BoundedQueue(1000, 1.0)
        stop = asyncio.Event()
        clock = ReceiveClock(wall_ns)
        task = asyncio.ensure_future(
            watch_clock(Emitter(queue), [("ccxt", "okx")], stop, interval=30.0, clock=clock)
        )
        await asyncio.sleep(0.05)
        offset["ns"] = 120 * 10**9
        ahead = clock.now_ns()  # a row received meanwhile
        offset["ns"] = 0
        clock.now_ns()
        stop.set()  # the watch's last check: its interval spanned both steps
        assert await task == 2
        rows = []
        while not queue.empty():
            rows.append(queue.get_nowait().row)
        assert ahead - time.time_ns() > 119 * 10**9
        return rows

    rows = asyncio.run(main())
    assert [(r["event_type"], r["exchange"]) for r in rows] == [("clock_step", "okx")] * 2
    assert rows[0]["count"] >= 119_900 and rows[1]["count"] <= -119_900


def test_events_name_exchanges_never_a_source() -> None:
    class Ccxt:
        exchange_id = "okx"

    class Coinbase:
        pass

    assert exchanges_of([Ccxt(), Coinbase()]) == [("ccxt", "okx"), ("coinbase", "coinbase")]
