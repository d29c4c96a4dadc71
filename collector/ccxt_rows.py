"""Bronze rows from ccxt's unified structures (trade, ticker, order book), the same for every exchange."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

try:
    import orjson

    def _json(obj: Any) -> str:
        return orjson.dumps(obj, default=str).decode()
except ImportError:  # pragma: no cover
    import json

    def _json(obj: Any) -> str:
        return json.dumps(obj, separators=(",", ":"), default=str)


SOURCE = "ccxt"


@dataclass(slots=True)
class MalformedFrame:
    """A text frame that looked like JSON and did not parse."""

    data: str
    error: str


def _ms_to_ns(ms: Any) -> int | None:
    return int(ms) * 1_000_000 if ms is not None else None


def trade_row(trade: dict, base: dict) -> dict:
    """Bronze `trades` columns from a ccxt unified trade (side = aggressor, as ccxt reports it)."""
    row = dict(base)
    row.update(
        timestamp=_ms_to_ns(trade.get("timestamp")),
        trade_id=None if trade.get("id") is None else str(trade["id"]),
        side=trade.get("side"),
        price=trade.get("price"),
        amount=trade.get("amount"),
        cost=trade.get("cost"),
        info_json=_json(trade.get("info")),
    )
    return row


_TICKER_FIELDS = {
    "bid": "bid",
    "ask": "ask",
    "bid_volume": "bidVolume",
    "ask_volume": "askVolume",
    "last": "last",
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "vwap": "vwap",
    "base_volume": "baseVolume",
    "quote_volume": "quoteVolume",
    "change": "change",
    "percentage": "percentage",
}


def ticker_row(ticker: dict, base: dict) -> dict:
    row = dict(base)
    row["timestamp"] = _ms_to_ns(ticker.get("timestamp"))
    for col, key in _TICKER_FIELDS.items():
        v = ticker.get(key)
        row[col] = float(v) if v is not None else None
    row["info_json"] = _json(ticker.get("info"))
    return row


def book_row(book: Any, levels: int, base: dict) -> dict:
    """Top-`levels` snapshot of a ccxt order book, best first, levels as {price, size} structs.

    Built as the schema's dicts here (copied: ccxt updates its level lists in place) because the
    sink converts dicts to Arrow fastest, and the sink's conversion is the pipeline's bottleneck.
    """
    row = dict(base)
    row["timestamp"] = _ms_to_ns(book.get("timestamp"))
    row["nonce"] = book.get("nonce")
    row["bids"] = [{"price": lvl[0], "size": lvl[1]} for lvl in book["bids"][:levels]]
    row["asks"] = [{"price": lvl[0], "size": lvl[1]} for lvl in book["asks"][:levels]]
    return row
