"""Native Coinbase Advanced Trade WebSocket collector (`websockets`).

Channels: `level2` (book kept from `snapshot` + `update` events, top-N snapshots to bronze, and with
`book_updates` in ingestion.channels each event's changed levels, each snapshot and hourly checkpoints
of the whole book: docs/contracts.md "book_updates"),
`market_trades` (deduplicated by trade_id: the first event of a subscription replays recent trades),
`ticker`, and `heartbeats` (keeps quiet products' connections open; not data).
A trades gap (a session's end) is healed from the REST market trades (collector/coinbase_heal.py).

Every message of a connection carries `sequence_num`, one counter across all channels. A skip means
messages were lost: an events `gap` row, and `level2` is re-subscribed for a fresh snapshot (a book
built on a lost update is wrong until then, so its updates are ignored meanwhile).

Wire samples (trimmed):
    {"channel":"l2_data","client_id":"","timestamp":"2023-02-09T20:32:50.714964855Z","sequence_num":0,
     "events":[{"type":"snapshot","product_id":"BTC-USD","updates":[{"side":"bid",
     "event_time":"1970-01-01T00:00:00Z","price_level":"21921.73","new_quantity":"0.06317902"}]}]}
    {"channel":"market_trades","timestamp":"...","sequence_num":3,"events":[{"type":"update",
     "trades":[{"trade_id":"1","product_id":"BTC-USD","price":"21921.7","size":"0.1","side":"BUY",
     "time":"2023-02-09T20:32:50.71Z"}]}]}
    {"channel":"ticker","timestamp":"...","sequence_num":5,"events":[{"type":"update","tickers":[{
     "type":"ticker","product_id":"BTC-USD","price":"21932.98","volume_24_h":"16038.3","low_24_h":"1",
     "high_24_h":"2","price_percent_chg_24_h":"-4.1","best_bid":"21932.9","best_bid_quantity":"0.1",
     "best_ask":"21933","best_ask_quantity":"0.2"}]}]}
    {"channel":"heartbeats","timestamp":"...","sequence_num":7,"events":[{"current_time":"...","heartbeat_counter":"3049"}]}
"""

from __future__ import annotations

import asyncio
import bisect
import json
import os
from collections import deque
from datetime import UTC
from typing import Any

from daedalus.collector.backoff import retry_after_from_headers
from daedalus.collector.book_log import HOUR_NS, levels, update_row
from daedalus.collector.clock import receive_ns
from daedalus.collector.coinbase_auth import make_jwt
from daedalus.collector.coinbase_heal import make_healer, trade_columns
from daedalus.collector.connection import (
    Connection,
    Disconnected,
    Emitter,
    RateLimited,
    Record,
    SupervisorSettings,
    envelope,
    event_row,
    supervise,
)
from daedalus.collector.venues import COINBASE_CHANNELS, COINBASE_HEARTBEAT_CHANNEL, check_coinbase_channels
from daedalus.errors import ConfigError, ExchangeError

# Advanced Trade channel -> the bronze channel its rows land in.
BRONZE_CHANNEL = {v: k for k, v in COINBASE_CHANNELS.items()}

SOURCE = "coinbase"
EXCHANGE = "coinbase"
TRADE_DEDUPE_WINDOW = 20_000
# level2's sync rule (docs/contracts.md "Sync rules"): sequence_num grows, connection-wide
# (https://docs.cdp.coinbase.com/advanced-trade/docs/ws-overview#sequence-numbers)
SYNC_RULE = "increasing"


def product_to_symbol(product_id: str) -> str:
    """BTC-USD → BTC/USD (ccxt spelling, as every bronze row)."""
    return product_id.replace("-", "/", 1)


