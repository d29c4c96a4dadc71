"""A fake Bybit v5 public spot WebSocket on loopback: `orderbook.50` (snapshot + deltas with `u`/`seq`),
`publicTrade`, `tickers`, as documented at https://bybit-exchange.github.io/docs/v5/websocket/public/orderbook.

- `ws://HOST:PORT/v5/public/spot`; the client sends `{"op": "subscribe", "req_id": "1", "args":
  ["orderbook.50.BTCUSDT"]}` and gets `{"success": true, "ret_msg": "", "conn_id": "...", "req_id": "1",
  "op": "subscribe"}`; an orderbook subscribe is answered with a `"type": "snapshot"` frame, then
  deltas whose `u` is one more each time; `{"op": "ping"}` gets a pong; unsubscribe works.
Faults: `skip_book_updates` (a `u` gap), `drop_connections`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from daedalus.devkit.simulator.market import BookDiff, SimulatedMarket, Trade
from daedalus.devkit.simulator.trade_history import BYBIT_ID_PREFIX, TradeTape, bybit_routes
from daedalus.devkit.simulator.wsfake import FakeVenue, Peer, market_structure, num, tick_of


def bybit_id(symbol: str) -> str:
    return symbol.replace("/", "")


class FakeBybit(FakeVenue):
    paths = ("/v5/public/spot",)
    depth = 50
    ticker_interval_ms = 100

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.update_id: dict[str, int] = {}
        self.cross_seq = 7_961_638_000
        self._skip: dict[str, int] = {}
        self._last_ticker: dict[str, int] = {}
        self._ts: dict[str, int] = {}
        self._symbols: dict[str, str] = {}  # BTCUSDT -> BTC/USDT
        self.tape = TradeTape()  # every trade published, served by /v5/market/recent-trade

    def exchange_options(self) -> dict[str, Any]:
        ws = {"public": {"spot": f"{self.ws_base}/v5/public/spot"}}
        return {"urls": {"api": {"ws": ws, "public": self.base_url}}}

    def set_markets(
        self, exchange: Any, symbols: Iterable[str], market: SimulatedMarket | None = None
    ) -> None:
        exchange.set_markets([market_structure(s, bybit_id(s), tick_of(s, market)) for s in symbols])

    def add_routes(self, app: Any) -> None:
        bybit_routes(app, self.tape)

    def load_market(self, market: SimulatedMarket) -> None:
        super().load_market(market)
        self._symbols = {bybit_id(s): s for s in market.books}

    async def on_request(self, peer: Peer, req: Any) -> None:
        if not isinstance(req, dict):
            return
        op, rid = req.get("op"), req.get("req_id", "")
        if op == "ping":
            await self.send(
                peer, {"success": True, "ret_msg": "pong", "conn_id": "fake", "req_id": rid, "op": "ping"}
            )
            return
        topics = list(req.get("args") or [])
        # the spot socket's ack names the op in ret_msg (https://bybit-exchange.github.io/docs/v5/ws/connect,
        # "Understanding the subscription response"); contract sockets send ""
        await self.send(peer, {"success": True, "ret_msg": op, "conn_id": "fake", "req_id": rid, "op": op})
        if op == "subscribe":
            for topic in topics:
                if topic.startswith("orderbook."):
                    await self._snapshot(peer, topic)
            await self.subscribed(peer, topics)
        elif op == "unsubscribe":
            peer.topics.difference_update(topics)

    async def _snapshot(self, peer: Peer, topic: str) -> None:
        symbol = self._symbols[topic.rsplit(".", 1)[1]]
        book = self.books[symbol]
        self.cross_seq += 1
        frame = {
            "topic": topic,
            "type": "snapshot",
            "ts": self._ts.get(symbol, 0),
            "data": {
                "s": bybit_id(symbol),
                "b": [[num(p), num(q)] for p, q in book.top("bid")],
                "a": [[num(p), num(q)] for p, q in book.top("ask")],
                "u": self.update_id.setdefault(symbol, 1000),
                "seq": self.cross_seq,
            },
            "cts": self._ts.get(symbol, 0),
        }
        await self.send(peer, frame)
        if self.record:
            self.sent.setdefault(topic, []).append(frame)

    async def publish_market_event(self, ev: BookDiff | Trade, market: SimulatedMarket) -> bool:
        """Publish one market event; True if a frame went out for it (a book diff outside the
        subscribed depth sends nothing)."""
        sid = bybit_id(ev.symbol)
        self._ts[ev.symbol] = ev.ts_ms
        if isinstance(ev, Trade):
            self.tape.add(sid, ev)
            await self.publish(
                f"publicTrade.{sid}",
                {
                    "topic": f"publicTrade.{sid}",
                    "type": "snapshot",
                    "ts": ev.ts_ms,
                    "data": [
                        {
                            "T": ev.ts_ms,
                            "s": sid,
                            "S": "Sell" if ev.buyer_is_maker else "Buy",
                            "v": num(ev.qty),
                            "p": num(ev.price),
                            "L": "ZeroPlusTick",
                            "i": f"{BYBIT_ID_PREFIX}{ev.trade_id}",
                            "BT": False,
                        }
                    ],
                },
            )
            return True
        book = self.books[ev.symbol]
        bids, asks = book.apply(ev)
        topic = f"orderbook.{self.depth}.{sid}"
        if bids or asks:
            self.update_id[ev.symbol] = self.update_id.setdefault(ev.symbol, 1000) + 1
            self.cross_seq += 1
            if self._skip.get(ev.symbol):
                self._skip[ev.symbol] -= 1
                self.mark(topic, "skip")
            else:
                await self.publish(
                    topic,
                    {
                        "topic": topic,
                        "type": "delta",
                        "ts": ev.ts_ms,
                        "data": {
                            "s": sid,
                            "b": [[num(p), num(q)] for p, q in bids],
                            "a": [[num(p), num(q)] for p, q in asks],
                            "u": self.update_id[ev.symbol],
                            "seq": self.cross_seq,
                        },
                        "cts": ev.ts_ms,
                    },
                )
        if ev.ts_ms - self._last_ticker.get(ev.symbol, 0) >= self.ticker_interval_ms:
            self._last_ticker[ev.symbol] = ev.ts_ms
            last = market.last_trade.get(ev.symbol)
            px = last.price if last is not None else (book.top("bid", 1)[0][0] + book.top("ask", 1)[0][0]) / 2
            # spot tickers carry no bid/ask on Bybit v5 (linear ones do)
            await self.publish(
                f"tickers.{sid}",
                {
                    "topic": f"tickers.{sid}",
                    "ts": ev.ts_ms,
                    "type": "snapshot",
                    "cs": self.cross_seq,
                    "data": {
                        "symbol": sid,
                        "lastPrice": num(px),
                        "highPrice24h": num(px),
                        "lowPrice24h": num(px),
                        "prevPrice24h": num(px),
                        "volume24h": "0",
                        "turnover24h": "0",
                        "price24hPcnt": "0",
                        "usdIndexPrice": num(px),
                    },
                },
            )
        return bool(bids or asks)

    def skip_book_updates(self, symbol: str, count: int = 1) -> None:
        self._skip[symbol] = self._skip.get(symbol, 0) + count
