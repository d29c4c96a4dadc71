"""Generic capture: see what ccxt.pro applies, through ccxt's own data structures, on every exchange.

Every ccxt.pro exchange keeps its public state in three dicts: `exchange.trades[symbol]` (an
`ArrayCache` its `handle_trades` appends each parsed trade to), `exchange.orderbooks[symbol]` (an
`OrderBook` made by `order_book()`/`indexed_order_book()`/`counted_order_book()`, changed through its
sides' `storeArray` — what `handle_delta(s)` and `OrderBook.reset` call) and `exchange.tickers[symbol]`
(each ticker it resolves). The stamped exchange (ccxt_collector.stamped_exchange_class) replaces those
dicts with the `Tap*` dicts below, which re-class each cache and book put into them so that:

- a trade cache reports each `append` (none lost when the consumer lags: we never read the cache);
- a book reports each applied delta (side, price, size) and each reset (a snapshot load, a new book
  object), and is marked dirty; the collector flushes dirty books once per message (after ccxt's
  handler returned, so the book is consistent) or, for changes made outside a message (Binance's REST
  snapshot task), on the next loop turn;
- a ticker reports each assignment.

Re-classing keeps the exact ccxt object (no copy, no wrapper in ccxt's way): only `append`,
`storeArray` and `reset` gain one call each. Adding an exchange needs nothing here.
"""

from __future__ import annotations

from typing import Any

_TRADE_CLASSES: dict[type, type] = {}
_SIDE_CLASSES: dict[type, type] = {}
_BOOK_CLASSES: dict[type, type] = {}


def _trade_cache_class(base: type) -> type:
    cls = _TRADE_CLASSES.get(base)
    if cls is None:
        def append(self: Any, item: Any) -> None:
            base.append(self, item)
            self._daedalus_tap.trade_appended(item)

        cls = type(f"Tapped{base.__name__}", (base,), {"append": append})
        _TRADE_CLASSES[base] = cls
    return cls


def _side_class(base: type) -> type:
    cls = _SIDE_CLASSES.get(base)
    if cls is None:
        def storeArray(self: Any, delta: Any) -> None:  # noqa: N802 - ccxt's name
            base.storeArray(self, delta)
            book = self._daedalus_book
            if not book._daedalus_resetting:
                book._daedalus_tap.book_delta(book, self.side, delta)

        cls = type(f"Tapped{base.__name__}", (base,), {"storeArray": storeArray})
        _SIDE_CLASSES[base] = cls
    return cls


def _book_class(base: type) -> type:
    cls = _BOOK_CLASSES.get(base)
    if cls is None:
        def reset(self: Any, snapshot: Any = None) -> None:
            # a reset stores every level through storeArray; it is one event, not N deltas
            self._daedalus_resetting = True
            try:
                base.reset(self, {} if snapshot is None else snapshot)
            finally:
                self._daedalus_resetting = False
            self._daedalus_tap.book_reset(self)

        cls = type(f"Tapped{base.__name__}", (base,), {"reset": reset})
        _BOOK_CLASSES[base] = cls
    return cls


def tap_book(book: Any, symbol: str, tap: Any) -> None:
    """Re-class a ccxt OrderBook and its two sides so they report to `tap`."""
    book.__class__ = _book_class(type(book))
    book._daedalus_tap = tap
    book._daedalus_symbol = symbol
    book._daedalus_resetting = False
    for key in ("bids", "asks"):
        side = book[key]
        side.__class__ = _side_class(type(side))
        side._daedalus_book = book


class TapTrades(dict):
    """`exchange.trades`: each trade cache put in reports its appends (and what it held already)."""

    def __init__(self, owner: Any, *args: Any) -> None:
        super().__init__(*args)
        self._owner = owner

    def __setitem__(self, symbol: str, cache: Any) -> None:
        tap = self._owner.daedalus_tap
        if tap is not None and hasattr(cache, "append") and getattr(cache, "_daedalus_tap", None) is None:
            for item in list(cache):  # appended before the cache was stored (some exchanges do)
                tap.trade_appended(item)
            cache.__class__ = _trade_cache_class(type(cache))
            cache._daedalus_tap = tap
        super().__setitem__(symbol, cache)


class TapBooks(dict):
    """`exchange.orderbooks`: each book put in is tapped; a new book object is a reset."""

    def __init__(self, owner: Any, *args: Any) -> None:
        super().__init__(*args)
        self._owner = owner

    def __setitem__(self, symbol: str, book: Any) -> None:
        super().__setitem__(symbol, book)
        tap = self._owner.daedalus_tap
        if tap is not None and getattr(book, "_daedalus_tap", None) is None and isinstance(book, dict) \
                and "bids" in book:
            tap_book(book, symbol, tap)
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
    key = f"_daedalus_{name}"
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
