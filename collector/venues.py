"""Per-venue declarations: which ccxt.pro call serves each bronze channel, and each venue's limits.

A ccxt.pro venue is a small module of its own (collector/venue_<id>.py); config checks fail fast
against them with one line naming the exchange, symbol or channel.
"""

from __future__ import annotations

from typing import Any

from daedalus.collector.venue_ccxt import CcxtVenue, venue_for
from daedalus.errors import ConfigError, ExchangeError

BRONZE_DATA_CHANNELS = ("ticker", "trades", "orderbook", "book_updates")


def ccxt_venue(exchange_id: str) -> CcxtVenue:
    """The venue module's rules for an exchange (collector/venue_<id>.py), or the defaults."""
    return venue_for(exchange_id)


def ccxt_exchange_class(exchange_id: str) -> type:
    """The ccxt.pro class for an exchange id, or ExchangeError naming the key and the allowed ids."""
    import ccxt.pro as ccxtpro

    if exchange_id not in ccxtpro.exchanges:
        close = [e for e in ccxtpro.exchanges if e.startswith(exchange_id[:4])][:5]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ExchangeError(
            f"ingestion.exchanges: unknown ccxt.pro exchange '{exchange_id}'{hint}; "
            "see `python -c 'import ccxt.pro; print(ccxt.pro.exchanges)'`"
        )
    return getattr(ccxtpro, exchange_id)


def pick_method(exchange: Any, exchange_id: str, channel: str) -> str:
    """The ccxt method name (snake_case) serving `channel` on this exchange, or ExchangeError."""
    if channel not in BRONZE_DATA_CHANNELS:
        raise ConfigError(
            f"ingestion.channels: unknown channel '{channel}'; allowed: {', '.join(BRONZE_DATA_CHANNELS)}"
        )
    venue = ccxt_venue(exchange_id)
    methods = venue.channel_methods["orderbook" if channel == "book_updates" else channel]  # one book watch
    for has_key in methods:
        if exchange.has.get(has_key):
            return _snake(has_key)
    raise ExchangeError(
        f"ingestion.channels: exchange '{exchange_id}' has no WebSocket {channel} stream "
        f"(ccxt.pro has none of {', '.join(methods)})"
    )


def check_symbols(exchange: Any, exchange_id: str, symbols: list[str]) -> None:
    """Every symbol must be a market of the exchange (markets loaded or set)."""
    markets = exchange.markets or {}
    for s in symbols:
        if s not in markets:
            raise ExchangeError(f"ingestion.symbols: '{s}' is not a market of {exchange_id}")


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


# ---- Coinbase Advanced Trade ----

COINBASE_CHANNELS = {"orderbook": "level2", "trades": "market_trades", "ticker": "ticker"}
COINBASE_WS_URL = "wss://advanced-trade-ws.coinbase.com"
# Coinbase closes a connection that has no subscription within 5 s, and sends heartbeats once per
# second on the `heartbeats` channel: subscribing keeps quiet products' connections open.
COINBASE_HEARTBEAT_CHANNEL = "heartbeats"


def check_coinbase_channels(channels: list[str]) -> None:
    for c in channels:
        if c not in ("level2", "market_trades", "ticker"):
            raise ExchangeError(
                f"ingestion.coinbase.channels: Coinbase Advanced Trade has no channel '{c}' "
                "(collected: level2, market_trades, ticker)"
            )
