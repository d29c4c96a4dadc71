"""Fake Binance futures servers on loopback: USD-M (`fapi`/`fstream`, ccxt `binanceusdm`) and COIN-M
(`dapi`/`dstream`, ccxt `binancecoinm`), as the real ccxt.pro client calls them. Also serves ccxt
`binance` with a futures symbol (`BTC/USDT:USDT`, `BTC/USD:BTC`): the same urls.

The wire is the spot fake's (daedalus/devkit/simulator/binance.py) with the futures differences:
- WebSocket: `ws://HOST:PORT/ws/N` (COIN-M) and, for USD-M, `/public/ws/N` and `/market/ws/N` (ccxt
  splits fstream by category); raw streams, `SUBSCRIBE` answered `{"result":null,"id":n}`.
- REST depth: `GET /fapi/v1/depth` / `GET /dapi/v1/depth`, with `E` and `T` beside `lastUpdateId`.
- Diffs (`<sym>@depth@100ms`, as ccxt subscribes) carry `T` and `pu` and follow the futures rule
  (https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/
  How-to-manage-a-local-order-book-correctly): `pu` = the previous diff's `u`, while `U` is *not*
  the previous `u` + 1 (the synthetic ids leave holes, as the real streams do on ~95% of diffs).
- `replay(capture)` replays a real futures capture (tests/data/binance-coinm-btcusdperp-20240808);
  its `@depth@0ms` diffs go out on the stream the client subscribed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web

from daedalus.devkit.simulator.binance import FakeBinance, ServerBook
from daedalus.devkit.simulator.market import BookDiff, SimulatedMarket, Trade
from daedalus.devkit.simulator.wsfake import market_structure


def fmt(x: float) -> str:
    return f"{x:.8f}"


class FuturesBook(ServerBook):
    """The server's book with the exchange times of the last diff (a futures depth answer has them)."""

    event_time: int = 0
    transaction_time: int = 0

    def apply(self, diff: dict) -> None:
        super().apply(diff)
        self.event_time, self.transaction_time = diff.get("E", 0), diff.get("T", diff.get("E", 0))

    def snapshot(self, limit: int) -> dict:
        snap = super().snapshot(limit)
        snap.update(E=self.event_time, T=self.transaction_time)
        return snap


def futures_market(symbol: str, kind: str, tick: float = 0.1) -> dict:
    """A ccxt market for a perpetual: kind "linear" (BTC/USDT:USDT, id BTCUSDT) or "inverse"
    (BTC/USD:BTC, id BTCUSD_PERP, 100 USD contracts)."""
    pair, settle = symbol.split(":")
    base, quote = pair.split("/")
    mid = f"{base}{quote}" if kind == "linear" else f"{base}{quote}_PERP"
    return market_structure(
        pair,
        mid,
        tick,
        {
            "symbol": symbol,
            "quote": quote,
            "quoteId": quote,
            "settle": settle,
            "settleId": settle,
            "type": "swap",
            "spot": False,
            "swap": True,
            "contract": True,
            "linear": kind == "linear",
            "inverse": kind == "inverse",
            "contractSize": 1.0 if kind == "linear" else 100.0,
            "info": {"symbol": mid, "pair": f"{base}{quote}", "contractType": "PERPETUAL"},
        },
    )


