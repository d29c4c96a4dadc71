"""ccxt.pro venues: one small module per exchange whose frames or rules need saying (cryptofeed's habit).

A venue module (collector/venue_<exchange id>.py) defines a `Venue` subclass of `CcxtVenue` (channel
methods and params, book depth, ccxt options, connection limits, its sequence/checksum rule, its
control frames, its quirks) and a sample message in its docstring. Any other ccxt.pro exchange gets
the defaults: ccxt's own parsing and ccxt's own sequence checks, generic capture
(collector/ccxt_capture.py), nothing extra.
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

# exchange id -> venue module (collector/venue_<name>.py); ccxt's other ids of a family (binanceusdm,
# binancecoinm, myokx, bybiteu, ...) subclass the family's class and reach its module (`module_name`);
# other ids get the defaults
_MODULES = {"binance": "binance", "binanceus": "binance", "okx": "okx", "bybit": "bybit", "kraken": "kraken"}

# Book sync rules (docs/contracts.md "Sync rules"; the build applies the one bronze names per row):
# contiguous = each diff's first id is the previous last id + 1; prev_chain = each diff names the
# previous last id; increasing = the last id grows; none = no ids (a checksum guards the book).
SYNC_RULES = ("contiguous", "prev_chain", "increasing", "none")


class CcxtVenue:
    """How the ccxt collector uses one exchange. Defaults suit most ccxt.pro exchanges."""

    # ccxt.pro `has` keys that serve a channel, best first: a multi-symbol call if the exchange has one
    channel_methods: ClassVar[dict[str, tuple[str, ...]]] = {
        "ticker": ("watchTickers", "watchTicker"),
        "trades": ("watchTradesForSymbols", "watchTrades"),
        "orderbook": ("watchOrderBook",),
    }
    # params passed to the watch call per channel
    channel_params: ClassVar[dict[str, dict[str, Any]]] = {}
    # depth requested for the order book; None = the exchange default. Never the bronze level count:
    # ccxt truncates its stored book to `limit` on every return.
    book_limit: ClassVar[int | None] = None
    # extra ccxt options
    options: ClassVar[dict[str, Any]] = {}
    # text frames that are not JSON and not an error (OKX answers "ping" with "pong")
    text_frames: ClassVar[tuple[str, ...]] = ()
    # the venue drops every connection at this age (Binance: 24 h); the collector reconnects before
    max_connection_hours: ClassVar[float | None] = None
    # the venue streams book deltas (ccxt keeps its book from them): `book_updates` serves the book.
    # False: every message is a whole book, so the top-N `orderbook` channel is collected instead
    book_deltas: ClassVar[bool] = True
    # the book feed updates every level of the venue's book (Binance's diff stream), so ccxt's depth
    # limit is not applied: trimming would drop levels the feed still updates
    full_depth_feed: ClassVar[bool] = False

    # the sync rule the venue documents for its book feed, per market type (spot / linear / inverse),
    # and the page it comes from; a type not named has no declared rule (bronze `sync_rule` NULL)
    sync_rules: ClassVar[dict[str, str]] = {}
    sync_rule_docs: ClassVar[dict[str, str]] = {}

    # REST trade history (collector/heal.py, docs/contracts.md "Healing trade gaps"): 'id' = pages by
    # trade id and ids are contiguous (a gap can be closed exactly), 'time' = pages by time only,
    # 'last_n' = only the most recent `trade_page_limit` trades, None = no usable history
    trade_history: ClassVar[str | None] = None
    trade_page_limit: ClassVar[int] = 100
    # 'forward': a page holds the trades from an id on (Binance fromId); 'backward': those older
    # than an id (OKX after)
    trade_id_paging: ClassVar[str] = "forward"

    def trade_history_plan(self, exchange: Any) -> tuple[str | None, int]:
        """(mode, page limit) for this exchange object (a venue may need credentials for paging)."""
        return self.trade_history, self.trade_page_limit

    def trade_history_params(
        self, mode: str, from_id: int | None, since_ms: int | None = None
    ) -> dict[str, Any]:
        """Params for ccxt's `fetch_trades` in `mode` ('id': the page at id `from_id`; 'time': the
        trades after `since_ms`)."""
        return {}

    async def first_trade_id_at(self, exchange: Any, symbol: str, since_ms: int) -> int | None:
        """The id of the first trade at or after `since_ms` ('id' venues, for `daedalus backfill`)."""
        return None

    def __init__(self) -> None:
        self.last_seq: dict[str, int] = {}  # per market id, for venues whose rule we check ourselves

    def book_channels(self, channels: list[str]) -> tuple[bool, bool]:
        """(collect `orderbook`, collect `book_updates`) for the configured channels: one book channel
        by default, `orderbook` where the venue streams no deltas or where it is configured."""
        books, updates = "orderbook" in channels, "book_updates" in channels
        if updates and not self.book_deltas:
            return True, False
        return books, updates

    def sync_rule(self, market: Any) -> str | None:
        """The declared sync rule for a ccxt market (its type from ccxt's spot / linear / inverse)."""
        kind = market_type(market)
        return self.sync_rules.get(kind) if kind is not None else None

    def control(self, message: Any) -> tuple[str, str] | None:
        """A control frame: ("subscribe_ack" | "error" | "shutdown", detail), else None."""
        return None

    def book_frame(self, message: Any) -> tuple[str, str, str | None] | None:
        """For an order-book frame: (market id, "snapshot" | "update", sequence-break detail or None).
        Checked before ccxt handles the frame; None = not a book frame or nothing to check."""
        return None

    def book_update(self, message: Any) -> tuple[Any, Any, Any, Any] | None:
        """For an order-book frame: (exchange time in ms, first, last, prev update id), each None
        where the venue gives none; bronze `book_updates` keeps them. Called on every frame."""
        return None

    # "module.Class" of the ccxt.pro class whose handle_message `direct_handler` stands in for
    # (collector/ccxt_shortcuts.py); None = every frame goes through ccxt's handle_message
    direct_dispatch_of: ClassVar[str | None] = None

    def direct_handler(self, exchange: Any, message: Any) -> Any:
        """The ccxt handler (a bound method taking (client, message)) that ccxt's handle_message would
        call for this frame, unchanged, when the venue can tell it cheaply; else None."""
        return None

    def check_book(self, exchange: Any, symbol: str, book: Any, message: Any) -> str | None:
        """After ccxt applied a book frame: the checksum-break detail, or None."""
        return None

    def book_hash(self, exchange: Any, symbol: str) -> str | None:
        """ccxt's message hash of `watch_order_book(symbol)` (to reject it on a break we detect)."""
        return None

    async def resync(self, exchange: Any, symbol: str) -> None:
        """Arrange that the next `watch_order_book(symbol)` loads a fresh book (after a break).
        Default: nothing (ccxt reloads by itself, e.g. Binance's REST snapshot)."""


def market_type(market: Any) -> str | None:
    """ "spot" | "linear" | "inverse" from a ccxt market (margin markets trade the spot book)."""
    if not isinstance(market, dict):
        return None
    if market.get("spot") or market.get("type") in ("spot", "margin"):
        return "spot"
    if market.get("linear"):
        return "linear"
    if market.get("inverse"):
        return "inverse"
    return None


def module_name(exchange_id: str) -> str | None:
    """The venue module of an exchange id: its own, or its ccxt family's (a ccxt.pro class that
    subclasses a known exchange's class speaks that exchange's protocol: binanceusdm is a binance)."""
    name = _MODULES.get(exchange_id)
    if name is not None:
        return name
    try:
        import ccxt.pro as ccxtpro

        cls = getattr(ccxtpro, exchange_id, None) if exchange_id in ccxtpro.exchanges else None
    except ImportError:  # pragma: no cover - ccxt is a dependency
        return None
    for base in cls.__mro__[1:] if isinstance(cls, type) else ():
        if base.__name__ in _MODULES and base.__module__.startswith("ccxt.pro."):
            return _MODULES[base.__name__]
    return None


def venue_for(exchange_id: str) -> CcxtVenue:
    """A fresh venue object (it holds per-collector sequence state)."""
    name = module_name(exchange_id)
    if name is None:
        return CcxtVenue()
    return importlib.import_module(f"daedalus.collector.venue_{name}").Venue()


def tested_venues() -> tuple[str, ...]:
    return tuple(_MODULES)


def checksum_number(x: float) -> str:
    """A float as the venue's shortest decimal string ("41006.8", "0.5", "3"): the form OKX uses on
    the wire, recovered from ccxt's float (ccxt keeps no strings)."""
    s = repr(float(x))  # the shortest string that reads back as the same float
    if "e" in s or "E" in s:  # 1e-08: written out
        s = f"{x:.16f}".rstrip("0").rstrip(".")
    elif s.endswith(".0"):
        s = s[:-2]
    return s if s not in ("", "-0") else "0"
