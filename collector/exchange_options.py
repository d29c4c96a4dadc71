"""How the collector sets up a ccxt exchange: its constructor params, our options, the venue's own
(collector/venues.py), then `ingestion.exchange_options.<exchange id>` last so the user's win: a
testnet (sandbox), other endpoints (urls), ccxt options such as defaultType, a proxy or timeout.
"""

from __future__ import annotations

from typing import Any

from daedalus.errors import ConfigError


def _merge(into: dict, over: dict) -> None:
    """Merge `over` into `into` key by key (nested dicts merged, anything else replaced)."""
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            into[k] = dict(into[k])  # ccxt shares some url dicts between class and instance
            _merge(into[k], v)
        else:
            into[k] = v


def apply_exchange_options(exchange: Any, exchange_id: str, user: Any) -> None:
    """`ingestion.exchange_options.<id>` over what the venue set: sandbox first (it swaps the urls),
    then the user's urls and options, so an explicit url wins over the testnet's."""
    if user.sandbox:
        if not exchange.urls.get("test"):  # ccxt itself fails here with a TypeError
            raise ConfigError(
                f"ingestion.exchange_options.{exchange_id}.sandbox: ccxt knows no testnet of {exchange_id}"
            )
        try:
            exchange.set_sandbox_mode(True)
        except Exception as e:  # ccxt.NotSupported: the exchange has no testnet urls
            raise ConfigError(
                f"ingestion.exchange_options.{exchange_id}.sandbox: {type(e).__name__}: {e}"
            ) from None
    _merge(exchange.urls, user.urls)
    _merge(exchange.options, user.options)


def constructor_params(ingestion: Any, exchange_id: str) -> dict[str, Any]:
    """What the ccxt exchange class is built with: ours, then the user's `params` (timeout, proxies...)."""
    user = (getattr(ingestion, "exchange_options", None) or {}).get(exchange_id)
    return {"enableRateLimit": True, "newUpdates": True, **(user.params if user else {})}


def set_exchange_options(exchange: Any, exchange_id: str, venue_options: dict, ingestion: Any) -> None:
    # the trade cache: we never read it (each append is emitted), it only has to exist
    exchange.options["tradesLimit"] = ingestion.trade_cache_size
    exchange.options.update(venue_options)
    # ccxt retries a failed REST snapshot at once, up to 3 times, ignoring Retry-After; against a
    # 429 that is how an IP earns a 418 ban. One try: the failure reaches us and we wait as told.
    book_opts = dict(exchange.options.get("watchOrderBook") or {})
    book_opts["maxRetries"] = 1
    exchange.options["watchOrderBook"] = book_opts
    user = (getattr(ingestion, "exchange_options", None) or {}).get(exchange_id)
    if user is not None:
        apply_exchange_options(exchange, exchange_id, user)


def spot_market(symbol: str, market_id: str) -> dict[str, Any]:
    """The fields every ccxt spot market carries, for `exchange.set_markets` without a REST market
    load; callers add their venue's own (precision, info, fees). Limits are all unbounded."""
    base, quote = symbol.split("/", 1)
    unbounded = {"min": None, "max": None}
    return {
        "id": market_id,
        "symbol": symbol,
        "base": base,
        "quote": quote,
        "baseId": base,
        "quoteId": quote,
        "settle": None,
        "settleId": None,
        "type": "spot",
        "spot": True,
        "margin": False,
        "swap": False,
        "future": False,
        "option": False,
        "active": True,
        "contract": False,
        "linear": None,
        "inverse": None,
        "contractSize": None,
        "limits": {k: dict(unbounded) for k in ("amount", "price", "cost", "leverage")},
    }
