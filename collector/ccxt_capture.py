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

import asyncio
import time
from typing import TYPE_CHECKING, Any

from daedalus.collector.ccxt_rows import SOURCE, MalformedFrame, book_row, ticker_row, trade_row
from daedalus.collector.connection import Record
from daedalus.collector.venue_ccxt import CcxtVenue

if TYPE_CHECKING:
    from daedalus.collector.ccxt_collector import CcxtCollector

_TRADE_CLASSES: dict[type, type] = {}
_SIDE_CLASSES: dict[type, type] = {}
_BOOK_CLASSES: dict[type, type] = {}


def _tapped(classes: dict[type, type], base: type, method: str, override: Any) -> type:
    """The subclass of a ccxt class `base` whose `method` is `override`, made once per base class."""
    cls = classes.get(base)
    if cls is None:
        cls = classes[base] = type(f"Tapped{base.__name__}", (base,), {method: override})
    return cls


def _trade_cache_class(base: type) -> type:
    def append(self: Any, item: Any) -> None:
        base.append(self, item)
        self._daedalus_tap.trade_appended(item)

    return _tapped(_TRADE_CLASSES, base, "append", append)


def _side_class(base: type) -> type:
    def storeArray(self: Any, delta: Any) -> None:  # noqa: N802 - ccxt's name
        base.storeArray(self, delta)
        # the hot path (every level of every update): one flag test per delta; the tap hears of
        # the book once until it flushes it. A delta-level store would hook in here.
        book = self._daedalus_book
        if not book._daedalus_dirty:
            book._daedalus_dirty = True
            book._daedalus_tap.book_changed(book)

    return _tapped(_SIDE_CLASSES, base, "storeArray", storeArray)


def _book_class(base: type) -> type:
    def reset(self: Any, snapshot: Any = None) -> None:
        # a reset stores every level through storeArray; it is one event, not N deltas
        dirty, self._daedalus_dirty = self._daedalus_dirty, True
        base.reset(self, {} if snapshot is None else snapshot)
        self._daedalus_dirty = dirty
        self._daedalus_tap.book_reset(self)

    return _tapped(_BOOK_CLASSES, base, "reset", reset)


def tap_book(book: Any, symbol: str, tap: Any) -> None:
    """Re-class a ccxt OrderBook and its two sides so they report to `tap`."""
    book.__class__ = _book_class(type(book))
    book._daedalus_tap = tap
    book._daedalus_symbol = symbol
    book._daedalus_dirty = False
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


class Hooks:
    """What the stamped exchange calls per message, around ccxt's own handler. Nothing here knows an
    exchange's frames: control frames, sequence and checksum rules come from the venue module."""

    def __init__(self, collector: CcxtCollector) -> None:
        self.c = collector
        venue = collector.venue
        base = CcxtVenue
        # per-message calls only where the venue overrides them: the hook runs on every frame
        self.control = venue.control if type(venue).control is not base.control else None
        self.book_frame = venue.book_frame if type(venue).book_frame is not base.book_frame else None

    def on_frame(self, client: Any, message: Any, capture_ts: int, handle: Any) -> None:
        c = self.c
        c.raw_messages += 1
        if isinstance(message, MalformedFrame):
            c.emit_event("error", detail=f"malformed JSON frame from {client.url}: {message.error}: "
                         f"{message.data[:200]!r}", capture_ts=capture_ts)
            return
        if isinstance(message, str) and message not in c.venue.text_frames:
            c.emit_event("error", detail=f"non-JSON frame from {client.url}: {message[:200]!r}",
                         capture_ts=capture_ts)
            return
        venue = c.venue
        control = self.control(message) if self.control is not None else None
        if control is not None and control[0] == "shutdown":
            c.on_server_shutdown(client, capture_ts)
            return
        book = self.book_frame(message) if self.book_frame is not None else None
        symbol = None
        if book is not None:
            market_id, kind, gap = book
            symbol = c._symbol(market_id)
            if kind == "snapshot":
                c._broken.discard(symbol)
            elif symbol in c._broken:
                return  # a book we dropped after a break: its updates wait for the new snapshot
            if gap is not None:
                c.break_book(client, symbol, f"sequence break: {gap}", capture_ts)
                return
        tap = c.tap
        tap.url, tap.capture_ts, tap.in_frame = client.url, capture_ts, True  # tap.begin, inlined
        try:
            handle(client, message)
            if book is not None and symbol not in c._broken:
                broken = venue.check_book(c.exchange, symbol, c.exchange.orderbooks.get(symbol), message)
                if broken is not None:
                    c.break_book(client, symbol, broken, capture_ts)
        except Exception as e:  # noqa: BLE001 - one bad message must not kill ccxt's receive loop
            c.emit_event("error", detail=f"ccxt handler failed on a frame from {client.url}: "
                         f"{type(e).__name__}: {e}", capture_ts=capture_ts)
        finally:
            tap.end()
        if control is not None:
            c.emit_event(control[0], detail=f"{client.url} {control[1]}", capture_ts=capture_ts)


