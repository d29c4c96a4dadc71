"""Which ccxt WebSocket client serves a feed of the ccxt collector (collector/ccxt_collector.py): to
close that socket when the feed's session ends, and to find the other feeds it takes along."""

from __future__ import annotations

from typing import Any

_HASH_WORD = {"orderbook": "book", "trades": "trade", "ticker": "ticker"}


def feed_url(urls: dict[str, str], clients: dict[str, Any], channel: str, symbols: list[str]) -> str | None:
    """The url in `clients` serving (channel, symbols): the socket that last delivered a row of it
    (`urls`: "channel:symbol" -> url), else the one subscribed to it, else None."""
    for s in symbols:
        url = urls.get(f"{channel}:{s}")
        if url is not None and url in clients:
            return url
    # nothing delivered yet: find the socket by ccxt's subscription hashes, which name the
    # channel ("orderbook::BTC/USDT", "books:BTC/USDT", "trade@BTC/USD", "tickers") on every venue
    word = _HASH_WORD[channel]
    fallback = None
    for url, client in clients.items():
        for h in client.subscriptions:
            text = str(h).lower()
            if word not in text or text.startswith("unsubscribe"):
                continue
            if any(s.lower() in text for s in symbols):
                return url
            if "/" not in text:
                fallback = fallback or url
    return fallback
