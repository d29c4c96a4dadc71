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
from typing import TYPE_CHECKING, Any, Protocol

from daedalus.collector.book_log import HOUR_NS, book_levels, update_row
from daedalus.collector.ccxt_rows import SOURCE, MalformedFrame, book_row, ticker_row, trade_row
from daedalus.collector.ccxt_shortcuts import direct_dispatch
from daedalus.collector.clock import receive_ns
from daedalus.collector.connection import Record
from daedalus.collector.venue_ccxt import CcxtVenue

if TYPE_CHECKING:
    from daedalus.collector.connection import Emitter
    from daedalus.config import IngestionConfig


class CaptureHost(Protocol):
    """What the hooks and the tap need from the collector that owns them (ccxt_collector.CcxtCollector):
    declared here so this module does not import the collector that imports it."""

    exchange: Any
    venue: CcxtVenue
    ingestion: IngestionConfig
    emitter: Emitter
    tap: Tap
    collect_books: bool
    collect_updates: bool
    raw_messages: int
    broken_books: set[str]  # symbols whose book a venue rule broke, until their snapshot

    def row_base(self, channel: str, symbol: str | None, capture_ts: int, url: str | None = None) -> dict: ...

    def unified_symbol(self, market_id: str | None) -> str | None: ...

    def emit_event(
        self,
        event_type: str,
        *,
        symbol: str | None = None,
        channel: str | None = None,
        detail: str | None = None,
        capture_ts: int | None = None,
        count: int | None = None,
        conn: Any = None,
        close_code: int | None = None,
    ) -> None: ...

    def break_book(self, client: Any, symbol: str, detail: str, capture_ts: int) -> None: ...

    def on_server_shutdown(self, client: Any, capture_ts: int) -> None: ...


class Hooks:
    """What the stamped exchange calls per message, around ccxt's own handler. Nothing here knows an
    exchange's frames: control frames, sequence and checksum rules come from the venue module."""

    def __init__(self, collector: CaptureHost) -> None:
        self.c = collector
        venue = collector.venue
        base = CcxtVenue
        # per-message calls only where the venue overrides them: the hook runs on every frame
        self.control = venue.control if type(venue).control is not base.control else None
        self.book_frame = venue.book_frame if type(venue).book_frame is not base.book_frame else None
        self.book_update = venue.book_update if type(venue).book_update is not base.book_update else None
        self.direct = direct_dispatch(venue, type(collector.exchange))  # ccxt's handler, named by the venue

    def on_frame(self, client: Any, message: Any, capture_ts: int, handle: Any) -> None:
        c = self.c
        c.raw_messages += 1
        if isinstance(message, MalformedFrame):
            c.emit_event(
                "error",
                detail=f"malformed JSON frame from {client.url}: {message.error}: {message.data[:200]!r}",
                capture_ts=capture_ts,
            )
            return
        if isinstance(message, str) and message not in c.venue.text_frames:
            c.emit_event(
                "error", detail=f"non-JSON frame from {client.url}: {message[:200]!r}", capture_ts=capture_ts
            )
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
            symbol = c.unified_symbol(market_id)
            if kind == "snapshot":
                c.broken_books.discard(symbol)
            elif symbol in c.broken_books:
                return  # a book we dropped after a break: its updates wait for the new snapshot
            if gap is not None:
                c.break_book(client, symbol, f"sequence break: {gap}", capture_ts)
                return
        tap = c.tap
        if tap.dirty:  # changes ccxt made outside a frame (a REST load) are no part of this frame's rows
            tap.flush(receive_ns())
        tap.url, tap.capture_ts, tap.in_frame = client.url, capture_ts, True  # tap.begin, inlined
        tap.frame = self.book_update(message) if self.book_update is not None else None
        if self.direct is not None:
            handle = self.direct(c.exchange, message) or handle
        try:
            handle(client, message)
            if book is not None and symbol not in c.broken_books:
                broken = venue.check_book(c.exchange, symbol, c.exchange.orderbooks.get(symbol), message)
                if broken is not None:
                    c.break_book(client, symbol, broken, capture_ts)
        except Exception as e:  # noqa: BLE001 - one bad message must not kill ccxt's receive loop
            c.emit_event(
                "error",
                detail=f"ccxt handler failed on a frame from {client.url}: {type(e).__name__}: {e}",
                capture_ts=capture_ts,
            )
        finally:
            tap.end()
        if control is not None:
            c.emit_event(control[0], detail=f"{client.url} {control[1]}", capture_ts=capture_ts)


