"""A deterministic simulated market: several symbols, a limit order book per symbol, trade flow.

Seeded, so a demo or a test sees the same market every run. Each step of a symbol does one of:
- a marketable order: it walks the opposite side, one trade per level consumed (the levels it eats
  shrink or vanish, so the book and the trades stay consistent), and the mid drifts with the flow;
- a limit order joining or starting a level near the top;
- a cancel shrinking or removing a level.
Every step produces one book diff (absolute quantities, 0 removes a level, like Binance and
Coinbase) with consecutive update ids, and possibly trades. The fake exchanges render these events in
their own wire formats.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

DEFAULT_SYMBOLS: dict[str, float] = {"BTC/USDT": 60_000.0, "ETH/USDT": 3_000.0, "SOL/USDT": 150.0}


@dataclass(slots=True)
class BookDiff:
    symbol: str
    ts_ms: int
    first_id: int
    last_id: int
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]


@dataclass(slots=True)
class Trade:
    symbol: str
    ts_ms: int
    trade_id: int
    price: float
    qty: float
    buyer_is_maker: bool  # Binance's `m`: True means the seller was the aggressor


@dataclass
class SimBook:
    symbol: str
    tick: float
    bids: dict[float, float] = field(default_factory=dict)
    asks: dict[float, float] = field(default_factory=dict)
    update_id: int = 1_000_000

    def best_bid(self) -> float:
        return max(self.bids)

    def best_ask(self) -> float:
        return min(self.asks)

    def top(self, side: str, limit: int) -> list[tuple[float, float]]:
        book = self.bids if side == "bid" else self.asks
        prices = sorted(book, reverse=(side == "bid"))[:limit]
        return [(p, book[p]) for p in prices]


class SimulatedMarket:
    """Deterministic order books and trades for several symbols."""

    def __init__(
        self,
        symbols: dict[str, float] | None = None,
        seed: int = 7,
        depth: int = 60,
        start_ms: int = 1_723_161_600_000,
        step_ms: int = 10,
    ) -> None:
        self.rng = random.Random(seed)
        self.now_ms = start_ms
        self.step_ms = step_ms
        self.books: dict[str, SimBook] = {}
        # Ids grow with the simulated clock (1,000 per ms, far above the simulated trade rate), so two
        # runs into one lake never reuse an id: silver deduplicates trades on (exchange, symbol, id).
        # Per symbol and contiguous, as a venue numbers one market's trades (Binance, OKX): a gap in
        # them is exactly the trades missing (collector/heal.py); symbol k starts k·10^8 higher, so
        # the ids of one run stay unique across its symbols too.
        self.trade_ids: dict[str, int] = {}
        self.last_trade: dict[str, Trade] = {}
        for symbol, mid in (symbols or DEFAULT_SYMBOLS).items():
            tick = _tick_for(mid)
            book = SimBook(symbol, tick)
            for i in range(1, depth + 1):
                book.bids[_round(mid - i * tick, tick)] = self._size()
                book.asks[_round(mid + i * tick, tick)] = self._size()
            self.books[symbol] = book
            self.trade_ids[symbol] = start_ms * 1_000 + len(self.trade_ids) * 100_000_000

    @property
    def symbols(self) -> list[str]:
        return list(self.books)

    def _size(self) -> float:
        return round(self.rng.lognormvariate(-1.0, 1.0), 6) or 0.001

    def step(self) -> list[BookDiff | Trade]:
        """Advance the clock one step; every symbol moves once. Returns the events in order."""
        self.now_ms += self.step_ms
        out: list[BookDiff | Trade] = []
        for book in self.books.values():
            out.extend(self._step_symbol(book))
        return out

    def _step_symbol(self, book: SimBook) -> list[BookDiff | Trade]:
        r = self.rng.random()
        changed_bids: dict[float, float] = {}
        changed_asks: dict[float, float] = {}
        trades: list[Trade] = []
        if r < 0.25:
            trades = self._market_order(book, changed_bids, changed_asks)
        elif r < 0.75:
            side = "bid" if self.rng.random() < 0.5 else "ask"
            levels = book.bids if side == "bid" else book.asks
            best = book.best_bid() if side == "bid" else book.best_ask()
            spread_ticks = round((book.best_ask() - book.best_bid()) / book.tick)
            # inside the spread when it is wide, otherwise at or behind the top
            offset = -1 if spread_ticks > 1 and self.rng.random() < 0.3 else self.rng.randint(0, 8)
            price = _round(
                best - offset * book.tick if side == "bid" else best + offset * book.tick, book.tick
            )
            qty = round(levels.get(price, 0.0) + self._size(), 6)
            levels[price] = qty
            (changed_bids if side == "bid" else changed_asks)[price] = qty
        else:
            side = "bid" if self.rng.random() < 0.5 else "ask"
            levels = book.bids if side == "bid" else book.asks
            prices = sorted(levels, reverse=(side == "bid"))[1:12] or sorted(levels)
            price = self.rng.choice(prices)
            qty = round(levels[price] * self.rng.choice((0.0, 0.5)), 6)
            if qty <= 0 and len(levels) > 5:
                del levels[price]
                qty = 0.0
            else:
                qty = max(qty, 0.001)
                levels[price] = qty
            (changed_bids if side == "bid" else changed_asks)[price] = qty
        self._refill(book, changed_bids, changed_asks)
        first = book.update_id + 1
        book.update_id += 1 + len(trades)
        diff = BookDiff(
            book.symbol,
            self.now_ms,
            first,
            book.update_id,
            sorted(changed_bids.items(), reverse=True),
            sorted(changed_asks.items()),
        )
        return [*trades, diff]

    def _market_order(self, book: SimBook, bids: dict[float, float], asks: dict[float, float]) -> list[Trade]:
        buy = self.rng.random() < 0.5
        remaining = self._size() * 2
        levels = book.asks if buy else book.bids
        changed = asks if buy else bids
        trades: list[Trade] = []
        for price in sorted(levels, reverse=not buy):
            if remaining <= 1e-9 or len(levels) <= 5:
                break
            take = min(remaining, levels[price])
            remaining -= take
            left = round(levels[price] - take, 6)
            if left <= 0:
                del levels[price]
                left = 0.0
            else:
                levels[price] = left
            changed[price] = left
            trade_id = self.trade_ids[book.symbol] = self.trade_ids[book.symbol] + 1
            trade = Trade(book.symbol, self.now_ms, trade_id, price, round(take, 6), buyer_is_maker=not buy)
            trades.append(trade)
            self.last_trade[book.symbol] = trade
        return trades

    def _refill(self, book: SimBook, bids: dict[float, float], asks: dict[float, float]) -> None:
        """Keep both sides at least 20 levels deep so the book never empties."""
        while len(book.bids) < 20:
            p = _round(min(book.bids) - book.tick, book.tick)
            book.bids[p] = bids[p] = self._size()
        while len(book.asks) < 20:
            p = _round(max(book.asks) + book.tick, book.tick)
            book.asks[p] = asks[p] = self._size()


def _tick_for(mid: float) -> float:
    return 0.01 if mid >= 10 else 0.0001


def _round(price: float, tick: float) -> float:
    return round(round(price / tick) * tick, 8)
