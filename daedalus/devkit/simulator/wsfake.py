"""What the OKX, Bybit and Kraken fakes share: an aiohttp WebSocket server on loopback with topic
subscriptions, and a server-side book per symbol that turns the simulated market's diffs into what a
venue with a depth-limited channel sends (the changes inside the top `depth` levels).

A venue fake subclasses `FakeVenue`: its paths, its request handling (`on_request`), its frames
(`publish_market_event`) and `configure(exchange, symbols)` for the real ccxt.pro client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from daedalus.collector.exchange_options import spot_market
from daedalus.devkit.simulator.market import BookDiff, SimulatedMarket, Trade

try:
    import orjson

    def dumps(obj: Any) -> str:
        return orjson.dumps(obj).decode()
except ImportError:  # pragma: no cover

    def dumps(obj: Any) -> str:
        return json.dumps(obj, separators=(",", ":"))


_NUMS: dict[float, str] = {}


def num(x: float) -> str:
    """A number as venues write it: shortest decimal, no trailing zeros ("60000.01", "0.5", "3").
    Cached: a fake re-sends the same levels often, and `bench collect` needs a fast sender."""
    s = _NUMS.get(x)
    if s is None:
        if len(_NUMS) > 200_000:
            _NUMS.clear()
        s = _NUMS[x] = _num(x)
    return s


def _num(x: float) -> str:
    s = repr(float(x))  # the shortest string that reads back as the same float
    if "e" in s or "E" in s:  # 1e-08: written out
        s = f"{x:.16f}".rstrip("0").rstrip(".")
    elif s.endswith(".0"):
        s = s[:-2]
    return s if s not in ("", "-0") else "0"


@dataclass
class Peer:
    ws: web.WebSocketResponse
    request: web.Request
    topics: set[str] = field(default_factory=set)
    muted: bool = False


class DepthBook:
    """One symbol's full book on the server, and the view of its top `depth` levels per side."""

    def __init__(self, bids: dict[float, float], asks: dict[float, float], depth: int) -> None:
        self.bids, self.asks, self.depth = dict(bids), dict(asks), depth

    def top(self, side: str, n: int | None = None) -> list[tuple[float, float]]:
        book = self.bids if side == "bid" else self.asks
        prices = sorted(book, reverse=(side == "bid"))[: n or self.depth]
        return [(p, book[p]) for p in prices]

    def apply(self, diff: BookDiff) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """Apply a full-depth diff; return the (bids, asks) changes a top-`depth` subscriber sees
        (size 0 = the level left the view)."""
        out = []
        for side, book, changes in (("bid", self.bids, diff.bids), ("ask", self.asks, diff.asks)):
            if len(book) + len(changes) <= self.depth:  # the view is the whole side: no sorting
                seen: list[tuple[float, float]] = []
                for p, q in changes:
                    old = book.get(p)
                    if q == 0:
                        if old is not None:
                            del book[p]
                            seen.append((p, 0.0))
                    elif old != q:
                        book[p] = q
                        seen.append((p, q))
                out.append(seen)
                continue
            before = dict(self.top(side))
            for p, q in changes:
                if q == 0:
                    book.pop(p, None)
                else:
                    book[p] = q
            after = dict(self.top(side))
            seen = [(p, q) for p, q in after.items() if before.get(p) != q]
            seen += [(p, 0.0) for p in before if p not in after]
            out.append(seen)
        return out[0], out[1]


