"""Binance spot, binance.us, USD-M and COIN-M futures (ccxt ids binance, binanceus, binanceusdm,
binancecoinm): ccxt syncs the book itself (REST snapshot + `U`/`u` diffs).

Sample diff on `btcusdt@depth@100ms`::

    {"e": "depthUpdate", "E": 1723161600123, "s": "BTCUSDT", "U": 157, "u": 160,
     "b": [["60000.10", "0.5"]], "a": [["60000.20", "0"]]}

Bronze `book_updates` ids: first/last = `U`/`u`, prev = `pu` (futures only). The diff stream
updates every level of the book, so the book is kept at full depth (not trimmed to the 1000-level
REST snapshot). Rules (`sync_rules`): spot `contiguous` (`U` = previous `u` + 1), futures `prev_chain`
(`pu` = previous `u`); ccxt checks both, raises InvalidNonce on a break and re-fetches the REST
snapshot on the next watch. Quirks: the server closes every connection at 24 h
and announces maintenance with `{"e": "serverShutdown"}`; `watchTickers` defaults to miniTicker
(no bid/ask), so the full 24hrTicker stream is asked for.
"""

from __future__ import annotations

from typing import Any, ClassVar

from daedalus.collector.venue_ccxt import CcxtVenue

_SPOT_DOC = (
    "https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams"
    "#how-to-manage-a-local-order-book-correctly"
)
_FUTURES_DOC = (
    "https://developers.binance.com/docs/derivatives/{}/websocket-market-streams/"
    "How-to-manage-a-local-order-book-correctly"
)


# keys ccxt's binance.handle_message looks at before it dispatches on the event type `e`
_WRAPPERS = frozenset(("stream", "event", "data", "status", "error", "id"))


class Venue(CcxtVenue):
    # spot (and binance.us): U = previous u + 1; USD-M / COIN-M futures: pu = previous u
    sync_rules: ClassVar[dict[str, str]] = {
        "spot": "contiguous",
        "linear": "prev_chain",
        "inverse": "prev_chain",
    }
    sync_rule_docs: ClassVar[dict[str, str]] = {
        "spot": _SPOT_DOC,
        "linear": _FUTURES_DOC.format("usds-margined-futures"),
        "inverse": _FUTURES_DOC.format("coin-margined-futures"),
    }
    channel_params: ClassVar[dict[str, dict[str, Any]]] = {"ticker": {"name": "ticker"}}
    options: ClassVar[dict[str, Any]] = {"watchOrderBookLimit": 1000}
    max_connection_hours: ClassVar[float | None] = 24.0

    full_depth_feed: ClassVar[bool] = True
    # GET /api/v3/historicalTrades?fromId= pages by the same contiguous ids as the `@trade` stream
    # (aggTrades, ccxt's default, numbers aggregates instead), limit max 1000, and needs an API key
    # (ccxt refuses it without one); without a key, GET /api/v3/trades: the most recent 1000 only
    trade_history: ClassVar[str | None] = "id"
    trade_page_limit: ClassVar[int] = 1000

    def trade_history_plan(self, exchange: Any) -> tuple[str | None, int]:
        return ("id" if getattr(exchange, "apiKey", None) else "last_n"), 1000

    def trade_history_params(
        self, mode: str, from_id: int | None, since_ms: int | None = None
    ) -> dict[str, Any]:
        if mode != "id":
            return {"fetchTradesMethod": "publicGetTrades"}
        params: dict[str, Any] = {"fetchTradesMethod": "publicGetHistoricalTrades"}
        if from_id is not None:
            params["fromId"] = from_id
        return params

    async def first_trade_id_at(self, exchange: Any, symbol: str, since_ms: int) -> int | None:
        # aggTrades by startTime (ccxt's default fetch_trades: an hour from `since`) names the first
        # trade id of each aggregate (`f`)
        page = await exchange.fetch_trades(symbol, since_ms, 1, {"fetchTradesMethod": "publicGetAggTrades"})
        return int(page[0]["info"]["f"]) if page else None

    def book_update(self, message: Any) -> tuple[Any, Any, Any, Any] | None:
        # raw streams (what ccxt subscribes): the diff itself; `pu` only on USD-M futures
        if isinstance(message, dict) and message.get("e") == "depthUpdate":
            return (message.get("E"), message.get("U"), message.get("u"), message.get("pu"))
        return None

    direct_dispatch_of: ClassVar[str | None] = "ccxt.pro.binance.binance"

    def direct_handler(self, exchange: Any, message: Any) -> Any:
        # ccxt's binance.handle_message unwraps `stream`/`event`/`data`, checks `status`/`error`/`id`
        # and then hands a plain "depthUpdate" frame to handle_order_book as it is: a raw-stream diff
        # carries none of those keys
        if (
            type(message) is dict
            and message.get("e") == "depthUpdate"
            and message.keys().isdisjoint(_WRAPPERS)
        ):
            return exchange.handle_order_book
        return None

    def control(self, message: Any) -> tuple[str, str] | None:
        if not isinstance(message, dict):
            return None
        e = message.get("e")
        if e is not None:  # the common case, a raw-stream market message: one lookup
            return ("shutdown", "serverShutdown") if e == "serverShutdown" else None
        data = message.get("data", message) if "stream" in message else message
        if not isinstance(data, dict):
            return None
        if data.get("e") == "serverShutdown":
            return ("shutdown", "serverShutdown")
        if "e" not in data and "result" in data and "id" in data:
            return ("subscribe_ack", f"id={data['id']}")
        if "e" not in data and "error" in data:
            return ("error", str(data["error"])[:500])
        return None
