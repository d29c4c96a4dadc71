"""A fake OKX v5 public WebSocket on loopback: `books` (snapshot + updates with seqId/prevSeqId and
CRC32 checksum), `trades`, `tickers`, as documented at https://www.okx.com/docs-v5/en/#websocket-api.

- `ws://HOST:PORT/ws/v5/public`; the client sends `{"op": "subscribe", "args": [{"channel": "books",
  "instId": "BTC-USDT"}]}` and gets `{"event": "subscribe", "arg": {...}, "connId": "..."}`; a `books`
  subscribe is answered with a snapshot (`"action": "snapshot"`, prevSeqId -1), then updates whose
  prevSeqId is the previous seqId; "ping" gets "pong"; unsubscribe works.
Faults: `skip_book_updates` (the server book moves, the frames are not sent: a seqId gap),
`corrupt_checksum` (the next update carries a wrong checksum), `drop_connections`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Any

from daedalus.devkit.simulator.market import BookDiff, SimulatedMarket, Trade
from daedalus.devkit.simulator.trade_history import TradeTape, okx_routes
from daedalus.devkit.simulator.wsfake import FakeVenue, Peer, market_structure, num, tick_of

BOOKS = "books"


def okx_id(symbol: str) -> str:
    return symbol.replace("/", "-")


class FakeOkx(FakeVenue):
    paths = ("/ws/v5/public",)
    depth = 400
    ticker_interval_ms = 100

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.seq: dict[str, int] = {}
        self._skip: dict[str, int] = {}
        self._corrupt: dict[str, int] = {}
        self._last_ticker: dict[str, int] = {}
        self._ts: dict[str, int] = {}
        self.tape = TradeTape()  # every trade published, served by /api/v5/market/history-trades

    def add_routes(self, app: Any) -> None:
        okx_routes(app, self.tape)

    def exchange_options(self) -> dict[str, Any]:
        return {"urls": {"api": {"ws": f"{self.ws_base}/ws/v5", "rest": self.base_url}}}

    def set_markets(
        self, exchange: Any, symbols: Iterable[str], market: SimulatedMarket | None = None
    ) -> None:
        exchange.set_markets(
            [
                market_structure(
                    s, okx_id(s), tick_of(s, market), {"info": {"instId": okx_id(s), "instType": "SPOT"}}
                )
                for s in symbols
            ]
        )

    # ---- requests ----
    async def on_request(self, peer: Peer, req: Any) -> None:
        if req == "ping":
            await self.send(peer, "pong")
            return
        if not isinstance(req, dict):
            await self.send(peer, {"event": "error", "code": "60012", "msg": f"Invalid request: {req}"})
            return
        op = req.get("op")
        for arg in req.get("args") or []:
            topic = f"{arg.get('channel')}:{arg.get('instId')}"
            if op == "subscribe":
                await self.send(peer, {"event": "subscribe", "arg": arg, "connId": "fake"})
                if arg.get("channel") == BOOKS:
                    await self._snapshot(peer, arg["instId"])
                await self.subscribed(peer, [topic])
            elif op == "unsubscribe":
                peer.topics.discard(topic)
                await self.send(peer, {"event": "unsubscribe", "arg": arg, "connId": "fake"})

    async def _snapshot(self, peer: Peer, inst_id: str) -> None:
        symbol = inst_id.replace("-", "/")
        book = self.books[symbol]
        bids, asks = book.top("bid"), book.top("ask")
        frame = {
            "arg": {"channel": BOOKS, "instId": inst_id},
            "action": "snapshot",
            "data": [
                {
                    "asks": [[num(p), num(q), "0", "1"] for p, q in asks],
                    "bids": [[num(p), num(q), "0", "1"] for p, q in bids],
                    "ts": str(self._ts.get(symbol, 0)),
                    "checksum": okx_checksum(_str(bids), _str(asks)),
                    "prevSeqId": -1,
                    "seqId": self.seq.setdefault(symbol, 1000),
                }
            ],
        }
        await self.send(peer, frame)
        if self.record:
            self.sent.setdefault(f"{BOOKS}:{inst_id}", []).append(frame)

    # ---- market ----
    async def publish_market_event(self, ev: BookDiff | Trade, market: SimulatedMarket) -> bool:
        """Publish one market event; True if a frame went out for it (a book diff outside the
        subscribed depth sends nothing)."""
        inst = okx_id(ev.symbol)
        self._ts[ev.symbol] = ev.ts_ms
        if isinstance(ev, Trade):
            self.tape.add(inst, ev)
            await self.publish(
                f"trades:{inst}",
                {
                    "arg": {"channel": "trades", "instId": inst},
                    "data": [
                        {
                            "instId": inst,
                            "tradeId": str(ev.trade_id),
                            "px": num(ev.price),
                            "sz": num(ev.qty),
                            "side": "sell" if ev.buyer_is_maker else "buy",
                            "ts": str(ev.ts_ms),
                            "count": "1",
                        }
                    ],
                },
            )
            return True
        book = self.books[ev.symbol]
        bids, asks = book.apply(ev)
        prev = self.seq.setdefault(ev.symbol, 1000)
        if bids or asks:
            self.seq[ev.symbol] = prev + 1
        if not (bids or asks):
            pass  # nothing changed inside the view: OKX sends nothing
        elif self._skip.get(ev.symbol):
            self._skip[ev.symbol] -= 1
            self.mark(f"{BOOKS}:{inst}", "skip")
        else:
            checksum = okx_checksum(_str(book.top("bid", 25)), _str(book.top("ask", 25)))
            if self._corrupt.get(ev.symbol):
                self._corrupt[ev.symbol] -= 1
                checksum += 1
                self.mark(f"{BOOKS}:{inst}", "corrupt")
            await self.publish(
                f"{BOOKS}:{inst}",
                {
                    "arg": {"channel": BOOKS, "instId": inst},
                    "action": "update",
                    "data": [
                        {
                            "asks": [[num(p), num(q), "0", "1"] for p, q in asks],
                            "bids": [[num(p), num(q), "0", "1"] for p, q in bids],
                            "ts": str(ev.ts_ms),
                            "checksum": checksum,
                            "prevSeqId": prev,
                            "seqId": prev + 1,
                        }
                    ],
                },
            )
        if ev.ts_ms - self._last_ticker.get(ev.symbol, 0) >= self.ticker_interval_ms:
            self._last_ticker[ev.symbol] = ev.ts_ms
            await self._ticker(ev.symbol, market, ev.ts_ms)
        return bool(bids or asks)

    async def _ticker(self, symbol: str, market: SimulatedMarket, ts_ms: int) -> None:
        book = self.books[symbol]
        (bp, bq), (ap, aq) = book.top("bid", 1)[0], book.top("ask", 1)[0]
        last = market.last_trade.get(symbol)
        px = last.price if last is not None else (bp + ap) / 2
        inst = okx_id(symbol)
        await self.publish(
            f"tickers:{inst}",
            {
                "arg": {"channel": "tickers", "instId": inst},
                "data": [
                    {
                        "instType": "SPOT",
                        "instId": inst,
                        "last": num(px),
                        "lastSz": num(last.qty if last else 0),
                        "askPx": num(ap),
                        "askSz": num(aq),
                        "bidPx": num(bp),
                        "bidSz": num(bq),
                        "open24h": num(px),
                        "high24h": num(px),
                        "low24h": num(px),
                        "volCcy24h": "0",
                        "vol24h": "0",
                        "sodUtc0": num(px),
                        "sodUtc8": num(px),
                        "ts": str(ts_ms),
                    }
                ],
            },
        )

    # ---- faults ----
    def skip_book_updates(self, symbol: str, count: int = 1) -> None:
        self._skip[symbol] = self._skip.get(symbol, 0) + count

    def corrupt_checksum(self, symbol: str, count: int = 1) -> None:
        self._corrupt[symbol] = self._corrupt.get(symbol, 0) + count


def okx_checksum(bids: list[list[str]], asks: list[list[str]]) -> int:
    """OKX's rule: "bid1px:bid1sz:ask1px:ask1sz:..." over 25 levels (a shorter side just ends), CRC32
    as a signed 32-bit integer."""
    parts: list[str] = []
    for i in range(25):
        if i < len(bids):
            parts += bids[i]
        if i < len(asks):
            parts += asks[i]
    crc = zlib.crc32(":".join(parts).encode())
    return crc - 2**32 if crc > 2**31 - 1 else crc


def _str(levels: list[tuple[float, float]]) -> list[list[str]]:
    return [[num(p), num(q)] for p, q in levels]
