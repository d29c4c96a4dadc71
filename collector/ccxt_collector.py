"""The ccxt.pro collector: any ccxt.pro exchange, channels ticker / trades / orderbook.

ccxt.pro hands a consumer the *latest state* when it asks (the newest book, the newest N trades); a
slow consumer silently misses intermediate states and, past `tradesLimit`, trades. So we do not read
bronze from the watch calls' return values. We subclass the exchange and hook its `handle_message`:
every raw message is stamped (`capture_ts = time.time_ns()`) and counted at arrival, passed to ccxt's
own handler, and what that message changed (the trade it appended, the book it updated, the ticker)
is emitted at once. The watch calls still run, one supervised loop per feed: they subscribe, drain
ccxt's caches (`tradesLimit` is ample anyway) and surface errors (disconnects, order-book sequence
errors, rate limits) that the loop turns into events, resyncs and reconnects.

Feeds: one per (channel, symbol set); order books one feed per symbol, so a sequence error resyncs
that one symbol only (ccxt re-subscribes it and fetches a fresh snapshot while the others go on).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from daedalus.collector.backoff import retry_after_from_headers
from daedalus.collector.ccxt_capture import tap_property
from daedalus.collector.connection import (
    Connection,
    Disconnected,
    Emitter,
    RateLimited,
    Record,
    ServerShutdown,
    SupervisorSettings,
    envelope,
    event_row,
    supervise,
)
from daedalus.collector.venues import ccxt_exchange_class, ccxt_venue, check_symbols, pick_method
from daedalus.errors import ExchangeError

try:
    import orjson

    def _json(obj: Any) -> str:
        return orjson.dumps(obj, default=str).decode()
except ImportError:  # pragma: no cover
    import json

    def _json(obj: Any) -> str:
        return json.dumps(obj, separators=(",", ":"), default=str)


SOURCE = "ccxt"


@dataclass(slots=True)
class MalformedFrame:
    """A text frame that looked like JSON and did not parse."""

    data: str
    error: str


def _ms_to_ns(ms: Any) -> int | None:
    return int(ms) * 1_000_000 if ms is not None else None


def trade_row(trade: dict, base: dict) -> dict:
    """Bronze `trades` columns from a ccxt unified trade (side = aggressor, as ccxt reports it)."""
    row = dict(base)
    row.update(
        timestamp=_ms_to_ns(trade.get("timestamp")),
        trade_id=None if trade.get("id") is None else str(trade["id"]),
        side=trade.get("side"),
        price=trade.get("price"),
        amount=trade.get("amount"),
        cost=trade.get("cost"),
        info_json=_json(trade.get("info")),
    )
    return row


_TICKER_FIELDS = {
    "bid": "bid", "ask": "ask", "bid_volume": "bidVolume", "ask_volume": "askVolume", "last": "last",
    "open": "open", "high": "high", "low": "low", "close": "close", "vwap": "vwap",
    "base_volume": "baseVolume", "quote_volume": "quoteVolume", "change": "change", "percentage": "percentage",
}


def ticker_row(ticker: dict, base: dict) -> dict:
    row = dict(base)
    row["timestamp"] = _ms_to_ns(ticker.get("timestamp"))
    for col, key in _TICKER_FIELDS.items():
        v = ticker.get(key)
        row[col] = float(v) if v is not None else None
    row["info_json"] = _json(ticker.get("info"))
    return row


def book_row(book: Any, levels: int, base: dict) -> dict:
    """Top-`levels` snapshot of a ccxt order book, best first, levels as {price, size} structs.

    Built as the schema's dicts here (copied: ccxt updates its level lists in place) because the
    sink converts dicts to Arrow fastest, and the sink's conversion is the pipeline's bottleneck.
    """
    row = dict(base)
    row["timestamp"] = _ms_to_ns(book.get("timestamp"))
    row["nonce"] = book.get("nonce")
    row["bids"] = [{"price": lvl[0], "size": lvl[1]} for lvl in book["bids"][:levels]]
    row["asks"] = [{"price": lvl[0], "size": lvl[1]} for lvl in book["asks"][:levels]]
    return row


class _Hooks:
    """What the stamped exchange calls per message, around ccxt's own handler. Nothing here knows an
    exchange's frames: control frames, sequence and checksum rules come from the venue module."""

    def __init__(self, collector: CcxtCollector) -> None:
        self.c = collector

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
        control = venue.control(message)
        if control is not None and control[0] == "shutdown":
            c.on_server_shutdown(client, capture_ts)
            return
        book = venue.book_frame(message)
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
        tap.begin(client.url, capture_ts)
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


