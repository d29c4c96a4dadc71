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
