"""A fake Kraken spot WebSocket v2 on loopback: `book` (snapshot + updates with CRC32 checksum),
`trade`, `ticker`, as documented at https://docs.kraken.com/api/docs/websocket-v2/book.

- `ws://HOST:PORT/v2`; the client sends `{"method": "subscribe", "params": {"channel": "book",
  "symbol": ["BTC/USD"], "depth": 25}, "req_id": 1}` and gets `{"method": "subscribe", "result":
  {"channel": "book", "symbol": "BTC/USD", ...}, "success": true, "req_id": 1}` per symbol; a book
  subscribe is answered with a `"type": "snapshot"` frame, then updates within the subscribed depth;
  numbers are JSON numbers; `{"method": "ping"}` gets a pong; unsubscribe works. A snapshot carries
  the book's `timestamp` as an update does (Kraken's documented snapshot example has one).
`recorded_snapshots[symbol]` (a real or documented snapshot frame) is sent on subscribe instead of the
simulated book's; `publish` then sends recorded updates as they are.
Faults: `corrupt_checksum` (the next update carries a wrong checksum), `drop_connections`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from daedalus.devkit.simulator.market import BookDiff, SimulatedMarket, Trade
from daedalus.devkit.simulator.trade_history import TradeTape, kraken_routes
from daedalus.devkit.simulator.wsfake import FakeVenue, Peer, market_structure, tick_of

QTY_DP = 8


_DIGITS: dict[tuple[float, int], str] = {}


def _digits(x: float, dp: int) -> str:
    """x in `dp` decimals without "." and leading zeros (cached: the top levels repeat)."""
    s = _DIGITS.get((x, dp))
    if s is None:
        if len(_DIGITS) > 200_000:
            _DIGITS.clear()
        s = _DIGITS[(x, dp)] = f"{x:.{dp}f}".replace(".", "").lstrip("0")
    return s


def _iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


class FakeKraken(FakeVenue):
    paths = ("/v2",)
    depth = 25
    ticker_interval_ms = 100

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self._corrupt: dict[str, int] = {}
        self._last_ticker: dict[str, int] = {}
        self._ts: dict[str, int] = {}
        self._dp: dict[str, int] = {}  # price decimals per symbol
        self.tape = TradeTape()  # every trade published (by pair id), served by /0/public/Trades
        self._pair_dp: dict[str, int] = {}
        self._ticks: dict[str, float] = {}  # price tick per symbol given to configure()
        self.recorded_snapshots: dict[str, dict] = {}

    def add_routes(self, app: Any) -> None:
        kraken_routes(app, self.tape, self._pair_dp)

    def exchange_options(self) -> dict[str, Any]:
        return {"urls": {"api": {"ws": {"publicV2": f"{self.ws_base}/v2"}, "public": self.base_url}}}

    def configure(
        self,
        exchange: Any,
        symbols: Iterable[str],
        market: SimulatedMarket | None = None,
        ticks: dict[str, float] | None = None,
    ) -> None:
        """`ticks`: price tick per symbol where no simulated market gives it (recorded frames)."""
        self._ticks = dict(ticks or {})
        super().configure(exchange, symbols, market)

    def set_markets(
        self, exchange: Any, symbols: Iterable[str], market: SimulatedMarket | None = None
    ) -> None:
        tick = lambda s: self._ticks.get(s) or tick_of(s, market)  # noqa: E731
        exchange.set_markets([market_structure(s, s.replace("/", ""), tick(s), {"wsId": s}) for s in symbols])

    def load_market(self, market: SimulatedMarket) -> None:
        super().load_market(market)
        for s, b in market.books.items():
            self._dp[s] = len(f"{b.tick:.10f}".rstrip("0").split(".")[1])
            self._ts.setdefault(s, market.now_ms)

    def checksum(self, symbol: str) -> int:
        """Kraken's rule: top 10 asks then top 10 bids; price and qty in the pair's precision with "."
        and leading zeros removed, concatenated; CRC32 unsigned."""
        book, dp = self.books[symbol], self._dp[symbol]
        text = ""
        for side in ("ask", "bid"):
            for p, q in book.top(side, 10):
                text += _digits(p, dp) + _digits(q, QTY_DP)
        return zlib.crc32(text.encode())

    async def on_request(self, peer: Peer, req: Any) -> None:
        if not isinstance(req, dict):
            return
        method, rid, params = req.get("method"), req.get("req_id"), req.get("params") or {}
        if method == "ping":
            await self.send(peer, {"method": "pong", "req_id": rid})
            return
        channel = params.get("channel")
        for symbol in params.get("symbol") or []:
            topic = f"{channel}:{symbol}"
            result = {"channel": channel, "symbol": symbol}
            if method == "subscribe":  # an unsubscribe ack names channel, symbol (and a book's depth)
                result["snapshot"] = True
            if channel == "book":
                result["depth"] = params.get("depth", 10)
            await self.send(
                peer,
                {
                    "method": method,
                    "result": result,
                    "success": True,
                    "req_id": rid,
                    "time_in": _iso(0),
                    "time_out": _iso(0),
                },
            )
            if method == "subscribe":
                if channel == "book":
                    await self._snapshot(peer, symbol)
                await self.subscribed(peer, [topic])
            elif method == "unsubscribe":
                peer.topics.discard(topic)

    def _level(self, symbol: str, p: float, q: float) -> dict:
        return {"price": round(p, self._dp[symbol]), "qty": round(q, QTY_DP)}

    async def _snapshot(self, peer: Peer, symbol: str) -> None:
        frame = self.recorded_snapshots.get(symbol)
        if frame is None:
            book = self.books[symbol]
            data = {
                "symbol": symbol,
                "bids": [self._level(symbol, p, q) for p, q in book.top("bid")],
                "asks": [self._level(symbol, p, q) for p, q in book.top("ask")],
                "checksum": self.checksum(symbol),
            }
            if symbol in self._ts:
                data["timestamp"] = _iso(self._ts[symbol])
            frame = {"channel": "book", "type": "snapshot", "data": [data]}
        await self.send(peer, frame)
        if self.record:
            self.sent.setdefault(f"book:{symbol}", []).append(frame)

    async def publish_market_event(self, ev: BookDiff | Trade, market: SimulatedMarket) -> bool:
        """Publish one market event; True if a frame went out for it (a book diff outside the
        subscribed depth sends nothing)."""
        symbol = ev.symbol
        self._ts[symbol] = ev.ts_ms
        if isinstance(ev, Trade):
            self.tape.add(symbol.replace("/", ""), ev)
            self._pair_dp[symbol.replace("/", "")] = self._dp[symbol]
            await self.publish(
                f"trade:{symbol}",
                {
                    "channel": "trade",
                    "type": "update",
                    "data": [
                        {
                            "symbol": symbol,
                            "side": "sell" if ev.buyer_is_maker else "buy",
                            "price": round(ev.price, self._dp[symbol]),
                            "qty": round(ev.qty, QTY_DP),
                            "ord_type": "market",
                            "trade_id": ev.trade_id,
                            "timestamp": _iso(ev.ts_ms),
                        }
                    ],
                },
            )
            return True
        book = self.books[symbol]
        bids, asks = book.apply(ev)
        if bids or asks:
            checksum = self.checksum(symbol)
            if self._corrupt.get(symbol):
                self._corrupt[symbol] -= 1
                checksum ^= 0x5A5A
                self.mark(f"book:{symbol}", "corrupt")
            await self.publish(
                f"book:{symbol}",
                {
                    "channel": "book",
                    "type": "update",
                    "data": [
                        {
                            "symbol": symbol,
                            "bids": [self._level(symbol, p, q) for p, q in bids],
                            "asks": [self._level(symbol, p, q) for p, q in asks],
                            "checksum": checksum,
                            "timestamp": _iso(ev.ts_ms),
                        }
                    ],
                },
            )
        if ev.ts_ms - self._last_ticker.get(symbol, 0) >= self.ticker_interval_ms:
            self._last_ticker[symbol] = ev.ts_ms
            (bp, bq), (ap, aq) = book.top("bid", 1)[0], book.top("ask", 1)[0]
            last = market.last_trade.get(symbol)
            px = last.price if last is not None else (bp + ap) / 2
            await self.publish(
                f"ticker:{symbol}",
                {
                    "channel": "ticker",
                    "type": "update",
                    "data": [
                        {
                            "symbol": symbol,
                            "bid": bp,
                            "bid_qty": bq,
                            "ask": ap,
                            "ask_qty": aq,
                            "last": px,
                            "volume": 0.0,
                            "vwap": px,
                            "low": px,
                            "high": px,
                            "change": 0.0,
                            "change_pct": 0.0,
                        }
                    ],
                },
            )
        return bool(bids or asks)

    def corrupt_checksum(self, symbol: str, count: int = 1) -> None:
        self._corrupt[symbol] = self._corrupt.get(symbol, 0) + count