class _Tap:
    """Receives what ccxt applies (collector/ccxt_capture.py) and turns it into bronze rows.

    Trades and tickers are emitted at once; books are marked dirty per applied delta or reset and
    emitted once per message (after ccxt's handler: the book is then consistent), or, for changes ccxt
    makes outside a message (a REST snapshot task), on the next loop turn. `deltas`/`resets` per book
    are counted here: the place to keep the deltas themselves when bronze stores them."""

    def __init__(self, collector: CcxtCollector) -> None:
        self.c = collector
        self.url: str | None = None
        self.capture_ts = 0
        self.in_frame = False
        self.dirty: dict[int, Any] = {}
        self._scheduled = False
        self.deltas = 0
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

    def book_delta(self, book: Any, side: Any, delta: Any) -> None:
        self.deltas += 1
        self._mark(book)

    def book_reset(self, book: Any) -> None:
        self.resets += 1
        self._mark(book)

    def _mark(self, book: Any) -> None:
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
                del self.dirty[key]

    def flush(self, capture_ts: int) -> None:
        c = self.c
        books = c.exchange.orderbooks
        url = self.url if self.in_frame else None
        for book in self.dirty.values():
            symbol = book._daedalus_symbol
            # a book ccxt dropped (a sequence break) or replaced, an empty one (made before its
            # snapshot), or one we broke: nothing to emit
            if books.get(symbol) is not book or symbol in c._broken or not (book["bids"] or book["asks"]):
                continue
            row = book_row(book, c.ingestion.orderbook_levels, c._base("orderbook", symbol, capture_ts, url))
            c.emitter.emit_nowait(Record(SOURCE, "orderbook", row))
        self.dirty.clear()


# Frames handled per event-loop turn (see _TolerantClient.receive_loop): ~10 ms of ccxt work.
_RECEIVE_BURST = 100
# How often a reader held off by a backlogged writer looks again.
_HOLD_OFF_STEP = 0.005


def stamped_exchange_class(exchange_id: str) -> type:
    """A subclass of the ccxt.pro exchange whose message handler stamps and reports each message."""
    from ccxt.async_support.base.ws.client import MSG_SIZE_OVERHEAD, Client

    base = ccxt_exchange_class(exchange_id)

    class _TolerantClient(Client):
        daedalus_owner: Any = None  # the Stamped exchange this socket feeds (set in Stamped.client)
        _held_since: float | None = None

        def _hold_off(self) -> bool:
            """True while the writer is behind: half the staging deque full, for at most the queue's
            backpressure bound. Frames then wait in aiohttp's buffer and, once that is full, in the
            socket (TCP pushes back on the sender) instead of being dropped. Past the bound reading
            resumes and records are dropped and counted exactly as before."""
            hooks = self.daedalus_owner.daedalus_hooks if self.daedalus_owner is not None else None
            if hooks is None:
                return False
            emitter = hooks.c.emitter
            if emitter.staged < emitter.staging_limit // 2:
                self._held_since = None
                return False
            now = time.monotonic()
            if self._held_since is None:
                self._held_since = now
            return now - self._held_since < emitter.queue.backpressure_timeout

        def receive_loop(self, continuing: bool = False) -> None:
            if (continuing or not self.closed()) and self._hold_off():
                self.asyncio_loop.call_later(_HOLD_OFF_STEP, self.receive_loop, continuing)
                return
            # ccxt drains every frame aiohttp has buffered in one synchronous call. One socket read
            # of a deflated stream can hold thousands of book messages, and while they are handled
            # neither the pump nor the writer runs: the staging deque overflows and records are
            # dropped although the writer is idle. Handle at most _RECEIVE_BURST frames, then let the
            # loop run; the frames stay in order and aiohttp's flow control (bytes accounted to the
            # frame left at the head, as ccxt does) keeps pausing the socket meanwhile.
            buf = self.buffer
            if buf is not None and len(buf) > _RECEIVE_BURST + 1 and (continuing or not self.closed()):
                size_delta = 0
                for _ in range(_RECEIVE_BURST):
                    message, size = buf.popleft()
                    size_delta += size + MSG_SIZE_OVERHEAD
                    self.handle_message(message)
                if buf:
                    buf[0] = (buf[0][0], buf[0][1] + size_delta)
                self.asyncio_loop.call_soon(self.receive_loop, True)
                return
            super().receive_loop()

        # ccxt's client decodes JSON without a try: one malformed frame would raise inside its
        # receive callback and stop reading for good. Report it to the exchange instead.
        def handle_text_or_binary_message(self, data: Any) -> None:
            try:
                super().handle_text_or_binary_message(data)
            except ValueError as e:
                text = data.decode(errors="replace") if isinstance(data, bytes) else str(data)
                self.on_message_callback(self, MalformedFrame(text, str(e)))

    class Stamped(base):  # type: ignore[misc, valid-type]
        daedalus_hooks: _Hooks | None = None
        daedalus_tap: _Tap | None = None
        # ccxt's public state dicts, swapped for ones that report what ccxt puts in them
        trades = tap_property("trades")
        orderbooks = tap_property("orderbooks")
        tickers = tap_property("tickers")

        def handle_message(self, client: Any, message: Any) -> None:
            capture_ts = time.time_ns()
            hooks = self.daedalus_hooks
            if hooks is None:
                super().handle_message(client, message)
                return
            hooks.on_frame(client, message, capture_ts, super().handle_message)

        def client(self, url: str) -> Any:
            client = super().client(url)
            if type(client) is Client:
                client.__class__ = _TolerantClient
            if isinstance(client, _TolerantClient):
                client.daedalus_owner = self
            return client

    Stamped.__name__ = f"Stamped_{exchange_id}"
    return Stamped


