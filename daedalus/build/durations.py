"""Durations as model configs spell them ('900 seconds', '1 day'); a leaf module (the project and
the materializations both read lookbacks)."""

from __future__ import annotations

import re

_UNITS = {
    "second": 1,
    "seconds": 1,
    "sec": 1,
    "secs": 1,
    "s": 1,
    "minute": 60,
    "minutes": 60,
    "min": 60,
    "mins": 60,
    "m": 60,
    "hour": 3600,
    "hours": 3600,
    "h": 3600,
    "day": 86400,
    "days": 86400,
    "d": 86400,
}


def lookback_seconds(text: str | None) -> float:
    """'900 seconds' → 900.0; '1 day' → 86400.0; None → 0."""
    if text is None:
        return 0.0
    parts = str(text).strip().lower().split()
    if len(parts) == 1:
        # '900s', '1d', '15min' or a bare number of seconds
        m = re.fullmatch(r"([0-9.]+)\s*([a-z]*)", parts[0])
        if not m:
            raise ValueError(f"lookback {text!r}: expected '<number> <unit>', e.g. '900 seconds' or '1 day'")
        parts = [m.group(1), m.group(2) or "seconds"]
    if len(parts) != 2 or parts[1] not in _UNITS:
        raise ValueError(
            f"lookback {text!r}: expected '<number> <unit>' with unit in seconds, minutes, hours, days"
        )
    try:
        n = float(parts[0])
    except ValueError:
        raise ValueError(f"lookback {text!r}: {parts[0]!r} is not a number") from None
    if n < 0:
        raise ValueError(f"lookback {text!r}: must not be negative")
    return n * _UNITS[parts[1]]
