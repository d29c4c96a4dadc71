"""Healing for the native Coinbase collector: its trades gaps fetched over REST like the ccxt venues'.

collector/heal.py's TradeHealer does the work; this module gives it what a ccxt collector would: a
ccxt `coinbase` client for REST only (Get Public Market Trades, ccxt's rate limiter on), the venue's
paging ("window": the newest 1000 trades of a [start, end) window in whole seconds, as `daedalus
backfill` pages it), and the native collector's row shape (raw `side` as Coinbase sends it, raw trade
in `info_json`), so a healed row differs from a socket row only in its envelope and `source = 'rest'`.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from daedalus.collector.connection import Record, event_row
from daedalus.collector.exchange_options import spot_market
from daedalus.collector.heal import TradeHealer

EXCHANGE = "coinbase"
PAGE_LIMIT = 1000  # Get Public Market Trades: at most 1000 trades a request


def trade_columns(t: dict, time_ns: int | None) -> dict:
    """Bronze `trades` columns of a raw Advanced Trade trade (socket `market_trades` or REST ticker).
    `side` stays raw (it names the maker's order; silver.trades maps it to the aggressor)."""
    price, size = float(t["price"]), float(t["size"])
    return {
        "timestamp": time_ns,
        "trade_id": str(t.get("trade_id")),
        "side": t.get("side"),
        "price": price,
        "amount": size,
        "cost": price * size,
        "info_json": json.dumps(t, separators=(",", ":")),
    }


def healed_row(trade: dict, base: dict) -> dict:
    """A healed row from ccxt's parsed REST trade: the native shape, from the raw trade it parsed."""
    info = trade.get("info") or {}
    ms = trade.get("timestamp")
    return {**base, **trade_columns(info, None if ms is None else int(ms) * 1_000_000)}


class HistoryPlan:
    """The venue rules TradeHealer asks for (collector/venue_<id>.py's, for a native collector)."""

    trade_history = "window"
    trade_id_paging = None

    def trade_history_plan(self, exchange: Any) -> tuple[str, int]:
        return "window", PAGE_LIMIT

    def trade_history_params(self, mode: str, cursor: Any, since: int | None = None) -> dict:
        return {}


class CoinbaseRest:
    """The REST side of the native collector, shaped as TradeHealer's collector."""

    venue = HistoryPlan()
    exchange_id = EXCHANGE

    def __init__(self, products: list[str], emitter: Any, ws_url: str, default_ws_url: str) -> None:
        from daedalus.collector.venues import ccxt_exchange_class

        self.emitter = emitter
        self.exchange = ccxt_exchange_class(EXCHANGE)({"enableRateLimit": True})
        parts = urlsplit(ws_url)
        if ws_url != default_ws_url and not (parts.hostname or "").endswith("coinbase.com"):
            # an endpoint not Coinbase's (a proxy, the fake) serves REST on the same host
            scheme = "https" if parts.scheme == "wss" else "http"
            self.exchange.urls["api"]["rest"] = f"{scheme}://{parts.netloc}"
        # the configured products are the markets: no market load (a dozen REST calls) for a heal
        self.exchange.set_markets([_market(p) for p in products])

    def emit_event(self, event_type: str, **kw: Any) -> None:
        self.emitter.emit_nowait(
            Record(EXCHANGE, "events", event_row(event_type, exchange=EXCHANGE, conn_id="rest", seq=0, **kw))
        )

    async def close(self) -> None:
        await self.exchange.close()


def make_healer(products: list[str], emitter: Any, ws_url: str, default_ws_url: str, heal_seconds: float):
    """A TradeHealer over Coinbase's REST market trades, writing rows as the native collector does."""
    rest = CoinbaseRest(products, emitter, ws_url, default_ws_url)
    return TradeHealer(rest, heal_seconds, source=EXCHANGE, make_row=healed_row), rest


def _market(product: str) -> dict:
    base, quote = product.split("-", 1)
    market = spot_market(f"{base}/{quote}", product)
    market["precision"] = {"amount": None, "price": None}
    market["info"] = {"product_id": product}
    return market
