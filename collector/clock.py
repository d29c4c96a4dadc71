"""The collector's receive clock: the host's wall clock, except that it never runs backward.

Every receive time (`capture_ts`) comes from here. Rows, events and breaks of one process are put in
order by it, so a backward step of the host clock (NTP correcting a clock that ran ahead, an
operator's `date -s`) must not stamp later rows before earlier ones: that placed breaks after rows
they preceded and served stale books (the soak's host_clock_step fault). A forward step is followed
at once (order is kept); after a backward step the clock keeps running, at (1 - SLEW) of the
monotonic clock's rate, until the host's clock catches up with it, so it stays strictly increasing
and converges (a 2 s step back is absorbed in 20 s). `clockwatch` records each step as an event.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

SLEW = 0.1  # share of the monotonic rate given up while the host clock catches up after a step back


class ReceiveClock:
    """max(host wall clock, last value + (1 - SLEW) × monotonic time since): never backward."""

    def __init__(
        self,
        wall_ns: Callable[[], int] = time.time_ns,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self._wall_ns = wall_ns
        self._monotonic_ns = monotonic_ns
        self._lock = threading.Lock()  # the sink's thread stamps too
        self._last = wall_ns()
        self._last_mono = monotonic_ns()

    def now_ns(self) -> int:
        with self._lock:
            wall = self._wall_ns()
            mono = self._monotonic_ns()
            floor = self._last + int((mono - self._last_mono) * (1.0 - SLEW))
            now = wall if wall > floor else max(floor, self._last + 1)
            self._last, self._last_mono = now, mono
            return now

    def behind_ns(self) -> int:
        """How far the host clock is still behind this clock (0 once it caught up)."""
        with self._lock:
            return max(0, self._last - self._wall_ns())


_CLOCK = ReceiveClock()


def receive_ns() -> int:
    """The receive time of whatever arrives now, in ns since the epoch."""
    return _CLOCK.now_ns()
