"""ccxt's own structures, re-classed to report to a tap (collector/ccxt_capture.py says why and how).

Each cache, book and book side ccxt creates is given a subclass of its own class (made once per base
class) whose `append`, `storeArray`/`limit` or `reset` also calls the tap; the `Tap*` dicts do this to
whatever ccxt stores in `exchange.trades`, `.orderbooks` and `.tickers`.
"""

from __future__ import annotations

import sys
from typing import Any

from daedalus.collector.book_log import BookLog

_TRADE_CLASSES: dict[type, type] = {}
_SIDE_CLASSES: dict[type, type] = {}
_BOOK_CLASSES: dict[type, type] = {}


def _tapped(classes: dict[type, type], base: type, method: str, override: Any, **more: Any) -> type:
    """The subclass of a ccxt class `base` whose `method` is `override`, made once per base class."""
    cls = classes.get(base)
    if cls is None:
        cls = classes[base] = type(f"Tapped{base.__name__}", (base,), {method: override, **more})
    return cls


def _trade_cache_class(base: type) -> type:
    def append(self: Any, item: Any) -> None:
        base.append(self, item)
        self.daedalus_tap.trade_appended(item)

    return _tapped(_TRADE_CLASSES, base, "append", append)


def _side_class(base: type) -> type:
    def storeArray(self: Any, delta: Any) -> None:  # noqa: N802 - ccxt's name
        book = self.daedalus_book
        # the hot path (every level of every update): one flag test per delta; the tap hears of the
        # book once until it flushes it, *before* the change, so an hourly checkpoint holds the book
        # as it was at the boundary
        if not book.daedalus_dirty:
            book.daedalus_dirty = True
            book.daedalus_tap.book_changed(book)
        log = book.daedalus_log
        if log is None:
            base.storeArray(self, delta)
            return
        n = len(self)
        base.storeArray(self, delta)
        m = len(self)
        if m < n:
            log.change(book, self.side, delta[0], 0.0, False)
        elif m > n:
            log.change(book, self.side, delta[0], delta[1], True)
        elif delta[1] and (len(delta) < 3 or delta[2]):  # a held level's new size (count 0 deletes)
            log.change(book, self.side, delta[0], delta[1], False)
        else:  # the venue removed a level the book does not hold: nothing applied, the message counts
            log.open(book)

    def limit(self: Any) -> None:
        # ccxt trims a book to its depth; trimmed levels are deletes in the row of the message being
        # applied (never a row of their own: ccxt's book work is no venue message), so the stored
        # updates replay to the book ccxt holds. A trim of a load shortens the load's row.
        extra = len(self) - self._depth
        log = self.daedalus_book.daedalus_log
        if extra <= 0 or log is None or hasattr(self, "_hashmap"):
            base.limit(self)
            return
        if log.kind is None:
            log.trim_load(self.side, [lvl[0] for lvl in self[-extra:]])
            base.limit(self)
            return
        log.trimming = True
        try:
            for lvl in self[-extra:]:
                self.storeArray([lvl[0], 0, 0])
        finally:
            log.trimming = False

    return _tapped(_SIDE_CLASSES, base, "storeArray", storeArray, limit=limit)


def _book_class(base: type) -> type:
    def reset(self: Any, snapshot: Any = None) -> None:
        # a reset stores every level through storeArray; it is one event (a snapshot), not N deltas
        dirty, self.daedalus_dirty = self.daedalus_dirty, True
        log, self.daedalus_log = self.daedalus_log, None
        if log is not None:
            log.close(self, self.get("nonce"))  # rows applied before the load end here
        base.reset(self, {} if snapshot is None else snapshot)
        self.daedalus_log = log
        self.daedalus_dirty = dirty
        self.daedalus_tap.book_reset(self)

    return _tapped(_BOOK_CLASSES, base, "reset", reset)


def tap_book(book: Any, symbol: str, tap: Any, updates: bool = False, full_depth: bool = False) -> None:
    """Re-class a ccxt OrderBook and its two sides so they report to `tap`; with `updates`, keep what
    is applied for bronze `book_updates` (collector/book_log.py). `full_depth`: the venue's feed
    covers the whole book (Binance diffs), so ccxt's depth limit would only drop levels it still updates."""
    book.__class__ = _book_class(type(book))
    book.daedalus_tap = tap
    book.daedalus_symbol = symbol
    book.daedalus_dirty = False
    book.daedalus_log = BookLog() if updates else None
    book.daedalus_hour = None  # UTC hour (row time // 1 h) of the last book_updates row
    book.daedalus_before = None  # (bids, asks, nonce) before a change whose row's hour is not yet known
    for key in ("bids", "asks"):
        side = book[key]
        side.__class__ = _side_class(type(side))
        side.daedalus_book = book
        if full_depth:
            side._depth = sys.maxsize


class TapTrades(dict):
    """`exchange.trades`: each trade cache put in reports its appends (and what it held already)."""

    def __init__(self, owner: Any, *args: Any) -> None:
        super().__init__(*args)
        self._owner = owner

    def __setitem__(self, symbol: str, cache: Any) -> None:
        tap = self._owner.daedalus_tap
        if tap is not None and hasattr(cache, "append") and getattr(cache, "daedalus_tap", None) is None:
            for item in list(cache):  # appended before the cache was stored (some exchanges do)
                tap.trade_appended(item)
            cache.__class__ = _trade_cache_class(type(cache))
            cache.daedalus_tap = tap
        super().__setitem__(symbol, cache)


class TapBooks(dict):
    """`exchange.orderbooks`: each book put in is tapped; a new book object is a reset."""

    def __init__(self, owner: Any, *args: Any) -> None:
        super().__init__(*args)
        self._owner = owner

    def __setitem__(self, symbol: str, book: Any) -> None:
        super().__setitem__(symbol, book)
        tap = self._owner.daedalus_tap
        if (
            tap is not None
            and getattr(book, "daedalus_tap", None) is None
            and isinstance(book, dict)
            and "bids" in book
        ):
            c = tap.c
            tap_book(book, symbol, tap, c.collect_updates, c.collect_updates and c.venue.full_depth_feed)
            tap.book_reset(book)


class TapTickers(dict):
    """`exchange.tickers`: each ticker ccxt resolves is reported as it is stored."""

    def __init__(self, owner: Any, *args: Any) -> None:
        super().__init__(*args)
        self._owner = owner

    def __setitem__(self, symbol: str, ticker: Any) -> None:
        super().__setitem__(symbol, ticker)
        tap = self._owner.daedalus_tap
        if tap is not None:
            tap.ticker_stored(symbol, ticker)


TAP_DICTS = {"trades": TapTrades, "orderbooks": TapBooks, "tickers": TapTickers}


def tap_property(name: str) -> property:
    """A property for the stamped exchange class: whatever dict ccxt assigns (in `__init__`,
    `clean_ws_data`) is stored as the matching Tap dict."""
    key = f"daedalus_{name}"
    tap_cls = TAP_DICTS[name]

    def get(self: Any) -> Any:
        return self.__dict__.get(key)

    def set_(self: Any, value: Any) -> None:
        if value is not None and not isinstance(value, tap_cls):
            new = tap_cls(self)
            for k, v in dict(value).items():
                new[k] = v
            value = new
        self.__dict__[key] = value

    return property(get, set_)
