"""The collector's receive clock: the host's wall clock, except that it never runs backward.

Every receive time (`capture_ts`) comes from here. Rows, events and breaks of one process are put in
order by it, so a backward step of the host clock (NTP correcting a clock that ran ahead, an
operator's `date -s`) must not stamp later rows before earlier ones: that placed breaks after rows
they preceded and served stale books (the soak's host_clock_step fault). A forward step is followed
at once (order is kept); after a backward step the clock keeps running, at (1 - SLEW) of the
monotonic clock's rate, until the host's clock catches up with it, so it stays strictly increasing
and converges (a 2 s step back is absorbed in 20 s).

Each reading also compares the host clock with the monotonic one: a jump of their difference by more
than STEP_THRESHOLD_NS since the previous reading is a step, kept until `clockwatch` records it as an
event. Readings come with every row, so a step and its correction a moment later are two steps even
when the watch's own check (once a second, later on a busy loop) spans both and sees no difference.

A clock running ahead after a step back stays ahead across a restart: the watch keeps the high-water
mark in `raw/receive_clock` and the next collector resumes from it (`resume_receive_clock`), so the
rows of two processes never interleave by receive time. A mark more than MAX_RESUME_AHEAD_NS ahead of
the host is a wrong clock, not a step: the new process follows the host.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

SLEW = 0.1  # share of the monotonic rate given up while the host clock catches up after a step back
STEP_THRESHOLD_NS = 1_000_000_000  # NTP slews drift far slower; a step is a jump at least this large
MAX_KEPT_STEPS = 1000  # steps nobody took (no watch running): the oldest are forgotten
MAX_RESUME_AHEAD_NS = 600 * 1_000_000_000  # absorbed in 100 minutes at SLEW
HIGH_WATER_FILE = "receive_clock"  # in the raw root: the last receive time handed out (ns)


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
        self._last = self._last_wall = wall_ns()
        self._last_mono = monotonic_ns()
        self._offset = self._last_wall - self._last_mono  # host clock - monotonic, at the last reading
        self._steps: deque[tuple[int, int, int]] = deque(maxlen=MAX_KEPT_STEPS)

    def now_ns(self) -> int:
        with self._lock:
            wall = self._wall_ns()
            mono = self._monotonic_ns()
            offset = wall - mono
            if abs(offset - self._offset) > STEP_THRESHOLD_NS:
                self._steps.append((offset - self._offset, self._last_wall, wall))
            self._offset, self._last_wall = offset, wall
            floor = self._last + int((mono - self._last_mono) * (1.0 - SLEW))
            now = wall if wall > floor else max(floor, self._last + 1)
            self._last, self._last_mono = now, mono
            return now

    def resume(self, floor_ns: int) -> int:
        """Never hand out a time before `floor_ns` (the last process's high-water mark) unless it
        is more than MAX_RESUME_AHEAD_NS ahead of the host; returns how far ahead it resumed (ns)."""
        with self._lock:
            ahead = floor_ns - self._wall_ns()
            if floor_ns <= self._last or ahead > MAX_RESUME_AHEAD_NS:
                return 0
            self._last, self._last_mono = floor_ns, self._monotonic_ns()
            return max(0, ahead)

    def high_water_ns(self) -> int:
        with self._lock:
            return self._last

    def take_steps(self) -> list[tuple[int, int, int]]:
        """The steps of the host clock seen since the last call: (step in ns, signed; the host clock
        at the reading before it; at the reading after it)."""
        with self._lock:
            out = list(self._steps)
            self._steps.clear()
            return out

    def behind_ns(self) -> int:
        """How far the host clock is still behind this clock (0 once it caught up)."""
        with self._lock:
            return max(0, self._last - self._wall_ns())


_CLOCK = ReceiveClock()


def receive_ns() -> int:
    """The receive time of whatever arrives now, in ns since the epoch."""
    return _CLOCK.now_ns()


def receive_clock() -> ReceiveClock:
    """The process's receive clock (clockwatch takes its steps)."""
    return _CLOCK


def resume_receive_clock(raw_root: Path, clock: ReceiveClock | None = None) -> int:
    """Resume from the high-water mark the last collector left in `raw_root` (0: none, or unused)."""
    try:
        floor = int((raw_root / HIGH_WATER_FILE).read_text().strip())
    except (OSError, ValueError):
        return 0
    return (clock or _CLOCK).resume(floor)


def save_high_water(raw_root: Path, ns: int) -> None:
    """Written in place (a few bytes; a torn write reads as no mark): no temp file to leave behind."""
    with contextlib.suppress(OSError):  # a full or read-only disk: only the order across a restart is lost
        (raw_root / HIGH_WATER_FILE).write_text(f"{ns}\n")
