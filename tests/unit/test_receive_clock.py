"""The collector's receive clock (collector/clock.py): the host's wall clock, never backward."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from daedalus.collector.clock import SLEW, ReceiveClock

S = 1_000_000_000


class Host:
    """A host whose wall clock can be stepped while its monotonic clock runs on."""

    def __init__(self) -> None:
        self.mono = 1_000 * S
        self.offset = 1_700_000_000 * S - self.mono

    def wall(self) -> int:
        return self.mono + self.offset

    def monotonic(self) -> int:
        return self.mono


def test_follows_the_host_clock_and_a_forward_step():
    host = Host()
    clock = ReceiveClock(host.wall, host.monotonic)
    host.mono += S
    assert clock.now_ns() == host.wall()
    host.offset += 120 * S  # NTP steps forward 120 s
    host.mono += S
    assert clock.now_ns() == host.wall()


def test_a_backward_step_is_absorbed_without_running_backward():
    host = Host()
    clock = ReceiveClock(host.wall, host.monotonic)
    host.mono += S
    before = clock.now_ns()
    host.offset -= 2 * S  # stepped back 2 s
    host.mono += S
    after = clock.now_ns()
    assert after == before + int(S * (1 - SLEW))  # 0.9 s later, not 1 s earlier
    assert clock.behind_ns() == before + int(0.9 * S) - host.wall()
    # the host catches up 0.1 s per second: the 1.9 s left are gone 19 s later
    for _ in range(18):
        host.mono += S
        clock.now_ns()
    assert clock.behind_ns() > 0
    host.mono += S
    host.mono += S
    assert clock.now_ns() == host.wall()
    assert clock.behind_ns() == 0


@given(st.lists(st.tuples(st.integers(0, 2 * S), st.integers(-300 * S, 300 * S)), min_size=1, max_size=60))
def test_strictly_increasing_whatever_the_host_clock_does(moves):
    host = Host()
    clock = ReceiveClock(host.wall, host.monotonic)
    last = clock.now_ns()
    for advance, step in moves:
        host.mono += advance
        host.offset += step
        now = clock.now_ns()
        assert now > last
        assert now >= host.wall()  # never behind the host: a forward step is followed at once
        last = now


def test_a_restarted_collector_stays_after_the_last_ones_receive_times(tmp_path) -> None:
    """After a step back the clock runs ahead of the host; a collector started meanwhile resumed
    from the host's clock, so its rows were stamped before the last process's (the soak's next
    cycle: its books read as older than the previous cycle's)."""
    import asyncio

    from daedalus.collector.clock import resume_receive_clock
    from daedalus.collector.clockwatch import watch_clock
    from daedalus.collector.connection import Emitter
    from daedalus.collector.queue import BoundedQueue

    host = Host()
    first = ReceiveClock(host.wall, host.monotonic)
    host.offset += 120 * S
    first.now_ns()
    host.offset -= 120 * S  # back: the first process's clock now runs ~120 s ahead
    host.mono += 5 * S
    last = first.now_ns()
    assert last - host.wall() > 100 * S

    async def stop_watch() -> None:  # the watch of the first process, stopping: it keeps the mark
        stop = asyncio.Event()
        stop.set()
        await watch_clock(Emitter(BoundedQueue(100, 1.0)), [], stop, clock=first, raw_root=tmp_path)

    asyncio.run(stop_watch())
    host.mono += 30 * S  # the restart
    second = ReceiveClock(host.wall, host.monotonic)
    ahead = resume_receive_clock(tmp_path, second)
    assert 60 * S < ahead < 120 * S
    assert second.now_ns() > last


def test_a_mark_far_ahead_is_a_wrong_clock_not_a_step(tmp_path) -> None:
    from daedalus.collector.clock import MAX_RESUME_AHEAD_NS, resume_receive_clock, save_high_water

    host = Host()
    clock = ReceiveClock(host.wall, host.monotonic)
    save_high_water(tmp_path, host.wall() + MAX_RESUME_AHEAD_NS + S)  # a clock a year off, corrected
    assert resume_receive_clock(tmp_path, clock) == 0
    host.mono += S
    assert clock.now_ns() == host.wall()  # follows the host
    (tmp_path / "receive_clock").write_text("12")  # torn
    assert resume_receive_clock(tmp_path, clock) == 0
    assert resume_receive_clock(tmp_path / "nowhere", clock) == 0
