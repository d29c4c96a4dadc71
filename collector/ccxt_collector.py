"""The ccxt.pro collector: any ccxt.pro exchange, channels ticker / trades / orderbook / book_updates.

ccxt.pro hands a consumer the *latest state* when it asks (the newest book, the newest N trades); a
slow consumer silently misses intermediate states and, past `tradesLimit`, trades. So we do not read
bronze from the watch calls' return values. We subclass the exchange: its `handle_message` stamps
every raw message (`capture_ts`, collector/clock.py) at arrival and passes it to ccxt's own handler,
and its `trades`/`orderbooks`/`tickers` dicts report what ccxt puts in them — each trade appended,
each delta or reset applied to a book, each ticker (collector/ccxt_capture.py). That is the same
for every exchange; what differs (control frames, sequence and checksum rules ccxt does not check,
how to reload a book, limits) is in the venue modules (collector/venue_<id>.py).

The watch calls still run, one supervised loop per feed: they subscribe and surface errors
(disconnects, order-book sequence errors, rate limits) that the loop turns into events, resyncs and
reconnects. Feeds: one per (channel, symbol set); order books one feed per symbol, so a sequence
error resyncs that one symbol only while the others go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from daedalus.collector import ccxt_socket
from daedalus.collector.backoff import retry_after_from_headers
from daedalus.collector.ccxt_capture import Hooks, Tap
from daedalus.collector.ccxt_feed_url import feed_url
from daedalus.collector.ccxt_rows import SOURCE, MalformedFrame, book_row, ticker_row, trade_row  # noqa: F401
from daedalus.collector.ccxt_shortcuts import iso8601
from daedalus.collector.ccxt_taps import tap_property
from daedalus.collector.clock import receive_ns
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
from daedalus.collector.exchange_options import constructor_params, set_exchange_options
from daedalus.collector.heal import TradeHealer
from daedalus.collector.venues import ccxt_exchange_class, ccxt_venue, check_symbols, pick_method
from daedalus.errors import ExchangeError

# Frames handled per event-loop turn (see _TolerantClient.receive_loop): ~10 ms of ccxt work.
_RECEIVE_BURST = 100
# How often a reader held off by a backlogged writer looks again.
_HOLD_OFF_STEP = 0.005


def stamped_exchange_class(exchange_id: str) -> type:
    """A subclass of the ccxt.pro exchange whose message handler stamps and reports each message."""
    from ccxt.async_support.base.ws.client import MSG_SIZE_OVERHEAD, Client

    base = ccxt_exchange_class(exchange_id)
    ccxt_socket.monotonic_throttle()

    class _TolerantClient(ccxt_socket.MonotonicPong, ccxt_socket.ClosedStaysClosed, Client):
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

    class Stamped(ccxt_socket.ForgetsOnlyItsOwnClient, base):  # type: ignore[misc, valid-type]
        daedalus_hooks: Hooks | None = None
        daedalus_tap: Tap | None = None
        # ccxt's public state dicts, swapped for ones that report what ccxt puts in them
        trades = tap_property("trades")
        orderbooks = tap_property("orderbooks")
        tickers = tap_property("tickers")
        iso8601 = staticmethod(iso8601)  # ccxt's, the text up to the second cached

        def handle_message(self, client: Any, message: Any) -> None:
            capture_ts = receive_ns()
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
        self.exchange = cls(constructor_params(ingestion, exchange_id))
        set_exchange_options(self.exchange, exchange_id, self.venue.options, ingestion)
        if configure is not None:
            configure(self.exchange)  # tests and demo point urls at the fake server and set markets
        # the book watch serves both book channels: top-N snapshots and the applied updates
        self.collect_books, self.collect_updates = self.venue.book_channels(self.channels)
        self.tap = Tap(self)
        self.broken_books: set[str] = set()  # symbols whose book a venue rule broke, until their snapshot
        self._break_reported: set[str] = set()  # ... whose gap + resync events are already in bronze
        self._symbol_cache: dict[str, str] = {}
        self.exchange.daedalus_tap = self.tap
        self.exchange.daedalus_hooks = Hooks(self)
        self.raw_messages = 0
        self.feeds: list[Feed] = []
        # (channel, exchange symbol id or unified symbol) -> the Connection currently serving it
        self._conn: dict[tuple[str, str], Connection] = {}
        self._shutdown_clients: set[str] = set()
        self._urls: dict[str, str] = {}  # "channel:symbol" -> url of the socket that delivered it
        self._socket_lost: dict[str, str] = {}  # feed name -> why another feed closed its socket
        self.healer = TradeHealer(self, getattr(ingestion, "heal_seconds", 0.0))

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
        if "book_updates" in methods:  # one book watch per symbol (the `orderbook` feed) serves both
            methods.setdefault("orderbook", methods.pop("book_updates"))
        if not ex.markets:
            try:
                await ex.load_markets()
            except Exception as e:
                raise ExchangeError(
                    f"{self.exchange_id}: cannot load markets ({type(e).__name__}: {e})"
                ) from None
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
            await asyncio.gather(
                *(
                    supervise(
                        self._session_for(feed),
                        source=SOURCE,
                        exchange=self.exchange_id,
                        name=feed.name,
                        emitter=self.emitter,
                        settings=settings,
                        stop=stop,
                        fatal=(ExchangeError,),
                    )
                    for feed in self.feeds
                )
            )
        finally:
            await self.healer.finish(10.0)
            await self.close()

    # ---- emission (called from the message hook, synchronously) ----
    def row_base(self, channel: str, symbol: str | None, capture_ts: int, url: str | None = None) -> dict:
        """The envelope of a bronze row (conn_id and the next seq of the connection serving the feed);
        notes which socket delivered it (`url`, to close that socket on a break)."""
        feed = f"{channel}:{symbol}"
        if url is not None:
            self._urls[feed] = url  # which socket serves this feed (to close it)
        conn = self._conn.get((channel, symbol or ""))
        if conn is None:
            return envelope(capture_ts, self.exchange_id, symbol, "unattached", 0)
        conn.touch(feed)
        return envelope(capture_ts, self.exchange_id, symbol, conn.conn_id, conn.next_seq())

    def emit_event(
        self,
        event_type: str,
        *,
        symbol: str | None = None,
        channel: str | None = None,
        detail: str | None = None,
        capture_ts: int | None = None,
        count: int | None = None,
        conn: Connection | None = None,
        close_code: int | None = None,
    ) -> None:
        row = event_row(
            event_type,
            exchange=self.exchange_id,
            conn_id=conn.conn_id if conn else "ccxt",
            seq=conn.seq if conn else 0,
            symbol=symbol,
            channel=channel,
            detail=detail,
            capture_ts=capture_ts,
            count=count,
            close_code=close_code,
        )
        self.emitter.emit_nowait(Record(SOURCE, "events", row))

    def unified_symbol(self, market_id: str | None) -> str | None:
        """Unified symbol of a venue market id (cached: asked once per book frame)."""
        if market_id is None:
            return None
        symbol = self._symbol_cache.get(market_id)
        if symbol is None:
            try:
                symbol = self.exchange.safe_market(market_id, None, None, "spot")["symbol"]
            except Exception:  # noqa: BLE001
                symbol = market_id
            self._symbol_cache[market_id] = symbol
        return symbol

    def break_book(self, client: Any, symbol: str, detail: str, capture_ts: int) -> None:
        """A venue rule found the book broken: gap + resync events, drop the book (nothing more is
        emitted from it), skip its updates until a snapshot, and wake its watch call, whose loop asks
        the venue for a fresh book."""
        import ccxt

        conn = self._conn.get(("orderbook", symbol))
        self.emit_event(
            "gap",
            symbol=symbol,
            channel="orderbook",
            conn=conn,
            capture_ts=capture_ts,
            detail=f"order-book {detail}",
        )
        self.emit_event(
            "resync",
            symbol=symbol,
            channel="orderbook",
            conn=conn,
            capture_ts=capture_ts,
            detail="book dropped; reloading a snapshot",
        )
        self.broken_books.add(symbol)
        self.exchange.orderbooks.pop(symbol, None)
        self.tap.discard(symbol)
        self._break_reported.add(symbol)
        # wake the watch call if it waits; if ccxt just resolved it, the loop sees the mark on return.
        # (A rejection with no future waiting would be kept by ccxt and hit a later, healthy watch.)
        message_hash = self.venue.book_hash(self.exchange, symbol)
        if message_hash is not None and message_hash in (client.futures or {}):
            client.reject(ccxt.InvalidNonce(f"{self.exchange_id} {detail}"), message_hash)

    def on_server_shutdown(self, client: Any, capture_ts: int) -> None:
        # A notice, not a break: data keeps flowing until each feed on this socket reconnects, and
        # that reconnect is the break, named per series by the supervisor.
        self.emit_event("notice", detail=f"serverShutdown from {client.url}", capture_ts=capture_ts)
        self._shutdown_clients.add(client.url)

    # ---- one feed's session ----
    def _session_for(self, feed: Feed) -> Any:
        async def session(conn: Connection) -> None:
            self._socket_lost.pop(feed.name, None)  # a mark names an earlier session's socket
            for s in feed.symbols:
                self._conn[(feed.channel, s)] = conn
                conn.watch(f"{feed.channel}:{s}", (feed.channel, s))
                if feed.channel == "orderbook" and self.collect_updates:
                    conn.carries("book_updates", s)  # a connection event breaks both book series
            self.emit_event(
                "connect",
                channel=feed.channel,
                conn=conn,
                symbol=feed.symbols[0] if len(feed.symbols) == 1 else None,
                detail=f"{feed.name} via {feed.method}",
            )
            try:
                await self._watch_loop(feed, conn)
            finally:
                self.healer.broke(feed.symbols if feed.channel == "trades" else [])  # heal when back
                await self._close_feed(feed)

        return session

    async def _watch_loop(self, feed: Feed, conn: Connection) -> None:
        import ccxt

        ex = self.exchange
        method = getattr(ex, feed.method)
        params = dict(self.venue.channel_params.get(feed.channel, {}))
        symbol = feed.symbols[0]
        while True:
            lost = self._socket_lost.pop(feed.name, None)
            if lost is not None:  # between watch calls when it closed: never subscribe again unnoticed
                raise Disconnected(lost)  # every series it carried
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
                    self.emit_event(
                        "gap",
                        symbol=symbol,
                        channel="orderbook",
                        conn=conn,
                        detail=f"order-book sequence break: {e}",
                    )
                    self.emit_event(
                        "resync",
                        symbol=symbol,
                        channel="orderbook",
                        conn=conn,
                        detail="re-subscribing this symbol for a fresh snapshot",
                    )
                await self.venue.resync(self.exchange, symbol)
                await self.emitter.flush()
                continue
            except (ccxt.DDoSProtection, ccxt.RateLimitExceeded) as e:
                retry = retry_after_from_headers(getattr(ex, "last_response_headers", None))
                status = 429 if "429" in str(e) else 418 if "418" in str(e) else None
                if feed.channel == "orderbook":
                    # the socket is fine; only the REST snapshot was refused. Wait as told, retry.
                    self.emit_event(
                        "rate_limited",
                        symbol=symbol,
                        channel=feed.channel,
                        conn=conn,
                        detail=f"REST snapshot refused ({status}); waiting {retry}s: {e}"[:500],
                    )
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
                raise Disconnected(
                    f"{type(e).__name__}: {e}", close_code=code, channel=feed.channel
                ) from None

    def _feed_url(self, feed: Feed, clients: dict[str, Any] | None = None) -> str | None:
        clients = (self.exchange.clients or {}) if clients is None else clients
        return feed_url(self._urls, clients, feed.channel, feed.symbols)

    async def _close_feed(self, feed: Feed) -> None:
        """Close this feed's socket and forget its ccxt state, so the next session starts clean.
        The other feeds on that socket lose what the venue sends until they subscribe again: each
        ends its session too (a break of its own series), even one between watch calls, which ccxt's
        close cannot reach and which would otherwise subscribe again on a new socket unnoticed."""
        url = self._feed_url(feed)
        clients = self.exchange.clients or {}
        client = clients.pop(url, None) if url is not None else None
        if client is not None:
            for other in self.feeds:
                if other is not feed and self._feed_url(other, clients={url: client}) == url:
                    self._socket_lost[other.name] = f"socket {url} closed as {feed.name}'s session ended"
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), 2.0)
        if feed.channel == "orderbook":
            for s in feed.symbols:
                self.exchange.orderbooks.pop(s, None)
                self.broken_books.discard(s)
                self._break_reported.discard(s)


def _close_code(text: str) -> int | None:
    marker = "closing code "
    i = text.find(marker)
    if i >= 0:
        digits = "".join(ch for ch in text[i + len(marker) : i + len(marker) + 6] if ch.isdigit())
        return int(digits) if digits else None
    return 1006 if "closed" in text.lower() or "reset" in text.lower() else None
