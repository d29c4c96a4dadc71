"""Reconnect delays: capped exponential backoff with full jitter.

Full jitter (AWS architecture blog, "Exponential Backoff And Jitter") spreads the reconnects of many
collectors that lost the same exchange at the same moment, instead of having them retry in lockstep.
A server that says how long to wait (`Retry-After`, or HTTP 418/429 which Binance uses for rate-limit
bans) is obeyed: its delay is a floor, never jittered down. The attempt counter is reset only after a
connection has delivered data, so a server that accepts connections and then drops them at once
still backs off.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

# Binance answers 429 when a client exceeds a limit and 418 once it has been IP-banned for ignoring
# 429s; both carry Retry-After. Without the header we wait at least this long on those codes.
RATE_LIMIT_STATUSES = (418, 429)
DEFAULT_RATE_LIMIT_SECONDS = 10.0


def parse_retry_after(value: str | float | int | None) -> float | None:
    """Seconds from a Retry-After value (delta-seconds form); None if absent or unparseable."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return max(seconds, 0.0)


def retry_after_from_headers(headers: Mapping[str, str] | None) -> float | None:
    """Retry-After (any capitalisation) from a response's headers."""
    if not headers:
        return None
    for key, value in headers.items():
        if key.lower() == "retry-after":
            return parse_retry_after(value)
    return None


class Backoff:
    """Delay before the next reconnect attempt.

    >>> b = Backoff(initial=1.0, maximum=8.0, rng=random.Random(0))
    >>> 0.0 <= b.next_delay() <= 1.0
    True
    """

    def __init__(self, initial: float, maximum: float, rng: random.Random | None = None) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError("backoff needs 0 < initial <= maximum")
        self.initial = initial
        self.maximum = maximum
        self.attempts = 0
        self._rng = rng or random.Random()

    def ceiling(self) -> float:
        """Upper bound of the next delay: initial * 2^attempts, capped at maximum."""
        # min() on the exponent first keeps 2**attempts from growing without bound on long outages.
        return min(self.maximum, self.initial * (2 ** min(self.attempts, 62)))

    def next_delay(self, retry_after: float | None = None, status: int | None = None) -> float:
        """The next delay in seconds, and count the attempt.

        `retry_after` (seconds the server asked for) and a rate-limit `status` set a floor that
        jitter never goes below; the floor itself is not capped (the server decides).
        """
        delay = self._rng.uniform(0.0, self.ceiling())
        self.attempts += 1
        floor = retry_after
        if floor is None and status in RATE_LIMIT_STATUSES:
            floor = max(DEFAULT_RATE_LIMIT_SECONDS, self.initial)
        if floor is not None:
            delay = max(delay, floor)
        return delay

    def reset(self) -> None:
        """Call once a connection has delivered data: the next failure starts from `initial` again."""
        self.attempts = 0
