"""A fake Coinbase Advanced Trade WebSocket server on loopback, fed by the simulated market.

Protocol as documented for `wss://advanced-trade-ws.coinbase.com`: the client sends
`{"type":"subscribe","product_ids":[...],"channel":"level2"}` (one channel per message, optional
`jwt`); the server answers on channel `subscriptions`, then sends `l2_data` (a `snapshot` event, then
`update`s), `market_trades` (a `snapshot` of recent trades, then `update`s; `side` is the maker's),
`ticker` and `heartbeats` (once a second). Every message carries `sequence_num`, one counter per
connection across all channels. Faults: skipped sequence numbers, abrupt close, close codes,
half-open sockets, malformed frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import WSMsgType, web

from daedalus.devkit.simulator.market import BookDiff, SimulatedMarket, Trade
from daedalus.devkit.simulator.trade_history import TradeTape, coinbase_routes


def product_id(symbol: str) -> str:
    return symbol.replace("/", "-")


def _iso(ms: int | None = None) -> str:
    ns = (ms * 1_000_000) if ms is not None else time.time_ns()
    dt = datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % 1_000_000_000:09d}Z"


@dataclass
class _Peer:
    ws: web.WebSocketResponse
    request: web.Request
    channels: dict[str, set[str]] = field(default_factory=dict)  # channel -> product ids
    seq: int = 0
    muted: bool = False
    skip_next: int = 0


class FakeCoinbase:
    def __init__(
        self, market: SimulatedMarket, host: str = "127.0.0.1", port: int = 0, heartbeat_interval: float = 1.0
    ) -> None:
        self.market = market
        self.host, self.port = host, port
        self.heartbeat_interval = heartbeat_interval
        self.peers: list[_Peer] = []
        self.connections_total = 0
        self.subscribe_requests: list[dict] = []
        self.recent_trades: dict[str, deque[Trade]] = {}
        self.trade_log: list[Trade] = []  # every trade the market made while this server ran
        self.tape = TradeTape()  # the same, per product id, served by the REST market trades route
        self._runner: web.AppRunner | None = None
        self._hb_task: asyncio.Task | None = None
        self._subscribed = asyncio.Condition()
        self.sent: dict[str, int] = {}
        self.handshakes: list[float] = []  # loop time of every WebSocket handshake attempt
        self._reject: tuple[int, int, float] = (0, 429, 0.0)

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/"

    async def start(self) -> FakeCoinbase:
        app = web.Application()
        app.router.add_get("/", self._ws)
        coinbase_routes(app, self.tape, self._trade_json)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._hb_task = asyncio.ensure_future(self._heartbeats())
        return self

    async def stop(self) -> None:
        if self._hb_task is not None:
            self._hb_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._hb_task
        for peer in list(self.peers):
            with contextlib.suppress(Exception):
                await peer.ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()

    async def _send(self, peer: _Peer, channel: str, events: list[dict], ts: str | None = None) -> None:
        if peer.muted or peer.ws.closed:
            return
        if peer.skip_next:
            peer.seq += peer.skip_next  # those messages are "lost": their numbers are used up
            peer.skip_next = 0
        msg = {
            "channel": channel,
            "client_id": "",
            "timestamp": ts or _iso(),
            "sequence_num": peer.seq,
            "events": events,
        }
        peer.seq += 1
        self.sent[channel] = self.sent.get(channel, 0) + 1
        with contextlib.suppress(ConnectionError, RuntimeError):
            await peer.ws.send_str(json.dumps(msg, separators=(",", ":")))

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        self.handshakes.append(asyncio.get_running_loop().time())
        if self._reject[0] > 0:
            count, status, retry_after = self._reject
            self._reject = (count - 1, status, retry_after)
            return web.Response(
                status=status, text="rate limited", headers={"Retry-After": str(int(retry_after))}
            )
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        peer = _Peer(ws, request)
        self.peers.append(peer)
        self.connections_total += 1
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    req = json.loads(msg.data)
                except ValueError:
                    await ws.send_str(json.dumps({"type": "error", "message": "failure to parse message"}))
                    continue
                await self._on_request(peer, req)
        finally:
            with contextlib.suppress(ValueError):
                self.peers.remove(peer)
        return ws

    async def _on_request(self, peer: _Peer, req: dict) -> None:
        self.subscribe_requests.append(req)
        kind, channel, products = req.get("type"), req.get("channel"), req.get("product_ids") or []
        known = {product_id(s) for s in self.market.symbols}
        if kind not in ("subscribe", "unsubscribe") or channel not in (
            "level2",
            "market_trades",
            "ticker",
            "heartbeats",
        ):
            await peer.ws.send_str(json.dumps({"type": "error", "message": f"unknown channel {channel}"}))
            return
        bad = [p for p in products if p not in known]
        if bad:
            await peer.ws.send_str(json.dumps({"type": "error", "message": f"invalid product_id {bad[0]}"}))
            return
        if kind == "unsubscribe":
            peer.channels.get(channel, set()).difference_update(products)
        else:
            peer.channels.setdefault(channel, set()).update(products)
        subs = {ch: sorted(ps) for ch, ps in peer.channels.items() if ps}
        await self._send(peer, "subscriptions", [{"subscriptions": subs}])
        if kind == "subscribe":
            await self._snapshots(peer, channel, products)
        async with self._subscribed:
            self._subscribed.notify_all()

    async def _snapshots(self, peer: _Peer, channel: str, products: list[str]) -> None:
        for p in products:
            symbol = p.replace("-", "/")
            book = self.market.books[symbol]
            if channel == "level2":
                updates = [
                    {"side": "bid", "event_time": _iso(0), "price_level": f"{px}", "new_quantity": f"{q}"}
                    for px, q in book.bids.items()
                ]
                updates += [
                    {"side": "offer", "event_time": _iso(0), "price_level": f"{px}", "new_quantity": f"{q}"}
                    for px, q in book.asks.items()
                ]
                await self._send(peer, "l2_data", [{"type": "snapshot", "product_id": p, "updates": updates}])
            elif channel == "market_trades":
                trades = [self._trade_json(t) for t in reversed(self.recent_trades.get(symbol, deque()))]
                await self._send(peer, "market_trades", [{"type": "snapshot", "trades": trades}])
            elif channel == "ticker":
                await self._send(
                    peer, "ticker", [{"type": "snapshot", "tickers": [self._ticker_json(symbol)]}]
                )

    async def wait_subscribed(self, channels: list[str], timeout: float = 10.0) -> None:
        def ready() -> bool:
            return any(all(peer.channels.get(c) for c in channels) for peer in self.peers)

        async with self._subscribed:
            await asyncio.wait_for(self._subscribed.wait_for(ready), timeout)

    def _trade_json(self, t: Trade) -> dict:
        # the maker's side: buyer_is_maker → the maker bought
        return {
            "trade_id": str(t.trade_id),
            "product_id": product_id(t.symbol),
            "price": f"{t.price}",
            "size": f"{t.qty}",
            "side": "BUY" if t.buyer_is_maker else "SELL",
            "time": _iso(t.ts_ms),
        }

    def _ticker_json(self, symbol: str) -> dict:
        book = self.market.books[symbol]
        bb, ba = book.best_bid(), book.best_ask()
        last = self.market.last_trade.get(symbol)
        price = last.price if last else (bb + ba) / 2
        return {
            "type": "ticker",
            "product_id": product_id(symbol),
            "price": f"{price}",
            "volume_24_h": "1000",
            "low_24_h": f"{price * 0.98}",
            "high_24_h": f"{price * 1.02}",
            "low_52_w": "1",
            "high_52_w": "1e9",
            "price_percent_chg_24_h": "0.5",
            "best_bid": f"{bb}",
            "best_bid_quantity": f"{book.bids[bb]}",
            "best_ask": f"{ba}",
            "best_ask_quantity": f"{book.asks[ba]}",
        }

    async def publish(self, ev: BookDiff | Trade) -> None:
        p = product_id(ev.symbol)
        if isinstance(ev, Trade):
            self.recent_trades.setdefault(ev.symbol, deque(maxlen=50)).appendleft(ev)
            self.trade_log.append(ev)
            self.tape.add(p, ev)
            for peer in list(self.peers):
                if p in peer.channels.get("market_trades", ()):
                    await self._send(
                        peer,
                        "market_trades",
                        [{"type": "update", "trades": [self._trade_json(ev)]}],
                        _iso(ev.ts_ms),
                    )
            return
        updates = [
            {"side": "bid", "event_time": _iso(ev.ts_ms), "price_level": f"{px}", "new_quantity": f"{q}"}
            for px, q in ev.bids
        ]
        updates += [
            {"side": "offer", "event_time": _iso(ev.ts_ms), "price_level": f"{px}", "new_quantity": f"{q}"}
            for px, q in ev.asks
        ]
        for peer in list(self.peers):
            if p in peer.channels.get("level2", ()):
                await self._send(
                    peer, "l2_data", [{"type": "update", "product_id": p, "updates": updates}], _iso(ev.ts_ms)
                )
            if p in peer.channels.get("ticker", ()):
                await self._send(
                    peer,
                    "ticker",
                    [{"type": "update", "tickers": [self._ticker_json(ev.symbol)]}],
                    _iso(ev.ts_ms),
                )

    async def run_market(
        self, steps: int | None = None, interval: float = 0.01, stop: asyncio.Event | None = None
    ) -> int:
        sent = n = 0
        while (steps is None or n < steps) and not (stop is not None and stop.is_set()):
            for ev in self.market.step():
                await self.publish(ev)
                sent += 1
            n += 1
            if interval > 0:
                await asyncio.sleep(interval)
            elif n % 20 == 0:
                await asyncio.sleep(0)
        return sent

    async def _heartbeats(self) -> None:
        counter = 0
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            counter += 1
            for peer in list(self.peers):
                if peer.channels.get("heartbeats"):
                    await self._send(
                        peer, "heartbeats", [{"current_time": _iso(), "heartbeat_counter": str(counter)}]
                    )

    # ---- faults ----
    def skip_sequence(self, count: int = 1) -> None:
        """`count` messages to every connection are lost before the next one (one jump of `count`)."""
        for peer in self.peers:
            peer.skip_next += count

    async def drop_connections(self, code: int = 1006) -> int:
        peers = list(self.peers)
        for peer in peers:
            if code == 1006:
                if peer.request.transport is not None:
                    peer.request.transport.abort()
            else:
                with contextlib.suppress(Exception):
                    await peer.ws.close(code=code, message=b"going away")
        return len(peers)

    def reject_handshakes(self, count: int, status: int = 429, retry_after: float = 1.0) -> None:
        """Refuse the next `count` WebSocket handshakes with HTTP `status` and Retry-After."""
        self._reject = (count, status, retry_after)

    def half_open(self) -> int:
        for peer in self.peers:
            peer.muted = True
        return len(self.peers)

    async def send_raw(self, text: str) -> None:
        for peer in list(self.peers):
            if not peer.muted:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await peer.ws.send_str(text)