class Tap:
    """Receives what ccxt applies (collector/ccxt_capture.py) and turns it into bronze rows.

    Trades and tickers are emitted at once; books are marked dirty per applied delta or reset and
    emitted once per message (after ccxt's handler: the book is then consistent), or, for changes ccxt
    makes outside a message (a REST snapshot task), on the next loop turn. With `book_updates`
    collected, each book also keeps what was applied (collector/book_log.py): at the flush its
    delta/snapshot rows are emitted, a checkpoint of the whole book after each (re)load, and before
    the first change at or after each UTC hour boundary a checkpoint of the book as it was then."""

    def __init__(self, collector: CaptureHost) -> None:
        self.c = collector
        self.url: str | None = None
        self.capture_ts = 0
        self.in_frame = False
        # (exchange time ms, first, last, prev update id) of the frame being handled, if a book frame
        self.frame: tuple[Any, Any, Any, Any] | None = None
        self.dirty: dict[int, Any] = {}
        self._scheduled = False
        self.resets = 0
        self._rules: dict[str, str | None] = {}  # symbol -> the venue's sync rule for its market

    def begin(self, url: str, capture_ts: int) -> None:
        self.url, self.capture_ts, self.in_frame = url, capture_ts, True

    def end(self) -> None:
        if self.dirty:
            self.flush(self.capture_ts)
        self.in_frame = False
        self.frame = None

    def _stamp(self) -> int:
        return self.capture_ts if self.in_frame else receive_ns()

    def trade_appended(self, trade: Any) -> None:
        c = self.c
        symbol = trade.get("symbol")
        stamp = self._stamp()
        c.emitter.emit_nowait(
            Record(
                SOURCE,
                "trades",
                trade_row(trade, c.row_base("trades", symbol, stamp, self.url if self.in_frame else None)),
            )
        )
        c.healer.saw(symbol, trade, stamp)

    def ticker_stored(self, symbol: str, ticker: Any) -> None:
        c = self.c
        if not isinstance(ticker, dict):
            return
        c.emitter.emit_nowait(
            Record(
                SOURCE,
                "ticker",
                ticker_row(
                    ticker, c.row_base("ticker", symbol, self._stamp(), self.url if self.in_frame else None)
                ),
            )
        )

    def sync_rule(self, symbol: str) -> str | None:
        rules = self._rules
        if symbol not in rules:
            c = self.c
            rules[symbol] = c.venue.sync_rule((c.exchange.markets or {}).get(symbol))
        return rules[symbol]

    def book_changed(self, book: Any) -> None:
        """A change is about to be applied to a clean book (further ones before the flush are not
        reported)."""
        self.dirty[id(book)] = book
        book.daedalus_before = None
        if book.daedalus_log is not None and book.daedalus_hour is not None:
            # One clock: a row's hour is its time as land partitions it (row_time). A frame whose
            # venue module gives its exchange time dates its row now; otherwise the row's time is
            # known only once ccxt applied it, so near an hour boundary the book is kept as it is.
            frame = self.frame if self.in_frame else None
            if frame is not None and frame[0] is not None:
                self._hour_checkpoint(book, frame[0] * 1_000_000, None)
            else:
                # (kept when the row may open another hour: no time yet, a minute from a boundary by
                # the book's last time, or our clock in another hour, as in a replay of another day)
                ts_ms = book.get("timestamp")
                hour = book.daedalus_hour
                if (
                    ts_ms is None
                    or (ts_ms + 60_000) * 1_000_000 // HOUR_NS != hour
                    or self._stamp() // HOUR_NS != hour
                ):
                    book.daedalus_before = (
                        book_levels(book["bids"]),
                        book_levels(book["asks"]),
                        book.get("nonce"),
                    )
        if not self.in_frame and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_outside)

    def _hour_checkpoint(self, book: Any, when: int, before: Any) -> None:
        """Before the first row at/after a UTC hour boundary (`when`: its time), the book held until
        then, stamped at the boundary, so it lies in the partition (hour, date) it opens. The hour can
        also step back (a load without exchange time is dated by our clock, the updates after it by
        the exchange's): then the checkpoint is stamped with this row's time, in that earlier one."""
        hour = book.daedalus_hour
        if when // HOUR_NS == hour:
            return
        book.daedalus_hour = when // HOUR_NS
        stamp = book.daedalus_hour * HOUR_NS if when // HOUR_NS > hour else when
        self._checkpoint(book, stamp, self._stamp(), None, before)

    def book_reset(self, book: Any) -> None:
        self.resets += 1
        book.daedalus_hour = None  # the load's checkpoint (at the flush) dates the book again
        book.daedalus_dirty = True
        if book.daedalus_log is not None:
            book.daedalus_log.reset(book)
        self.dirty[id(book)] = book
        if not self.in_frame and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_outside)

    def _flush_outside(self) -> None:
        self._scheduled = False
        if not self.in_frame and self.dirty:
            self.flush(receive_ns())

    def discard(self, symbol: str) -> None:
        for key, book in list(self.dirty.items()):
            if book.daedalus_symbol == symbol:
                book.daedalus_dirty = False
                if book.daedalus_log is not None:
                    book.daedalus_log.take(book)  # applied to a book the venue's rule found broken
                del self.dirty[key]

    def _held(self, book: Any) -> bool:
        """The book is the one ccxt holds for its symbol, not one we broke, and not empty (made before
        its snapshot)."""
        symbol = book.daedalus_symbol
        return (
            self.c.exchange.orderbooks.get(symbol) is book
            and symbol not in self.c.broken_books
            and bool(book["bids"] or book["asks"])
        )

    def _checkpoint(
        self, book: Any, timestamp_ns: Any, capture_ts: int, last_id: Any, before: Any = None
    ) -> None:
        """A checkpoint row of the book held (or of `before`: (bids, asks, nonce) kept earlier)."""
        if not self._held(book):
            return
        c = self.c
        symbol = book.daedalus_symbol
        base = c.row_base("orderbook", symbol, capture_ts, self.url if self.in_frame else None)
        if before is not None:
            bids, asks, nonce = before
        else:
            bids, asks, nonce = book_levels(book["bids"]), book_levels(book["asks"]), book.get("nonce")
        row = update_row(
            base,
            "checkpoint",
            bids,
            asks,
            timestamp_ns,
            None,
            nonce if last_id is None else last_id,
            None,
            self.sync_rule(symbol),
        )
        c.emitter.emit_nowait(Record(SOURCE, "book_updates", row))

    def flush(self, capture_ts: int) -> None:
        c = self.c
        url = self.url if self.in_frame else None
        frame = self.frame if self.in_frame else None
        for book in self.dirty.values():
            symbol = book.daedalus_symbol
            log = book.daedalus_log
            if log is not None:
                for side in (book["bids"], book["asks"]):
                    if len(side) > side._depth:  # ccxt trims on the watch's return; here, in this message
                        side.limit()
                updates = log.take(book)
            book.daedalus_dirty = False
            # a book ccxt dropped (a sequence break) or replaced, an empty one, or one we broke:
            # nothing to emit
            if not self._held(book):
                continue
            if log is not None and updates:
                self._emit_updates(book, updates, capture_ts, url, frame)
            if c.collect_books:
                row = book_row(
                    book, c.ingestion.orderbook_levels, c.row_base("orderbook", symbol, capture_ts, url)
                )
                c.emitter.emit_nowait(Record(SOURCE, "orderbook", row))
        self.dirty.clear()

    def _emit_updates(self, book: Any, updates: list, capture_ts: int, url: str | None, frame: Any) -> None:
        c = self.c
        symbol = book.daedalus_symbol
        emit = c.emitter.emit_nowait
        rule = self.sync_rule(symbol)
        last = len(updates) - 1
        loaded = False
        when = capture_ts
        before, book.daedalus_before = book.daedalus_before, None
        for i, (kind, bids, asks, nonce, ts_ms) in enumerate(updates):
            # the frame's ids and exchange time name its (one) message, the last row; rows a task
            # applied outside a frame (Binance's buffered diffs after its REST snapshot) have only
            # ccxt's nonce and time
            first, last_id, prev = frame[1:] if frame is not None and i == last else (None, None, None)
            if last_id is None:
                last_id = nonce
            if frame is not None and i == last and frame[0] is not None:
                ts_ms = frame[0]
            ts = ts_ms * 1_000_000 if ts_ms is not None else None
            when = ts if ts is not None else capture_ts  # the row's time as land partitions it
            if i == 0 and before is not None and kind == "delta":  # the row's hour was not known before
                self._hour_checkpoint(book, when, before)
            emit(
                Record(
                    SOURCE,
                    "book_updates",
                    update_row(
                        c.row_base("orderbook", symbol, capture_ts, url),
                        kind,
                        bids,
                        asks,
                        ts,
                        first,
                        last_id,
                        prev,
                        rule,
                    ),
                )
            )
            loaded = loaded or kind == "snapshot"
        if loaded:  # after a (re)load: the whole book held once the load and what followed it applied
            ts_ms = book.get("timestamp")
            self._checkpoint(
                book,
                ts_ms * 1_000_000 if ts_ms is not None else None,
                capture_ts,
                frame[2] if frame is not None else None,
            )
        book.daedalus_hour = when // HOUR_NS
