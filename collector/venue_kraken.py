"""Kraken spot WebSocket v2 (`wss://ws.kraken.com/v2`): `book`, `trade`, `ticker`.

Sample `book` update (the first frame after a subscribe is `"type": "snapshot"`)::

    {"channel": "book", "type": "update",
     "data": [{"symbol": "BTC/USD", "bids": [{"price": 60000.1, "qty": 0.0}],
               "asks": [{"price": 60000.5, "qty": 1.25}], "checksum": 2439117997,
               "timestamp": "2024-08-09T00:00:00.123456Z"}]}

Bronze `book_updates`: no update ids (NULL), the frame's `timestamp` as exchange time.
Rules: no sequence number; `checksum` is the unsigned CRC32 of the top 10 asks (best first) then top
10 bids, each level written as price and qty in the pair's precision with the "." and leading zeros
removed. ccxt has this check behind an option that is off (and fails on its float book), so we check
it on ccxt's book after each frame; on a mismatch we drop the book, skip the symbol's updates,
unsubscribe and subscribe again (Kraken sends a snapshot on subscribe). Quirks: numbers are JSON
numbers, not strings; the client truncates the book to the subscribed depth (10, 25, 100, 500, 1000);
ccxt paces WS sends by the REST rate limit unless told a cost.
"""

from __future__ import annotations

import zlib
from decimal import Decimal
from typing import Any, ClassVar

from daedalus.collector.venue_ccxt import CcxtVenue

BOOK_DEPTH = 25
CHECKSUM_LEVELS = 10


def decimals(tick: Any) -> int:
    """Decimal places of a tick size (0.1 -> 1, 1e-08 -> 8)."""
    exp = Decimal(str(tick)).normalize().as_tuple().exponent
    return max(0, -int(exp))


# (value, decimals) -> checksum text; few of the 20 levels change per update (see venue_okx)
_STRINGS: dict[tuple[Any, int], str] = {}


def iso_ms(text: str) -> int:
    """'2024-08-09T00:00:00.123456Z' -> ms since the epoch (UTC)."""
    from datetime import UTC, datetime

    main, _, frac = text.rstrip("Z").partition(".")
    secs = datetime.strptime(main[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    return int(secs) * 1000 + int((frac or "0")[:3].ljust(3, "0"))


def kraken_checksum(bids: list, asks: list, price_dp: int, qty_dp: int) -> int:
    cache = _STRINGS
    if len(cache) > 100_000:
        cache.clear()
    parts: list[str] = []
    for side in (asks, bids):
        for lvl in side[:CHECKSUM_LEVELS]:
            for key in ((lvl[0], price_dp), (lvl[1], qty_dp)):
                s = cache.get(key)
                if s is None:
                    s = cache[key] = f"{float(key[0]):.{key[1]}f}".replace(".", "").lstrip("0")
                parts.append(s)
    return zlib.crc32("".join(parts).encode())


class Venue(CcxtVenue):
    # GET /0/public/Trades pages by time (`since`, the nanosecond cursor Kraken returns as `last`),
    # 1000 a page; its trade_id numbers a pair's trades contiguously, so a gap is counted exactly
    trade_history: ClassVar[str | None] = "time"
    trade_page_limit: ClassVar[int] = 1000

    def trade_history_params(
        self, mode: str, from_id: int | None, since_ms: int | None = None
    ) -> dict[str, Any]:
        # ccxt sends `since` in whole seconds; the ns cursor pages within a second
        return {"since": str(since_ms * 1_000_000)} if since_ms is not None else {}

    # no update ids: the CRC32 checksum checked after every frame guards the book
    sync_rules: ClassVar[dict[str, str]] = {"spot": "none"}
    sync_rule_docs: ClassVar[dict[str, str]] = {"spot": "https://docs.kraken.com/api/docs/websocket-v2/book"}
    book_limit: ClassVar[int | None] = BOOK_DEPTH
    # ccxt throttles WebSocket sends with Kraken's REST rate limit (one per second): four feeds then
    # take 4 s to subscribe and a resync waits its turn. Kraken's WS takes subscribes far faster.
    options: ClassVar[dict[str, Any]] = {"ws": {"cost": 0.05}}

    def control(self, message: Any) -> tuple[str, str] | None:
        if not isinstance(message, dict) or message.get("method") not in ("subscribe", "unsubscribe"):
            return None
        if message.get("success") is False:
            return ("error", f"{message.get('method')}: {message.get('error')}"[:500])
        result = message.get("result") or {}
        return ("subscribe_ack", f"{message.get('method')} {result.get('channel')}:{result.get('symbol')}")

    def book_frame(self, message: Any) -> tuple[str, str, str | None] | None:
        if not isinstance(message, dict) or message.get("channel") != "book":
            return None
        data = message.get("data") or [{}]
        return (data[0].get("symbol"), "snapshot" if message.get("type") == "snapshot" else "update", None)

    def book_update(self, message: Any) -> tuple[Any, Any, Any, Any] | None:
        if not isinstance(message, dict) or message.get("channel") != "book":
            return None
        ts = (message.get("data") or [{}])[0].get("timestamp")
        return (iso_ms(ts) if isinstance(ts, str) else None, None, None, None)  # Kraken has no update ids

    def check_book(self, exchange: Any, symbol: str, book: Any, message: Any) -> str | None:
        data = message.get("data") or [{}]
        want = data[0].get("checksum")
        if want is None or book is None:
            return None
        precision = (exchange.markets or {}).get(symbol, {}).get("precision") or {}
        got = kraken_checksum(
            book["bids"],
            book["asks"],
            decimals(precision.get("price") or 1e-8),
            decimals(precision.get("amount") or 1e-8),
        )
        if got != int(want):
            return f"checksum mismatch: book gives {got}, Kraken sent {want}"
        return None

    def book_hash(self, exchange: Any, symbol: str) -> str | None:
        return f"orderbook@{symbol}"

    async def resync(self, exchange: Any, symbol: str) -> None:
        url = exchange.urls["api"]["ws"]["publicV2"]
        client = (exchange.clients or {}).get(url)
        if client is None:
            return
        client.subscriptions.pop(self.book_hash(exchange, symbol), None)
        exchange.orderbooks.pop(symbol, None)
        await client.send(
            {"method": "unsubscribe", "params": {"channel": "book", "symbol": [symbol], "depth": BOOK_DEPTH}}
        )
