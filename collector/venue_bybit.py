"""Bybit v5 public WebSocket (`wss://stream.bybit.com/v5/public/spot`): `orderbook.50`, `publicTrade`,
`tickers`.

Sample `orderbook.50.BTCUSDT` delta (the first frame after a subscribe is `"type": "snapshot"`)::

    {"topic": "orderbook.50.BTCUSDT", "type": "delta", "ts": 1704067200123,
     "data": {"s": "BTCUSDT", "b": [["42000.1", "0.5"]], "a": [["42000.5", "0"]],
              "u": 177400, "seq": 7961638724},
     "cts": 1704067200120}

Bronze `book_updates` ids: first = last = `u`, no prev.
Rules: `u` is the update id of the topic, one more per delta; a snapshot (also `u` = 1 after a service
restart) replaces the book. ccxt 4.5 checks none of this: we check `u` before ccxt applies a delta,
and on a break drop the book, skip the symbol's deltas, unsubscribe and subscribe again (Bybit sends a
snapshot on subscribe). `seq` is a cross sequence across depths, not checked. Quirks: spot depths are
1, 50, 200, 1000; ccxt tells spot from contract sockets by "spot" in the url.
"""

from __future__ import annotations

from typing import Any, ClassVar

from daedalus.collector.venue_ccxt import CcxtVenue

BOOK_DEPTH = 50


class Venue(CcxtVenue):
    # GET /v5/market/recent-trade serves only the most recent trades (spot: at most 60), no paging
    trade_history: ClassVar[str | None] = "last_n"
    trade_page_limit: ClassVar[int] = 60
    # `u` grows by one per delta of a topic; a snapshot resets it
    sync_rules: ClassVar[dict[str, str]] = dict.fromkeys(("spot", "linear", "inverse"), "increasing")
    sync_rule_docs: ClassVar[dict[str, str]] = dict.fromkeys(
        ("spot", "linear", "inverse"), "https://bybit-exchange.github.io/docs/v5/websocket/public/orderbook"
    )
    book_limit: ClassVar[int | None] = BOOK_DEPTH

    def control(self, message: Any) -> tuple[str, str] | None:
        if not isinstance(message, dict) or message.get("op") not in ("subscribe", "unsubscribe"):
            return None
        if message.get("success") is False:
            return ("error", f"{message.get('op')}: {message.get('ret_msg')}"[:500])
        return ("subscribe_ack", f"{message.get('op')} req_id={message.get('req_id')}")

    def book_frame(self, message: Any) -> tuple[str, str, str | None] | None:
        if not isinstance(message, dict) or not str(message.get("topic", "")).startswith("orderbook."):
            return None
        data = message.get("data") or {}
        mid, u = data.get("s"), data.get("u")
        if message.get("type") == "snapshot" or u == 1:
            if u is not None:
                self.last_seq[mid] = int(u)
            return (mid, "snapshot", None)
        last = self.last_seq.get(mid)
        if u is None or last is None:
            return (mid, "update", None)
        if int(u) != last + 1:
            self.last_seq.pop(mid, None)
            return (mid, "update", f"update id u={u} after u={last} (expected {last + 1})")
        self.last_seq[mid] = int(u)
        return (mid, "update", None)

    def book_update(self, message: Any) -> tuple[Any, Any, Any, Any] | None:
        if not isinstance(message, dict) or not str(message.get("topic", "")).startswith("orderbook."):
            return None
        u = (message.get("data") or {}).get("u")
        return (message.get("ts"), u, u, None)

    def book_hash(self, exchange: Any, symbol: str) -> str | None:
        return f"orderbook:{symbol}"

    async def resync(self, exchange: Any, symbol: str) -> None:
        # unsubscribe (ccxt forgets the book and the subscription) so the next watch subscribes anew
        await exchange.un_watch_order_book(symbol, {"limit": BOOK_DEPTH})