class FakeBinanceFutures(FakeBinance):
    """`kind` = "linear" (USD-M) or "inverse" (COIN-M)."""

    def __init__(self, kind: str = "inverse", host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        if kind not in ("linear", "inverse"):
            raise ValueError(f"kind must be linear or inverse, not {kind!r}")
        self.kind = kind
        self.last_u: dict[str, int] = {}  # symbol id -> `u` of its last diff (the next one's `pu`)
        self.served: list[int] = []  # lastUpdateId of every REST depth answer

    @property
    def api_root(self) -> str:
        return "fapi" if self.kind == "linear" else "dapi"

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/public/ws/{index}", self.ws_handler)
        app.router.add_get("/market/ws/{index}", self.ws_handler)
        app.router.add_get(f"/{self.api_root}/v1/depth", self.depth_handler)

    async def depth_handler(self, request: web.Request) -> web.Response:
        response = await super().depth_handler(request)
        book = self.books.get(request.query.get("symbol", ""))
        if book is not None and response.status == 200:
            self.served.append(book.last_update_id)
        return response

    def configure(self, exchange: Any, symbols: Iterable[str], tick: float = 0.1) -> None:
        """Point a ccxt.pro binance / binanceusdm / binancecoinm client here; give it the markets."""
        api = exchange.urls["api"]
        api["ws"]["linear"] = api["ws"]["inverse"] = self.ws_url
        root = f"http://{self.host}:{self.port}"
        api["fapiPublic"] = f"{root}/fapi/v1"
        api["dapiPublic"] = f"{root}/dapi/v1"
        exchange.set_markets([futures_market(s, self.kind, tick) for s in symbols])

    def symbol_id(self, symbol: str) -> str:
        """The perpetual's id; a simulated market's spot-like symbol (BTC/USDT) names the perpetual."""
        if ":" not in symbol:
            base, quote = symbol.split("/")
            symbol = f"{symbol}:{quote if self.kind == 'linear' else base}"
        return futures_market(symbol, self.kind)["id"]

    # ---- publishing ----
    async def publish(self, stream: str, payload: dict) -> None:
        if "@depth@" in stream:  # the capture's @depth@0ms: the client subscribed at ccxt's rate
            stream = stream.split("@", 1)[0] + "@depth@100ms"
        await super().publish(stream, payload)

    def new_book(self, snap: dict) -> ServerBook:
        book = FuturesBook(dict(snap["bids"]), dict(snap["asks"]), snap["lastUpdateId"])
        book.event_time, book.transaction_time = snap.get("E", 0), snap.get("T", 0)
        return book

    def load_market(self, market: SimulatedMarket) -> None:
        for symbol, book in market.books.items():
            sid = self.symbol_id(symbol)
            self.books[sid] = FuturesBook(
                {fmt(p): fmt(q) for p, q in book.bids.items()},
                {fmt(p): fmt(q) for p, q in book.asks.items()},
                futures_ids(book.update_id, book.update_id)[1],
            )

    async def publish_market_event(self, ev: BookDiff | Trade, market: SimulatedMarket) -> None:
        sid = self.symbol_id(ev.symbol)
        low = sid.lower()
        if isinstance(ev, Trade):
            await self.publish(
                f"{low}@trade",
                {
                    "e": "trade",
                    "E": ev.ts_ms,
                    "T": ev.ts_ms,
                    "s": sid,
                    "t": ev.trade_id,
                    "p": fmt(ev.price),
                    "q": fmt(ev.qty),
                    "X": "MARKET",
                    "m": ev.buyer_is_maker,
                },
            )
            return
        first, last = futures_ids(ev.first_id, ev.last_id)
        prev = self.last_u.get(sid, futures_ids(ev.first_id - 1, ev.first_id - 1)[1])
        self.last_u[sid] = last
        diff = {"e": "depthUpdate", "E": ev.ts_ms, "T": ev.ts_ms, "s": sid}
        if self.kind == "inverse":  # `ps` (the pair) is COIN-M's only: the real USD-M diff has none
            diff["ps"] = sid.split("_")[0]
        diff.update(U=first, u=last, pu=prev)
        diff["b"] = [[fmt(p), fmt(q)] for p, q in ev.bids]
        diff["a"] = [[fmt(p), fmt(q)] for p, q in ev.asks]
        await self.publish(f"{low}@depth@100ms", diff)


def futures_ids(first_id: int, last_id: int) -> tuple[int, int]:
    """(U, u) of a synthetic futures diff: `U` is never the previous `u` + 1 (a spot-rule check fails
    on every diff), `pu` chains them."""
    return first_id * 10 + 2, last_id * 10 + 5