def rfc3339_ns(text: str | None) -> int | None:
    """'2023-02-09T20:32:50.714964855Z' → int ns since epoch, keeping every digit Coinbase gives."""
    if not text:
        return None
    from datetime import datetime

    main, _, frac = text.rstrip("Z").partition(".")
    offset = 0
    for sign in ("+", "-"):
        if sign in frac:
            frac, _, tz = frac.partition(sign)
            hh, _, mm = tz.partition(":")
            offset = (int(hh) * 3600 + int(mm or 0) * 60) * (1 if sign == "+" else -1)
    dt = datetime.strptime(main[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    ns = int(dt.timestamp()) * 1_000_000_000 + int((frac or "0")[:9].ljust(9, "0"))
    return ns - offset * 1_000_000_000


class L2Book:
    """One product's book from level2 snapshot + updates (absolute quantities, 0 removes).

    Prices are kept sorted (bisect, as ccxt's OrderBookSide does), so a top-N snapshot after each
    update is a slice, not a sort of a book that on Coinbase holds thousands of levels.
    """

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self._bid_keys: list[float] = []  # negated prices, ascending = best bid first
        self._ask_keys: list[float] = []  # prices, ascending = best ask first
        self.synced = False
        self.hour: int | None = None  # UTC hour of the last book_updates row (hourly checkpoints)

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self._bid_keys.clear()
        self._ask_keys.clear()

    def apply(self, updates: list[dict]) -> tuple[dict[float, float], dict[float, float]]:
        """Apply one event's updates; returns the levels it changed per side, {price: new size},
        0 = removed (a removal of a level not held, or a level added and removed again, is none)."""
        changed: tuple[dict[float, float], dict[float, float]] = ({}, {})
        born: set[tuple[bool, float]] = set()
        for u in updates:
            price, qty = float(u["price_level"]), float(u["new_quantity"])
            bid = u["side"] == "bid"
            if bid:
                side, keys, key, ch = self.bids, self._bid_keys, -price, changed[0]
            else:
                side, keys, key, ch = self.asks, self._ask_keys, price, changed[1]
            if qty == 0:
                if side.pop(price, None) is not None:
                    del keys[bisect.bisect_left(keys, key)]
                    if (bid, price) in born:
                        born.discard((bid, price))
                        del ch[price]
                    else:
                        ch[price] = 0.0
            else:
                if price not in side:
                    bisect.insort(keys, key)
                    if price not in ch:
                        born.add((bid, price))
                side[price] = qty
                ch[price] = qty
        return changed

    def levels(self) -> tuple[list[dict], list[dict]]:
        """The whole book, best first, as the schema's structs."""
        return self.top(len(self._bid_keys) + len(self._ask_keys))

    def top(self, n: int) -> tuple[list[dict], list[dict]]:
        """Best-first {price, size} levels (the schema's structs)."""
        bids = [{"price": -k, "size": self.bids[-k]} for k in self._bid_keys[:n]]
        asks = [{"price": k, "size": self.asks[k]} for k in self._ask_keys[:n]]
        return bids, asks


class CoinbaseCollector:
    """Collect Coinbase Advanced Trade channels for `products` into an Emitter."""

    def __init__(
        self,
        coinbase: Any,
        ingestion: Any,
        emitter: Emitter,
        url: str | None = None,
        environ: dict[str, str] | None = None,
    ) -> None:
        check_coinbase_channels(list(coinbase.channels))
        if not coinbase.products:
            raise ConfigError("ingestion.coinbase.products: at least one product id (e.g. BTC-USD)")
        for p in coinbase.products:
            if "-" not in p:
                raise ExchangeError(
                    f"ingestion.coinbase.products: '{p}' is not a Coinbase product id (e.g. BTC-USD)"
                )
        self.products = list(coinbase.products)
        self.channels = list(coinbase.channels)
        self.url = url or coinbase.ws_url
        self.ingestion = ingestion
        self.emitter = emitter
        env = os.environ if environ is None else environ
        self._key = self._secret = None
        if coinbase.use_jwt:
            self._key, self._secret = env.get("COINBASE_API_KEY"), env.get("COINBASE_API_SECRET")
            if not self._key or not self._secret:
                raise ConfigError(
                    "ingestion.coinbase.use_jwt: set COINBASE_API_KEY and COINBASE_API_SECRET "
                    "in the environment"
                )
            make_jwt(self._key, self._secret)  # fail fast on a bad key
        self.books: dict[str, L2Book] = {}
        # bronze book_updates from level2 when that channel is collected (ingestion.channels)
        self.updates = "level2" in self.channels and "book_updates" in ingestion.channels
        # top-N `orderbook` rows too when configured, or when they are the only book channel
        self.snapshots = "level2" in self.channels and ("orderbook" in ingestion.channels or not self.updates)
        self._last_seq: dict[str, int | None] = {}  # product -> sequence_num of its last applied event
        self._seen: dict[str, tuple[deque[str], set[str]]] = {}
        self.gaps = 0
        self.resubscribes = 0
        # a trades gap (disconnect, stale feed, overflow) is fetched over REST (collector/heal.py)
        self.healer = self.rest = None
        if "market_trades" in self.channels and ingestion.heal_seconds > 0:
            self.healer, self.rest = make_healer(
                self.products, emitter, self.url, coinbase.ws_url, ingestion.heal_seconds
            )

    def _subscribe_msg(self, channel: str, kind: str = "subscribe") -> dict:
        msg: dict[str, Any] = {"type": kind, "product_ids": self.products, "channel": channel}
        if self._key and self._secret:
            msg["jwt"] = make_jwt(self._key, self._secret)
        return msg

    async def run(self, stop: asyncio.Event) -> None:
        settings = SupervisorSettings(
            stale_after=self.ingestion.stale_after_seconds,
            max_age=self.ingestion.proactive_reconnect_hours * 3600,
            backoff_initial=self.ingestion.backoff_initial_seconds,
            backoff_max=self.ingestion.backoff_max_seconds,
        )
        try:
            await supervise(
                self.session,
                source=SOURCE,
                exchange=EXCHANGE,
                name="advanced-trade",
                emitter=self.emitter,
                settings=settings,
                stop=stop,
                fatal=(ConfigError,),
            )
        finally:
            if self.healer is not None and self.rest is not None:
                await self.healer.finish(10.0)
                await self.rest.close()

    async def _event(self, conn: Connection, event_type: str, **kw: Any) -> None:
        row = event_row(event_type, exchange=EXCHANGE, conn_id=conn.conn_id, seq=conn.seq, **kw)
        await self.emitter.emit(Record(SOURCE, "events", row))

    async def session(self, conn: Connection) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidStatus

        self.books = {p: L2Book() for p in self.products}
        # Every series this session feeds, before any I/O: a failure at connect names them all.
        for p in self.products:
            for ch in self.channels:
                if ch in BRONZE_CHANNEL:
                    conn.carries(BRONZE_CHANNEL[ch], product_to_symbol(p))
            if self.updates:
                conn.carries("book_updates", product_to_symbol(p))
        try:
            async with connect(
                self.url, max_size=2**24, ping_interval=20, ping_timeout=20, open_timeout=10, close_timeout=2
            ) as ws:
                await self._event(conn, "connect", detail=f"{self.url} products={','.join(self.products)}")
                for channel in [*self.channels, COINBASE_HEARTBEAT_CHANNEL]:
                    await ws.send(json.dumps(self._subscribe_msg(channel)))
                # stale deadlines: the book and ticker of every product, and the heartbeat stream.
                # market_trades is not watched: a quiet product legitimately has no trades for minutes.
                conn.watch("heartbeats")
                for p in self.products:
                    for ch in self.channels:
                        if ch != "market_trades":
                            conn.watch(
                                f"{ch}:{p}",
                                (BRONZE_CHANNEL[ch], product_to_symbol(p)) if ch in BRONZE_CHANNEL else None,
                            )
                state = {"expected": None}
                async for raw in ws:
                    capture_ts = receive_ns()
                    await self.handle(raw, capture_ts, conn, ws, state)
        except InvalidStatus as e:
            status = e.response.status_code
            retry = retry_after_from_headers(dict(e.response.headers))
            if status in (418, 429):
                raise RateLimited(
                    f"handshake refused with HTTP {status}", retry_after=retry, status=status
                ) from None
            raise Disconnected(f"handshake refused with HTTP {status}", status=status) from None
        except ConnectionClosed as e:
            code = e.rcvd.code if e.rcvd is not None else 1006
            raise Disconnected(f"connection closed ({code})", close_code=code) from None
        except OSError as e:
            raise Disconnected(f"{type(e).__name__}: {e}") from None
        finally:  # the trades series break here: the first trade of the next session closes the gap
            if self.healer is not None:
                self.healer.broke([product_to_symbol(p) for p in self.products])

    async def handle(self, raw: str | bytes, capture_ts: int, conn: Connection, ws: Any, state: dict) -> None:
        """One frame: sequence check, then dispatch by channel."""
        try:
            msg = json.loads(raw)
        except ValueError as e:
            await self._event(
                conn, "error", detail=f"malformed JSON frame: {e}: {str(raw)[:200]!r}", capture_ts=capture_ts
            )
            return
        if not isinstance(msg, dict):
            await self._event(
                conn, "error", detail=f"unexpected frame: {str(raw)[:200]!r}", capture_ts=capture_ts
            )
            return
        if msg.get("type") == "error":
            await self._event(
                conn, "error", detail=f"server error: {msg.get('message')}"[:500], capture_ts=capture_ts
            )
            return
        seq_num = msg.get("sequence_num")
        if isinstance(seq_num, int):
            expected = state["expected"]
            if expected is not None and seq_num > expected:
                self.gaps += 1
                await self._event(
                    conn,
                    "gap",
                    count=seq_num - expected,
                    capture_ts=capture_ts,
                    detail=(
                        f"sequence_num jumped {expected - 1} → {seq_num}: {seq_num - expected} messages lost"
                    ),
                )
                await self._resubscribe_level2(conn, ws, capture_ts)
            state["expected"] = seq_num + 1 if expected is None or seq_num >= expected else expected
        channel = msg.get("channel")
        if channel == "l2_data":
            await self._on_l2(msg, capture_ts, conn)
        elif channel == "market_trades":
            await self._on_trades(msg, capture_ts, conn)
        elif channel == "ticker":
            await self._on_ticker(msg, capture_ts, conn)
        elif channel == "heartbeats":
            conn.touch("heartbeats")
        elif channel == "subscriptions":
            subs = (msg.get("events") or [{}])[0].get("subscriptions", {})
            await self._event(conn, "subscribe_ack", detail=json.dumps(subs)[:500], capture_ts=capture_ts)

    async def _resubscribe_level2(self, conn: Connection, ws: Any, capture_ts: int) -> None:
        if "level2" not in self.channels:
            return
        for book in self.books.values():
            book.clear()
            book.synced = False
        self.resubscribes += 1
        await ws.send(json.dumps(self._subscribe_msg("level2", "unsubscribe")))
        await ws.send(json.dumps(self._subscribe_msg("level2")))
        for p in self.products:
            await self._event(
                conn,
                "resync",
                symbol=product_to_symbol(p),
                channel="orderbook",
                capture_ts=capture_ts,
                detail="level2 re-subscribed for a fresh snapshot after a sequence gap",
            )

    async def _on_l2(self, msg: dict, capture_ts: int, conn: Connection) -> None:
        ts = rfc3339_ns(msg.get("timestamp"))
        seq_num = msg.get("sequence_num")
        for ev in msg.get("events", []):
            product = ev.get("product_id")
            book = self.books.get(product)
            if book is None:
                continue
            snapshot = ev.get("type") == "snapshot"
            if snapshot:
                book.clear()
                book.synced = True
            elif not book.synced:
                continue  # updates before the fresh snapshot belong to the broken book
            symbol = product_to_symbol(product)
            when = ts if ts is not None else capture_ts
            if self.updates and not snapshot and book.hour is not None and when // HOUR_NS != book.hour:
                # the first update at/after a UTC hour boundary: the book held until now, stamped at
                # the boundary so it lies in the partition it opens; if the rows' time stepped back
                # an hour, stamped with this update's time (docs/contracts.md, ccxt_capture.Tap)
                forward, book.hour = when // HOUR_NS > book.hour, when // HOUR_NS
                await self._book_update(
                    conn,
                    capture_ts,
                    symbol,
                    "checkpoint",
                    *book.levels(),
                    book.hour * HOUR_NS if forward else when,
                    None,
                    self._last_seq.get(product),
                )
            changed = book.apply(ev.get("updates", []))
            conn.touch(f"level2:{product}")
            if self.updates:
                if snapshot:  # the load, then (the collector's rule after every load) the book held
                    bids, asks = book.levels()
                    await self._book_update(
                        conn, capture_ts, symbol, "snapshot", bids, asks, ts, None, seq_num
                    )
                    await self._book_update(
                        conn, capture_ts, symbol, "checkpoint", bids, asks, ts, None, seq_num
                    )
                elif changed[0] or changed[1]:
                    await self._book_update(
                        conn,
                        capture_ts,
                        symbol,
                        "delta",
                        levels(changed[0], True),
                        levels(changed[1], False),
                        ts,
                        None,
                        seq_num,
                    )
                book.hour = when // HOUR_NS  # the rows' time as land partitions them
                self._last_seq[product] = seq_num
            if not self.snapshots:
                continue
            row = envelope(capture_ts, EXCHANGE, symbol, conn.conn_id, conn.next_seq())
            bids, asks = book.top(self.ingestion.orderbook_levels)
            row.update(timestamp=ts, nonce=seq_num, bids=bids, asks=asks)
            await self.emitter.emit(Record(SOURCE, "orderbook", row))

    async def _book_update(
        self,
        conn: Connection,
        capture_ts: int,
        symbol: str,
        kind: str,
        bids: list[dict],
        asks: list[dict],
        ts: int | None,
        first: int | None,
        last: int | None,
    ) -> None:
        base = envelope(capture_ts, EXCHANGE, symbol, conn.conn_id, conn.next_seq())
        # Coinbase's one id is the connection's sequence_num, shared by every channel and product: never
        # contiguous per book, so it is `last_update_id` only (monotonic); the collector checks the gaps.
        await self.emitter.emit(
            Record(
                SOURCE, "book_updates", update_row(base, kind, bids, asks, ts, first, last, None, SYNC_RULE)
            )
        )

    async def _on_trades(self, msg: dict, capture_ts: int, conn: Connection) -> None:
        for ev in msg.get("events", []):
            for t in ev.get("trades", []):
                product = t.get("product_id", "")
                tid = str(t.get("trade_id"))
                order, seen = self._seen.setdefault(product, (deque(), set()))
                if tid in seen:
                    continue  # the subscription's first event replays recent trades
                seen.add(tid)
                order.append(tid)
                if len(order) > TRADE_DEDUPE_WINDOW:
                    seen.discard(order.popleft())
                conn.touch(f"market_trades:{product}")
                symbol, ts = product_to_symbol(product), rfc3339_ns(t.get("time"))
                # Bronze keeps Coinbase's raw `side` as received (it names the maker's order);
                # silver.trades maps it to the aggressor (docs/features.md "Trade side").
                row = envelope(capture_ts, EXCHANGE, symbol, conn.conn_id, conn.next_seq())
                row.update(trade_columns(t, ts))
                if self.healer is not None:
                    self.healer.saw(
                        symbol, {"id": tid, "timestamp": None if ts is None else ts // 10**6}, capture_ts
                    )
                await self.emitter.emit(Record(SOURCE, "trades", row))

    async def _on_ticker(self, msg: dict, capture_ts: int, conn: Connection) -> None:
        ts = rfc3339_ns(msg.get("timestamp"))
        for ev in msg.get("events", []):
            for t in ev.get("tickers", []):
                product = t.get("product_id", "")
                conn.touch(f"ticker:{product}")

                def f(key: str, t: dict = t) -> float | None:
                    v = t.get(key)
                    return float(v) if v not in (None, "") else None

                row = envelope(
                    capture_ts, EXCHANGE, product_to_symbol(product), conn.conn_id, conn.next_seq()
                )
                row.update(
                    timestamp=ts,
                    bid=f("best_bid"),
                    ask=f("best_ask"),
                    bid_volume=f("best_bid_quantity"),
                    ask_volume=f("best_ask_quantity"),
                    last=f("price"),
                    open=None,
                    high=f("high_24_h"),
                    low=f("low_24_h"),
                    close=f("price"),
                    vwap=None,
                    base_volume=f("volume_24_h"),
                    quote_volume=None,
                    change=None,
                    percentage=f("price_percent_chg_24_h"),
                    info_json=json.dumps(t, separators=(",", ":")),
                )
                await self.emitter.emit(Record(SOURCE, "ticker", row))