class FakeVenue:
    """Start with `await server.start()`; feed it with `publish_market_event` (or `run_market`)."""

    paths: tuple[str, ...] = ()
    depth = 50
    record = True  # keep every frame sent in `sent` (off for benchmarks)

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self.peers: list[Peer] = []
        self.books: dict[str, DepthBook] = {}  # unified symbol -> server book
        self.connections_total = 0
        self.requests: list[Any] = []
        self.sent: dict[str, list[Any]] = {}  # topic -> every payload published to it (for tests)
        self._subscribed = asyncio.Condition()
        self._runner: web.AppRunner | None = None

    async def start(self) -> FakeVenue:
        app = web.Application()
        for path in self.paths:
            app.router.add_get(path, self._ws)
        self.add_routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    def add_routes(self, app: web.Application) -> None:
        """REST routes of a venue (its trade history: daedalus/devkit/simulator/trade_history.py)."""

    async def stop(self) -> None:
        for peer in list(self.peers):
            with contextlib.suppress(Exception):
                await peer.ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()

    def load_market(self, market: SimulatedMarket) -> None:
        for symbol, book in market.books.items():
            self.books[symbol] = DepthBook(book.bids, book.asks, self.depth)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def exchange_options(self) -> dict[str, Any]:
        """`ingestion.exchange_options.<id>` that points the ccxt.pro exchange at this server (urls),
        as a user's testnet would: no Python hook needed for the endpoints."""
        raise NotImplementedError

    def set_markets(
        self, exchange: Any, symbols: Iterable[str], market: SimulatedMarket | None = None
    ) -> None:
        """Give the ccxt exchange its markets (this server serves no market list): the one hook left."""
        raise NotImplementedError

    def configure(self, exchange: Any, symbols: Iterable[str], market: SimulatedMarket | None = None) -> None:
        """Both at once on an exchange object (the urls through the same code as the config key)."""
        from daedalus.collector.exchange_options import apply_exchange_options
        from daedalus.config import ExchangeOptions

        apply_exchange_options(exchange, exchange.id, ExchangeOptions(**self.exchange_options()))
        self.set_markets(exchange, symbols, market)

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        peer = Peer(ws, request)
        self.peers.append(peer)
        self.connections_total += 1
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    req = json.loads(msg.data)
                except ValueError:
                    req = msg.data  # "ping" and the like
                self.requests.append(req)
                await self.on_request(peer, req)
        finally:
            with contextlib.suppress(ValueError):
                self.peers.remove(peer)
        return ws

    async def on_request(self, peer: Peer, req: Any) -> None:  # pragma: no cover - per venue
        raise NotImplementedError

    async def subscribed(self, peer: Peer, topics: Iterable[str]) -> None:
        peer.topics.update(topics)
        async with self._subscribed:
            self._subscribed.notify_all()

    async def wait_subscribed(self, topics: Iterable[str], timeout: float = 10.0) -> None:
        wanted = set(topics)

        def ready() -> bool:
            have: set[str] = set()
            for p in self.peers:
                have |= p.topics
            return wanted <= have

        async with self._subscribed:
            await asyncio.wait_for(self._subscribed.wait_for(ready), timeout)

    async def send(self, peer: Peer, payload: Any) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await peer.ws.send_str(payload if isinstance(payload, str) else dumps(payload))

    async def publish(self, topic: str, payload: Any) -> None:
        """Send one frame to every subscriber of `topic` (recorded in `sent` if anyone got it)."""
        text = None
        for peer in list(self.peers):
            if topic not in peer.topics or peer.muted or peer.ws.closed:
                continue
            text = text or dumps(payload)
            try:  # noqa: SIM105 - hot path
                await peer.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                pass
        if text is not None and self.record:
            self.sent.setdefault(topic, []).append(payload)

    def mark(self, topic: str, fault: str) -> None:
        """Note a fault in the `sent` record (tests rebuild books from it and must know)."""
        if self.record:
            self.sent.setdefault(topic, []).append({"__fault__": fault})

    async def publish_market_event(self, ev: BookDiff | Trade, market: SimulatedMarket) -> bool:
        raise NotImplementedError  # pragma: no cover - per venue

    async def run_market(self, market: SimulatedMarket, steps: int, interval: float = 0.0) -> int:
        if not self.books:
            self.load_market(market)
        sent = 0
        for n in range(steps):
            for ev in market.step():
                await self.publish_market_event(ev, market)
                sent += 1
            if interval > 0:
                await asyncio.sleep(interval)
            elif n % 20 == 0:
                await asyncio.sleep(0)
        return sent

    async def drop_connections(self) -> int:
        """Abort every client connection (TCP reset, no close frame: close code 1006)."""
        peers = list(self.peers)
        for peer in peers:
            if peer.request.transport is not None:
                peer.request.transport.abort()
        return len(peers)


def market_structure(symbol: str, market_id: str, tick: float, extra: dict | None = None) -> dict:
    """A ccxt market for a spot symbol, enough for `exchange.set_markets` (no REST market load)."""
    m = spot_market(symbol, market_id)
    m.update(
        {
            "lowercaseId": market_id.lower(),
            "taker": 0.001,
            "maker": 0.001,
            "expiry": None,
            "expiryDatetime": None,
            "strike": None,
            "optionType": None,
            "precision": {"amount": 1e-8, "price": tick, "cost": None, "base": 1e-8, "quote": 1e-8},
            "info": {"symbol": market_id},
        }
    )
    m.update(extra or {})
    return m


def tick_of(symbol: str, market: SimulatedMarket | None) -> float:
    if market is not None and symbol in market.books:
        return market.books[symbol].tick
    return 0.01


async def publish_step(market: SimulatedMarket, binance: Any, venues: Iterable[Any], coinbase: Any) -> None:
    """One step of the simulated market, served by every fake at once: Binance, the `FakeVenue`s and
    Coinbase (`daedalus demo` and the soak feed the same market this way)."""
    for ev in market.step():
        await binance.publish_market_event(ev, market)
        for fake in venues:
            await fake.publish_market_event(ev, market)
        await coinbase.publish(ev)
