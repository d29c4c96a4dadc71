"""Cheaper equivalents of work ccxt.pro does on every frame, with the same results (the stamped
exchange, ccxt_collector.stamped_exchange_class, uses them; measured with `daedalus bench collect`).

- `iso8601`: ccxt formats each book's `datetime` from its millisecond timestamp through a datetime
  object; a venue's frames arrive many per second, so the text up to the second is kept.
- `direct_dispatch`: a venue module may name the ccxt handler of its commonest frame
  (`CcxtVenue.direct_handler`) so the frame skips ccxt's `handle_message`, which on Binance builds a
  30-entry dispatch table on every frame; used only while the exchange class still dispatches with
  the ccxt.pro class the venue module read (`CcxtVenue.direct_dispatch_of`).
"""

from __future__ import annotations

from typing import Any

# ccxt's own bound: a later timestamp is no date to it (iso8601 returns None)
_MAX_MS = 8_640_000_000_000_000


class _SecondCache:
    __slots__ = ("second", "prefix")

    def __init__(self) -> None:
        self.second = -1
        self.prefix = ""


_CACHE = _SecondCache()


def iso8601(timestamp: Any = None) -> str | None:
    """ccxt's `Exchange.iso8601`, the same text for every input: "YYYY-MM-DDTHH:MM:SS.mmmZ" for an int
    of ms since the epoch (the common case, served from the cached second), else ccxt's own."""
    if type(timestamp) is int and 0 <= timestamp <= _MAX_MS:
        second, ms = divmod(timestamp, 1000)
        cache = _CACHE
        if second != cache.second:
            text = _ccxt_iso8601(timestamp)
            if text is None:
                return None
            cache.prefix, cache.second = text[:-5], second  # without ".mmmZ"
        return f"{cache.prefix}.{ms:03d}Z"
    return _ccxt_iso8601(timestamp)


def _ccxt_iso8601(timestamp: Any) -> str | None:
    from ccxt.base.exchange import Exchange

    return Exchange.iso8601(timestamp)


def direct_dispatch(venue: Any, exchange_class: type) -> Any:
    """The venue's `direct_handler`, if it has one and `exchange_class` dispatches frames with the
    ccxt class the venue read (`direct_dispatch_of`, "module.Class"), else None."""
    expected = getattr(venue, "direct_dispatch_of", None)
    if expected is None:
        return None
    for klass in exchange_class.__mro__:  # the class whose handle_message runs, past our stamped one
        if "handle_message" in klass.__dict__ and not klass.__name__.startswith("Stamped_"):
            return venue.direct_handler if f"{klass.__module__}.{klass.__qualname__}" == expected else None
    return None
