"""A fake Binance spot server on loopback: WebSocket market streams + REST depth, with fault knobs.

Speaks the wire protocol the real ccxt.pro client uses, so tests drive the real client:
- `ws://HOST:PORT/ws[/N]`: raw streams; the client sends `{"method":"SUBSCRIBE","params":[...],"id":n}`
  and gets `{"result":null,"id":n}` (ccxt opens `/ws/<stream index>`).
- `ws://HOST:PORT/stream?streams=a/b`: combined streams, every message wrapped as
  `{"stream":"btcusdt@trade","data":{...}}`; SUBSCRIBE works here too.
- streams `<sym>@depth@100ms` (diffs with U/u), `<sym>@trade`, `<sym>@bookTicker`, `<sym>@ticker`.
- `GET /api/v3/depth?symbol=BTCUSDT&limit=N`: a snapshot from the server's own book, which follows
  every diff it publishes, so a client that syncs per Binance's procedure gets a consistent book.
Faults: abrupt close (1006), close 1001, half-open sockets, skipped U/u ranges, malformed frames,
REST 429 with Retry-After, `serverShutdown`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from daedalus.devkit.simulator.market import BookDiff, SimulatedMarket, Trade
from daedalus.devkit.simulator.trade_history import TradeTape, binance_routes
from daedalus.devkit.simulator.wsfake import market_structure

try:
    import orjson

    def _dumps(obj: Any) -> str:
        return orjson.dumps(obj).decode()
except ImportError:  # pragma: no cover

    def _dumps(obj: Any) -> str:
        return json.dumps(obj, separators=(",", ":"))


@dataclass
class _Peer:
    ws: web.WebSocketResponse
    request: web.Request
    combined: bool
    streams: set[str] = field(default_factory=set)
    muted: bool = False


@dataclass
class ServerBook:
    """The server's order book for one symbol, kept in the wire's string form."""

    bids: dict[str, str]
    asks: dict[str, str]
    last_update_id: int

    def apply(self, diff: dict) -> None:
        if diff["u"] <= self.last_update_id:
            return  # already in the snapshot
        for side, key in ((self.bids, "b"), (self.asks, "a")):
            for price, qty in diff[key]:
                if float(qty) == 0:
                    side.pop(price, None)
                else:
                    side[price] = qty
        self.last_update_id = diff["u"]

    def snapshot(self, limit: int) -> dict:
        bids = sorted(self.bids.items(), key=lambda kv: -float(kv[0]))[:limit]
        asks = sorted(self.asks.items(), key=lambda kv: float(kv[0]))[:limit]
        return {
            "lastUpdateId": self.last_update_id,
            "bids": [list(b) for b in bids],
            "asks": [list(a) for a in asks],
        }


def binance_id(symbol: str) -> str:
    """BTC/USDT → BTCUSDT."""
    return symbol.replace("/", "")


def spot_market(symbol: str) -> dict:
    """A ccxt market structure for a spot symbol, enough for `exchange.set_markets` (no REST load)."""
    mid = binance_id(symbol)
    return market_structure(symbol, mid, 1e-8, extra={"info": {"symbol": mid, "status": "TRADING"}})


class FakeBinance:
    """Start with `await server.start()`; feed it with `replay`, `run_market` or `publish`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self.books: dict[str, ServerBook] = {}
        self.peers: list[_Peer] = []
        self.connections_total = 0
        self.subscribe_requests: list[list[str]] = []
        self.depth_requests: dict[str, int] = {}
        self.depth_request_times: list[tuple[str, float]] = []  # (symbol id, loop time) per REST depth call
        self.published: dict[str, int] = {}
        self._skip_depth: dict[str, int] = {}
        self._rest_429: tuple[int, float] = (0, 0.0)
        self._subscribed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._ticker_state: dict[str, dict] = {}
        self.tape = TradeTape()  # every trade published, served by the REST history routes

    # ---- lifecycle ----
    async def start(self) -> FakeBinance:
        app = web.Application()
        app.router.add_get("/ws", self.ws_handler)
        app.router.add_get("/ws/{index}", self.ws_handler)
        app.router.add_get("/stream", self.ws_handler)
        app.router.add_get("/api/v3/depth", self.depth_handler)
        app.router.add_get("/api/v3/ping", self._ping)
        binance_routes(app, self.tape)
        self.add_routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    def add_routes(self, app: web.Application) -> None:
        """More routes (the futures fakes' paths, daedalus/devkit/simulator/binance_futures.py)."""

    async def stop(self) -> None:
        for peer in list(self.peers):
            with contextlib.suppress(Exception):
                await peer.ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}/api/v3"

    def exchange_options(self) -> dict[str, Any]:
        """`ingestion.exchange_options.binance` that points ccxt.pro's binance at this server (the
        markets, which this server does not serve, still come from `configure` or set_markets)."""
        ws, rest = self.ws_url, self.rest_url
        return {
            "urls": {"api": {"ws": {"spot": ws, "margin": ws}, "public": rest, "private": rest, "v3": rest}}
        }

    def configure(self, exchange: Any, symbols: Iterable[str]) -> None:
        """Point a ccxt.pro binance client at this server and give it markets (no REST market load)."""
        api = exchange.urls["api"]
        api["ws"]["spot"] = api["ws"]["margin"] = self.ws_url
        for key in ("public", "private", "v3"):  # the /api/v3 endpoints (depth lives under public)
            if key in api:
                api[key] = self.rest_url
        exchange.set_markets([spot_market(s) for s in symbols])

    # ---- handlers ----
    async def ws_handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        combined = request.path.startswith("/stream")
        peer = _Peer(ws, request, combined)
        self.peers.append(peer)
        self.connections_total += 1
        if combined and request.query.get("streams"):
            peer.streams.update(request.query["streams"].split("/"))
            await self._notify_subscribed()
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    req = json.loads(msg.data)
                except ValueError:
                    await ws.send_str(_dumps({"error": {"code": 2, "msg": "Invalid JSON"}}))
                    continue
                method, params, rid = req.get("method"), req.get("params") or [], req.get("id")
                if method == "SUBSCRIBE":
                    peer.streams.update(params)
                    self.subscribe_requests.append(list(params))
                    await ws.send_str(_dumps({"result": None, "id": rid}))
                    await self._notify_subscribed()
                elif method == "UNSUBSCRIBE":
                    peer.streams.difference_update(params)
                    await ws.send_str(_dumps({"result": None, "id": rid}))
                elif method == "LIST_SUBSCRIPTIONS":
                    await ws.send_str(_dumps({"result": sorted(peer.streams), "id": rid}))
        finally:
            with contextlib.suppress(ValueError):
                self.peers.remove(peer)
        return ws

    async def depth_handler(self, request: web.Request) -> web.Response:
        symbol = request.query.get("symbol", "")
        self.depth_requests[symbol] = self.depth_requests.get(symbol, 0) + 1
        self.depth_request_times.append((symbol, asyncio.get_running_loop().time()))
        remaining, retry_after = self._rest_429
        if remaining > 0:
            self._rest_429 = (remaining - 1, retry_after)
            return web.json_response(
                {
                    "code": -1003,
                    "msg": "Too many requests; current limit is 6000 request weight per 1 MINUTE.",
                },
                status=429,
                headers={"Retry-After": str(int(retry_after))},
            )
        book = self.books.get(symbol)
        if book is None:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        limit = int(request.query.get("limit", "100"))
        return web.json_response(book.snapshot(limit))

    async def _ping(self, request: web.Request) -> web.Response:
        return web.json_response({})

    async def _notify_subscribed(self) -> None:
        async with self._subscribed:
            self._subscribed.notify_all()

    async def wait_subscribed(self, streams: Iterable[str], timeout: float = 10.0) -> None:
        """Wait until every stream has at least one subscriber (so a replay loses nothing)."""
        wanted = set(streams)

        def ready() -> bool:
            have: set[str] = set()
            for p in self.peers:
                have |= p.streams
            return wanted <= have

        async with self._subscribed:
            await asyncio.wait_for(self._subscribed.wait_for(ready), timeout)

    # ---- publishing ----
    async def publish(self, stream: str, payload: dict) -> None:
        """Send one stream message to every subscriber (and keep the server book in step)."""
        if "@depth" in stream:
            sid = payload["s"]
            book = self.books.get(sid)
            if book is not None:
                book.apply(payload)
            skip = self._skip_depth.get(sid, 0)
            if skip:
                self._skip_depth[sid] = skip - 1
                return
        self.published[stream] = self.published.get(stream, 0) + 1
        raw = wrapped = None
        for peer in list(self.peers):
            if stream not in peer.streams or peer.muted or peer.ws.closed:
                continue
            if peer.combined:
                wrapped = wrapped or _dumps({"stream": stream, "data": payload})
                text = wrapped
            else:
                raw = raw or _dumps(payload)
                text = raw
            try:  # noqa: SIM105 - hot path; try/except is cheaper than contextlib.suppress
                await peer.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                pass  # the peer went away; its handler removes it

    async def replay(self, capture: Any, speed: float = 0.0, with_ticker: bool = True) -> int:
        """Replay a `replay.Capture` in order at speed ×N (0 = as fast as possible). Returns messages sent."""
        from daedalus.devkit.simulator.replay import paced

        sid = capture.symbol_id
        self.books[sid] = self.new_book(capture.snapshot)
        sent = 0
        pending = 0.0
        for delay, stream, payload in paced(capture, speed):
            pending += delay
            if pending >= 0.002:  # sleep in slices; asyncio cannot sleep µs accurately anyway
                await asyncio.sleep(pending)
                pending = 0.0
            elif sent % 200 == 0:
                await asyncio.sleep(0)
            await self.publish(stream, payload)
            sent += 1
            if with_ticker:
                await self.maybe_ticker(sid, stream, payload)
        return sent

    def new_book(self, snap: dict) -> ServerBook:
        """The server book starting at a REST depth snapshot (a capture's)."""
        return ServerBook(dict(snap["bids"]), dict(snap["asks"]), snap["lastUpdateId"])

    async def maybe_ticker(self, sid: str, stream: str, payload: dict) -> None:
        """Synthesize a 24hrTicker (once per exchange second) from the book ticker and trades."""
        st = self._ticker_state.setdefault(sid, {"E": 0, "last": None, "bt": None, "emitted": 0, "n": 0})
        if stream.endswith("@trade"):
            st["E"] = max(st["E"], payload["E"])
            st["last"] = payload
            st["n"] += 1
        elif "@depth" in stream:
            st["E"] = max(st["E"], payload["E"])
        elif stream.endswith("@bookTicker"):
            st["bt"] = payload
        if st["bt"] is None or st["last"] is None or st["E"] - st["emitted"] < 1000:
            return
        st["emitted"] = st["E"]
        bt, last = st["bt"], st["last"]
        await self.publish(
            f"{sid.lower()}@ticker",
            {
                "e": "24hrTicker",
                "E": st["E"],
                "s": sid,
                "p": "0",
                "P": "0",
                "w": last["p"],
                "x": last["p"],
                "c": last["p"],
                "Q": last["q"],
                "b": bt["b"],
                "B": bt["B"],
                "a": bt["a"],
                "A": bt["A"],
                "o": last["p"],
                "h": last["p"],
                "l": last["p"],
                "v": "0",
                "q": "0",
                "O": st["E"] - 86_400_000,
                "C": st["E"],
                "F": 0,
                "L": last["t"],
                "n": st["n"],
            },
        )

    def load_market(self, market: SimulatedMarket) -> None:
        """Initialise the server books from a simulated market (call before `run_market`)."""
        for symbol, book in market.books.items():
            self.books[binance_id(symbol)] = ServerBook(
                {_fmt(p): _fmt(q) for p, q in book.bids.items()},
                {_fmt(p): _fmt(q) for p, q in book.asks.items()},
                book.update_id,
            )

    async def run_market(
        self,
        market: SimulatedMarket,
        steps: int | None = None,
        interval: float = 0.01,
        stop: asyncio.Event | None = None,
    ) -> int:
        """Publish the simulated market: one `step` per `interval` seconds (0 = flat out)."""
        if not self.books:
            self.load_market(market)
        sent = n = 0
        while (steps is None or n < steps) and not (stop is not None and stop.is_set()):
            for ev in market.step():
                await self.publish_market_event(ev, market)
                sent += 1
            n += 1
            if interval > 0:
                await asyncio.sleep(interval)
            elif n % 20 == 0:
                await asyncio.sleep(0)
        return sent

    async def publish_market_event(self, ev: BookDiff | Trade, market: SimulatedMarket) -> None:
        sid = binance_id(ev.symbol)
        low = sid.lower()
        if isinstance(ev, Trade):
            self.tape.add(sid, ev)
            await self.publish(
                f"{low}@trade",
                {
                    "e": "trade",
                    "E": ev.ts_ms,
                    "s": sid,
                    "t": ev.trade_id,
                    "p": _fmt(ev.price),
                    "q": _fmt(ev.qty),
                    "T": ev.ts_ms,
                    "m": ev.buyer_is_maker,
                    "M": True,
                },
            )
            return
        await self.publish(
            f"{low}@depth@100ms",
            {
                "e": "depthUpdate",
                "E": ev.ts_ms,
                "s": sid,
                "U": ev.first_id,
                "u": ev.last_id,
                "b": [[_fmt(p), _fmt(q)] for p, q in ev.bids],
                "a": [[_fmt(p), _fmt(q)] for p, q in ev.asks],
            },
        )
        book = market.books[ev.symbol]
        bb, ba = book.best_bid(), book.best_ask()
        bt = {
            "u": ev.last_id,
            "s": sid,
            "b": _fmt(bb),
            "B": _fmt(book.bids[bb]),
            "a": _fmt(ba),
            "A": _fmt(book.asks[ba]),
        }
        await self.publish(f"{low}@bookTicker", bt)
        last = market.last_trade.get(ev.symbol)
        if last is not None:
            await self.maybe_ticker(sid, f"{low}@bookTicker", bt)
            st = self._ticker_state[sid]
            if st["last"] is None or st["last"]["t"] != last.trade_id:
                st["last"] = {"p": _fmt(last.price), "q": _fmt(last.qty), "t": last.trade_id, "E": last.ts_ms}
            st["E"] = max(st["E"], ev.ts_ms)

    # ---- faults ----
    async def drop_connections(self, code: int = 1006) -> int:
        """Close every client connection: 1006 = abrupt (TCP reset, no close frame), else a close frame."""
        peers = list(self.peers)
        for peer in peers:
            if code == 1006:
                transport = peer.request.transport
                if transport is not None:
                    transport.abort()
            else:
                with contextlib.suppress(Exception):
                    await peer.ws.close(code=code, message=b"server going away")
        return len(peers)

    def half_open(self) -> int:
        """Stop sending to every current connection without closing it (a dead NAT / half-open TCP)."""
        for peer in self.peers:
            peer.muted = True
        return len(self.peers)

    def skip_depth(self, symbol_id: str, count: int = 1) -> None:
        """Do not send the next `count` depth diffs of a symbol (the server book still applies them)."""
        self._skip_depth[symbol_id] = self._skip_depth.get(symbol_id, 0) + count

    async def send_raw(self, text: str, stream_prefix: str | None = None) -> None:
        """Send a raw (e.g. malformed) frame to every unmuted connection
        (optionally only those with a stream)."""
        for peer in list(self.peers):
            if peer.muted or (stream_prefix and not any(s.startswith(stream_prefix) for s in peer.streams)):
                continue
            with contextlib.suppress(ConnectionError, RuntimeError):
                await peer.ws.send_str(text)

    def rate_limit_rest(self, count: int, retry_after: float) -> None:
        """Answer the next `count` REST depth requests with 429 and Retry-After."""
        self._rest_429 = (count, retry_after)

    async def server_shutdown(self, ts_ms: int = 0) -> None:
        """Binance's notice before it closes connections for maintenance."""
        await self.send_raw(_dumps({"e": "serverShutdown", "E": ts_ms}))


def _fmt(x: float) -> str:
    return f"{x:.8f}"
