"""`partition` in a model's Jinja context: the keys and time bounds of the partition being built.

A leaf module: the compiler renders with it, the partitioned materialization cuts days into slices.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from daedalus.sqltext import ts_literal


@dataclass(frozen=True)
class PartitionCtx:
    """`partition` in the Jinja context. Key values are raw (`BTC/USDT`); times are SQL literals.

    `start`/`end` bound the rows being built: the whole UTC day, or one time slice of it when the
    model declares `slice_by` (see `slices()`); `lookback_start` is `start` minus the lookback.
    `day_start`/`day_end` are always the partition's day.
    """

    keys: dict[str, str]
    lookback: float = 0.0  # seconds
    bounds: tuple[dt.datetime, dt.datetime] | None = None
    """The slice being built; None = the whole day."""

    @property
    def _day(self) -> dt.date:
        return dt.date.fromisoformat(self.keys["date"])

    @property
    def day_start_dt(self) -> dt.datetime:
        return dt.datetime.combine(self._day, dt.time(), tzinfo=dt.UTC)

    @property
    def start_dt(self) -> dt.datetime:
        return self.bounds[0] if self.bounds is not None else self.day_start_dt

    @property
    def end_dt(self) -> dt.datetime:
        return self.bounds[1] if self.bounds is not None else self.day_start_dt + dt.timedelta(days=1)

    @property
    def start(self) -> str:
        return ts_literal(self.start_dt)

    @property
    def end(self) -> str:
        return ts_literal(self.end_dt)

    @property
    def day_start(self) -> str:
        return ts_literal(self.day_start_dt)

    @property
    def day_end(self) -> str:
        return ts_literal(self.day_start_dt + dt.timedelta(days=1))

    @property
    def lookback_start(self) -> str:
        return ts_literal(self.start_dt - dt.timedelta(seconds=self.lookback))

    def utc_midnight(self, edge: str, seconds: float = 0.0, days: int = 0) -> str:
        """The UTC midnight that starts the day of `edge` ('start' or 'end') moved by `seconds`, then
        `days` later, as a literal: the same text for every slice whose moved edge falls on that day
        (a memo's text must be; an expression on `start` differs from slice to slice)."""
        at = (self.start_dt if edge == "start" else self.end_dt) + dt.timedelta(seconds=seconds)
        day = at.astimezone(dt.UTC).date() + dt.timedelta(days=days)
        return ts_literal(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC))

    def slices(self, hours: float) -> list[tuple[dt.datetime, dt.datetime]]:
        """The day cut into consecutive slices of `hours` (the last one ends at midnight)."""
        step = dt.timedelta(hours=hours)
        out, t, end = [], self.day_start_dt, self.day_start_dt + dt.timedelta(days=1)
        while t < end:
            out.append((t, min(t + step, end)))
            t += step
        return out

    @property
    def date(self) -> str:
        return f"DATE '{self.keys['date']}'"

    @property
    def date_iso(self) -> str:
        return self.keys["date"]

    def __getattr__(self, name: str) -> Any:
        keys = object.__getattribute__(self, "keys")
        if name in keys:
            return keys[name]
        raise AttributeError(name)

    def __str__(self) -> str:
        return "/".join(f"{k}={v}" for k, v in self.keys.items())