@dataclass
class Feed:
    channel: str
    symbols: list[str]
    method: str
    name: str


class CcxtCollector:
    """Collect `channels` of `symbols` from one ccxt.pro exchange into an Emitter."""

    def __init__(
        self,
        exchange_id: str,
        symbols: list[str],
        channels: list[str],
        ingestion: Any,
        emitter: Emitter,
        configure: Any = None,
    ) -> None:
        self.exchange_id = exchange_id
        self.symbols = list(symbols)
        self.channels = list(channels)
        self.ingestion = ingestion
        self.emitter = emitter
        self.venue = ccxt_venue(exchange_id)
        cls = stamped_exchange_class(exchange_id)
        self.exchange = cls({"enableRateLimit": True, "newUpdates": True})
        # the trade cache: we never read it (each append is emitted), it only has to exist
        self.exchange.options["tradesLimit"] = ingestion.trade_cache_size
        self.exchange.options.update(self.venue.options)
        # ccxt retries a failed REST snapshot at once, up to 3 times, ignoring Retry-After; against a
        # 429 that is how an IP earns a 418 ban. One try: the failure reaches us and we wait as told.
        book_opts = dict(self.exchange.options.get("watchOrderBook") or {})
        book_opts["maxRetries"] = 1
        self.exchange.options["watchOrderBook"] = book_opts
        if configure is not None:
            configure(self.exchange)  # tests and demo point urls at the fake server and set markets
        self.tap = _Tap(self)
        self._broken: set[str] = set()  # symbols whose book a venue rule broke, until their snapshot
        self._break_reported: set[str] = set()  # ... whose gap + resync events are already in bronze
        self.exchange.daedalus_tap = self.tap
        self.exchange.daedalus_hooks = _Hooks(self)
        self.raw_messages = 0
        self.feeds: list[Feed] = []
        # (channel, exchange symbol id or unified symbol) -> the Connection currently serving it
        self._conn: dict[tuple[str, str], Connection] = {}
        self._shutdown_clients: set[str] = set()
        self._urls: dict[str, str] = {}  # "channel:symbol" -> url of the socket that delivered it

    # ---- setup ----
    async def prepare(self) -> None:
        """Load markets (unless set) and check symbols and channels; raises ExchangeError/ConfigError."""
        try:
            await self._prepare()
        except BaseException:
            await self.close()  # no "unclosed client session" noise after the one-line error
            raise

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.exchange.close()

    async def _prepare(self) -> None:
        ex = self.exchange
        # an exchange/channel pair ccxt.pro cannot serve fails before any network use
        methods = {channel: pick_method(ex, self.exchange_id, channel) for channel in self.channels}
        if not ex.markets:
            try:
                await ex.load_markets()
            except Exception as e:
                raise ExchangeError(f"{self.exchange_id}: cannot load markets ({type(e).__name__}: {e})") from None
        check_symbols(ex, self.exchange_id, self.symbols)
        feeds: list[Feed] = []
        for channel, method in methods.items():
            if channel == "orderbook" or not method.endswith(("_for_symbols", "_tickers")):
                feeds += [Feed(channel, [s], method, f"{channel}:{s}") for s in self.symbols]
            else:
                feeds.append(Feed(channel, list(self.symbols), method, f"{channel}:{','.join(self.symbols)}"))
        self.feeds = feeds

    async def run(self, stop: asyncio.Event) -> None:
        if not self.feeds:
            await self.prepare()
        hours = self.ingestion.proactive_reconnect_hours
        if self.venue.max_connection_hours is not None:
            hours = min(hours, self.venue.max_connection_hours - 0.25)
        settings = SupervisorSettings(
            stale_after=self.ingestion.stale_after_seconds,
            max_age=hours * 3600,
            backoff_initial=self.ingestion.backoff_initial_seconds,
            backoff_max=self.ingestion.backoff_max_seconds,
        )
        try:
            await asyncio.gather(*(
                supervise(self._session_for(feed), source=SOURCE, exchange=self.exchange_id, name=feed.name,
                          emitter=self.emitter, settings=settings, stop=stop, fatal=(ExchangeError,))
                for feed in self.feeds
            ))
        finally:
            await self.close()

    # ---- emission (called from the message hook, synchronously) ----
    def _base(self, channel: str, symbol: str | None, capture_ts: int, url: str | None = None) -> dict:
        if url is not None:
            self._urls[f"{channel}:{symbol}"] = url  # which socket serves this feed (to close it)
        conn = self._conn.get((channel, symbol or ""))
        if conn is None:
            return envelope(capture_ts, self.exchange_id, symbol, "unattached", 0)
        conn.touch(f"{channel}:{symbol}")
        return envelope(capture_ts, self.exchange_id, symbol, conn.conn_id, conn.next_seq())

    def emit_event(self, event_type: str, *, symbol: str | None = None, channel: str | None = None,
                   detail: str | None = None, capture_ts: int | None = None, count: int | None = None,
                   conn: Connection | None = None, close_code: int | None = None) -> None:
        row = event_row(event_type, exchange=self.exchange_id, conn_id=conn.conn_id if conn else "ccxt",
                        seq=conn.seq if conn else 0, symbol=symbol, channel=channel, detail=detail,
                        capture_ts=capture_ts, count=count, close_code=close_code)
        self.emitter.emit_nowait(Record(SOURCE, "events", row))

    def _symbol(self, market_id: str | None) -> str | None:
        if market_id is None:
            return None
        try:
            return self.exchange.safe_market(market_id, None, None, "spot")["symbol"]
        except Exception:  # noqa: BLE001
            return market_id

    def break_book(self, client: Any, symbol: str, detail: str, capture_ts: int) -> None:
        """A venue rule found the book broken: gap + resync events, drop the book (nothing more is
        emitted from it), skip its updates until a snapshot, and wake its watch call, whose loop asks
        the venue for a fresh book."""
        import ccxt

        conn = self._conn.get(("orderbook", symbol))
        self.emit_event("gap", symbol=symbol, channel="orderbook", conn=conn, capture_ts=capture_ts,
                        detail=f"order-book {detail}")
        self.emit_event("resync", symbol=symbol, channel="orderbook", conn=conn, capture_ts=capture_ts,
                        detail="book dropped; reloading a snapshot")
        self._broken.add(symbol)
        self.exchange.orderbooks.pop(symbol, None)
        self.tap.discard(symbol)
        self._break_reported.add(symbol)
        # wake the watch call if it waits; if ccxt just resolved it, the loop sees the mark on return.
        # (A rejection with no future waiting would be kept by ccxt and hit a later, healthy watch.)
        message_hash = self.venue.book_hash(self.exchange, symbol)
        if message_hash is not None and message_hash in (client.futures or {}):
            client.reject(ccxt.InvalidNonce(f"{self.exchange_id} {detail}"), message_hash)

    def on_server_shutdown(self, client: Any, capture_ts: int) -> None:
        self.emit_event("reconnect", detail=f"serverShutdown from {client.url}", capture_ts=capture_ts)
        self._shutdown_clients.add(client.url)

    # ---- one feed's session ----
    def _session_for(self, feed: Feed) -> Any:
        async def session(conn: Connection) -> None:
            for s in feed.symbols:
                self._conn[(feed.channel, s)] = conn
                conn.watch(f"{feed.channel}:{s}")
            self.emit_event("connect", channel=feed.channel, conn=conn,
                            symbol=feed.symbols[0] if len(feed.symbols) == 1 else None,
                            detail=f"{feed.name} via {feed.method}")
            try:
                await self._watch_loop(feed, conn)
            finally:
                await self._close_feed(feed)
        return session

    async def _watch_loop(self, feed: Feed, conn: Connection) -> None:
        import ccxt

        ex = self.exchange
        method = getattr(ex, feed.method)
        params = dict(self.venue.channel_params.get(feed.channel, {}))
        symbol = feed.symbols[0]
        while True:
            url = self._feed_url(feed)
            if url is not None and url in self._shutdown_clients:
                self._shutdown_clients.discard(url)
                raise ServerShutdown(f"serverShutdown on {url}", channel=feed.channel)
            try:
                # the calls subscribe and surface errors; what they return was captured already
                if feed.method == "watch_order_book":
                    await method(symbol, self.venue.book_limit, params)
                    if symbol in self._break_reported:  # a venue rule broke the book meanwhile
                        self._break_reported.discard(symbol)
                        await self.venue.resync(self.exchange, symbol)
                elif feed.method == "watch_tickers":
                    await method(feed.symbols, params=params)
                elif feed.method == "watch_trades_for_symbols":
                    await method(feed.symbols, None, None, params)
                elif feed.method == "watch_trades":
                    await method(symbol, None, None, params)
                else:
                    await method(symbol, params)
            except ccxt.InvalidNonce as e:  # ChecksumError too: ccxt's or a venue rule's sequence break
                if feed.channel != "orderbook":
                    raise Disconnected(f"{type(e).__name__}: {e}", channel=feed.channel) from None
                if symbol in self._break_reported:
                    self._break_reported.discard(symbol)
                else:
                    self.emit_event("gap", symbol=symbol, channel="orderbook", conn=conn,
                                    detail=f"order-book sequence break: {e}")
                    self.emit_event("resync", symbol=symbol, channel="orderbook", conn=conn,
                                    detail="re-subscribing this symbol for a fresh snapshot")
                await self.venue.resync(self.exchange, symbol)
                await self.emitter.flush()
                continue
            except (ccxt.DDoSProtection, ccxt.RateLimitExceeded) as e:
                retry = retry_after_from_headers(getattr(ex, "last_response_headers", None))
                status = 429 if "429" in str(e) else 418 if "418" in str(e) else None
                if feed.channel == "orderbook":
                    # the socket is fine; only the REST snapshot was refused. Wait as told, retry.
                    self.emit_event("rate_limited", symbol=symbol, channel=feed.channel, conn=conn,
                                    detail=f"REST snapshot refused ({status}); waiting {retry}s: {e}"[:500])
                    from daedalus.collector.backoff import Backoff

                    delay = Backoff(1.0, 1.0).next_delay(retry_after=retry, status=status)
                    # waiting as told is not a stale stream: keep the deadline fresh meanwhile
                    deadline = time.monotonic() + delay
                    while (left := deadline - time.monotonic()) > 0:
                        conn.extend(f"orderbook:{symbol}")
                        await asyncio.sleep(min(left, self.ingestion.stale_after_seconds / 4))
                    conn.extend(f"orderbook:{symbol}")
                    continue
                raise RateLimited(f"{e}", retry_after=retry, status=status, channel=feed.channel) from None
            except ccxt.BadSymbol as e:
                raise ExchangeError(f"ingestion.symbols: {e}") from None
            except ccxt.NetworkError as e:
                code = _close_code(str(e))
                raise Disconnected(f"{type(e).__name__}: {e}", close_code=code, channel=feed.channel) from None

    def _feed_url(self, feed: Feed) -> str | None:
        clients = self.exchange.clients or {}
        for s in feed.symbols:
            url = self._urls.get(f"{feed.channel}:{s}")
            if url is not None and url in clients:
                return url
        # nothing delivered yet: find the socket by ccxt's subscription hashes, which name the
        # channel ("orderbook::BTC/USDT", "books:BTC/USDT", "trade@BTC/USD", "tickers") on every venue
        word = _HASH_WORD[feed.channel]
        fallback = None
        for url, client in clients.items():
            for h in client.subscriptions:
                text = str(h).lower()
                if word not in text or text.startswith("unsubscribe"):
                    continue
                if any(s.lower() in text for s in feed.symbols):
                    return url
                if "/" not in text:
                    fallback = fallback or url
        return fallback

    async def _close_feed(self, feed: Feed) -> None:
        """Close this feed's socket and forget its ccxt state, so the next session starts clean."""
        url = self._feed_url(feed)
        clients = self.exchange.clients or {}
        client = clients.pop(url, None) if url is not None else None
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), 2.0)
        if feed.channel == "orderbook":
            for s in feed.symbols:
                self.exchange.orderbooks.pop(s, None)
                self._broken.discard(s)
                self._break_reported.discard(s)


_HASH_WORD = {"orderbook": "book", "trades": "trade", "ticker": "ticker"}


def _close_code(text: str) -> int | None:
    marker = "closing code "
    i = text.find(marker)
    if i >= 0:
        digits = "".join(ch for ch in text[i + len(marker):i + len(marker) + 6] if ch.isdigit())
        return int(digits) if digits else None
    return 1006 if "closed" in text.lower() or "reset" in text.lower() else None
