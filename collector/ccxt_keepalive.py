"""ccxt.pro's ping-pong keepalive, timed on the monotonic clock (issue 24).

ccxt's client stamps each pong with the wall clock (`lastPong = Exchange.milliseconds()`, in its
client and in the venues' pong handlers) and its ping loop ends the socket when
`lastPong + keepAlive × maxPingPongMisses < milliseconds()`. A forward step of the host clock past
that limit (10 s by default: an NTP step, `date -s`) therefore ended every socket of every venue at
once, and after a backward step a dead socket went unnoticed for as long as the step. `MonotonicPong`
keeps the time of the last pong on the monotonic clock and reads it back in the wall clock of the
moment, so ccxt's own test measures the real age of the pong whatever the wall clock did meanwhile.
"""

from __future__ import annotations

import time


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000  # what ccxt's Exchange.milliseconds() reads


class MonotonicPong:
    """Mixin for ccxt's ws Client: `lastPong` stored as a monotonic instant."""

    _pong_monotonic: float | None = None

    @property
    def lastPong(self) -> int | None:  # noqa: N802 - ccxt's attribute
        if self._pong_monotonic is None:
            return None
        return _wall_ms() - round((time.monotonic() - self._pong_monotonic) * 1000)

    @lastPong.setter
    def lastPong(self, value: int | None) -> None:  # noqa: N802
        # a wall-clock ms value (ccxt's now, or a venue's pong time) → the monotonic instant it names
        if value is None:
            self._pong_monotonic = None
        else:
            self._pong_monotonic = time.monotonic() - (_wall_ms() - value) / 1000
