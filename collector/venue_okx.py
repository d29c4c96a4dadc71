"""OKX v5 public WebSocket (`wss://ws.okx.com:8443/ws/v5/public`): `books`, `trades`, `tickers`.

Sample `books` update (the first frame after a subscribe is `"action": "snapshot"`, prevSeqId -1)::

    {"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": "update",
     "data": [{"asks": [["41006.8", "0.60038921", "0", "1"]], "bids": [["41006.3", "0", "0", "0"]],
               "ts": "1704067200123", "checksum": -1200119424, "prevSeqId": 123456, "seqId": 123457}]}

Bronze `book_updates` ids: first = last = `seqId`, prev = `prevSeqId` (NULL on a snapshot).
Rules: each update's `prevSeqId` is the previous message's `seqId` (ccxt checks this and raises
InvalidNonce; it then unsubscribes and subscribes again on the next watch, which brings a snapshot).
`checksum` is the signed CRC32 of "bid1px:bid1sz:ask1px:ask1sz:..." over the top 25 levels, which
ccxt 4.5 does not verify: we do, on ccxt's book after each frame. ccxt keeps prices as floats, so the
strings are rebuilt in OKX's shortest decimal form (OKX sends no trailing zeros). Quirks: `books`
(400 levels) is the public depth; `books50-l2-tbt`/`books-l2-tbt` need VIP tiers; OKX sends the
text frame "pong" to the client's "ping".
"""

from __future__ import annotations

import zlib
from typing import Any, ClassVar

from daedalus.collector.venue_ccxt import CcxtVenue, checksum_number

CHECKSUM_LEVELS = 25


# float -> OKX string. Checked after every update, the top 50 levels are formatted each time but few
# change: formatting is most of the check's cost, a lookup is not. Cleared when it grows.
_STRINGS: dict[Any, str] = {}


def okx_checksum(bids: list, asks: list) -> int:
    """OKX's checksum over price/size strings (or floats, formatted as OKX does)."""
    cache = _STRINGS
    if len(cache) > 100_000:
        cache.clear()
    get = cache.get
    parts: list[str] = []
    add = parts.append
    nb, na = len(bids), len(asks)
    for i in range(min(CHECKSUM_LEVELS, max(nb, na))):
        if i < nb:
            p, q = bids[i][0], bids[i][1]
            add(get(p) or _remember(p))
            add(get(q) or _remember(q))
        if i < na:
            p, q = asks[i][0], asks[i][1]
            add(get(p) or _remember(p))
            add(get(q) or _remember(q))
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def _remember(x: Any) -> str:
    s = _STRINGS[x] = x if isinstance(x, str) else checksum_number(x)
    return s


class Venue(CcxtVenue):
    # GET /api/v5/market/history-trades, type 1: pages back by tradeId (`after` = older than), newest
    # first, 100 a page; spot tradeIds number one instrument's trades contiguously
    trade_history: ClassVar[str | None] = "id"
    trade_page_limit: ClassVar[int] = 100
    trade_id_paging: ClassVar[str] = "backward"

    def trade_history_params(
        self, mode: str, from_id: int | None, since_ms: int | None = None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"method": "publicGetMarketHistoryTrades", "type": "1"}
        if from_id is not None:
            params["after"] = str(from_id)
        return params

    # each update's prevSeqId is the previous message's seqId (right after the snapshot too)
    sync_rules: ClassVar[dict[str, str]] = dict.fromkeys(("spot", "linear", "inverse"), "prev_chain")
    sync_rule_docs: ClassVar[dict[str, str]] = dict.fromkeys(
        ("spot", "linear", "inverse"),
        "https://www.okx.com/docs-v5/en/#order-book-trading-market-data-ws-order-book-channel",
    )
    text_frames: ClassVar[tuple[str, ...]] = ("pong",)

    def control(self, message: Any) -> tuple[str, str] | None:
        if not isinstance(message, dict) or "event" not in message:
            return None
        event = message["event"]
        if event in ("subscribe", "unsubscribe"):
            arg = message.get("arg") or {}
            return ("subscribe_ack", f"{event} {arg.get('channel')}:{arg.get('instId')}")
        if event == "error":
            return ("error", f"{message.get('code')}: {message.get('msg')}"[:500])
        return None

    def book_frame(self, message: Any) -> tuple[str, str, str | None] | None:
        # a (un)subscribe ack names the channel too, but is no book message: ccxt must see it (after a
        # checksum break it completes ccxt's unsubscribe, which then subscribes again)
        if not isinstance(message, dict) or "event" in message:
            return None
        arg = message.get("arg")
        if not isinstance(arg, dict) or not str(arg.get("channel", "")).startswith("books"):
            return None
        return (arg.get("instId"), "snapshot" if message.get("action") == "snapshot" else "update", None)

    def book_update(self, message: Any) -> tuple[Any, Any, Any, Any] | None:
        if not isinstance(message, dict) or "action" not in message or "event" in message:
            return None
        data = message.get("data") or []
        last = data[-1] if data and isinstance(data[-1], dict) else {}
        ts, seq, prev = last.get("ts"), last.get("seqId"), last.get("prevSeqId")
        return (
            int(ts) if ts is not None else None,
            seq,
            seq,
            prev if prev is not None and prev >= 0 else None,
        )  # a snapshot's prevSeqId is -1

    def check_book(self, exchange: Any, symbol: str, book: Any, message: Any) -> str | None:
        data = message.get("data") or []
        want = data[-1].get("checksum") if data and isinstance(data[-1], dict) else None
        if want is None or book is None:
            return None
        got = okx_checksum(book["bids"], book["asks"])
        if got != int(want):
            return f"checksum mismatch: book gives {got}, OKX sent {want} (seqId {data[-1].get('seqId')})"
        return None

    def book_hash(self, exchange: Any, symbol: str) -> str | None:
        return f"{_depth(exchange)}:{symbol}"

    async def resync(self, exchange: Any, symbol: str) -> None:
        # ccxt's own path after a seqId gap: mark the channel; the next watch unsubscribes and
        # subscribes again, and OKX answers the subscribe with a snapshot
        url = exchange.get_url(_depth(exchange), "public")
        client = (exchange.clients or {}).get(url)
        if client is not None:
            client.subscriptions[f"{_depth(exchange)}:{symbol}"] = "resync"


def _depth(exchange: Any) -> str:
    opts = exchange.options.get("watchOrderBook") or {}
    return opts.get("depth", "books") if isinstance(opts, dict) else "books"