class Tap:
    """Receives what ccxt applies (collector/ccxt_capture.py) and turns it into bronze rows.

    Trades and tickers are emitted at once; books are marked dirty per applied delta or reset and
    emitted once per message (after ccxt's handler: the book is then consistent), or, for changes ccxt
    makes outside a message (a REST snapshot task), on the next loop turn. Each delta passes through
    the tapped side's `storeArray` and each reset through `reset`: the places to keep the deltas
    themselves when bronze stores them (today a flag per book keeps that path to one test)."""

    def __init__(self, collector: CcxtCollector) -> None:
        self.c = collector
        self.url: str | None = None
        self.capture_ts = 0
        self.in_frame = False
        self.dirty: dict[int, Any] = {}
        self._scheduled = False
        self.resets = 0

    def begin(self, url: str, capture_ts: int) -> None:
        self.url, self.capture_ts, self.in_frame = url, capture_ts, True

    def end(self) -> None:
        if self.dirty:
            self.flush(self.capture_ts)
        self.in_frame = False

    def _stamp(self) -> int:
        return self.capture_ts if self.in_frame else time.time_ns()

    def trade_appended(self, trade: Any) -> None:
        c = self.c
        symbol = trade.get("symbol")
        c.emitter.emit_nowait(Record(SOURCE, "trades", trade_row(
            trade, c._base("trades", symbol, self._stamp(), self.url if self.in_frame else None))))

    def ticker_stored(self, symbol: str, ticker: Any) -> None:
        c = self.c
        if not isinstance(ticker, dict):
            return
        c.emitter.emit_nowait(Record(SOURCE, "ticker", ticker_row(
            ticker, c._base("ticker", symbol, self._stamp(), self.url if self.in_frame else None))))

    def book_changed(self, book: Any) -> None:
        """A delta was applied to a clean book (further deltas before the flush are not reported)."""
        self.dirty[id(book)] = book
        if not self.in_frame and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_outside)

    def book_reset(self, book: Any) -> None:
        self.resets += 1
        book._daedalus_dirty = True
        self.dirty[id(book)] = book
        if not self.in_frame and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_outside)

    def _flush_outside(self) -> None:
        self._scheduled = False
        if not self.in_frame and self.dirty:
            self.flush(time.time_ns())

    def discard(self, symbol: str) -> None:
        for key, book in list(self.dirty.items()):
            if book._daedalus_symbol == symbol:
                book._daedalus_dirty = False
                del self.dirty[key]

    def flush(self, capture_ts: int) -> None:
        c = self.c
        books = c.exchange.orderbooks
        url = self.url if self.in_frame else None
        for book in self.dirty.values():
            book._daedalus_dirty = False
            symbol = book._daedalus_symbol
            # a book ccxt dropped (a sequence break) or replaced, an empty one (made before its
            # snapshot), or one we broke: nothing to emit
            if books.get(symbol) is not book or symbol in c._broken or not (book["bids"] or book["asks"]):
                continue
            row = book_row(book, c.ingestion.orderbook_levels, c._base("orderbook", symbol, capture_ts, url))
            c.emitter.emit_nowait(Record(SOURCE, "orderbook", row))
        self.dirty.clear()
