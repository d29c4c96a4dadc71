"""A deep synthetic order book that evolves by small updates, for `daedalus.devkit.synth` (book_updates).

Each side starts with `depth` levels whose spacing widens away from the touch (1 tick near it, ~1 %
of the price out at the 1,000th level, so the default bands up to 100 bps lie inside the book).
Every update follows the touch the snapshot generator walks (the best bid/ask of that instant) and
changes 10–40 more levels, most of them near the touch (ranks drawn from an exponential): a new size
(70 %), a delete (15 %) or a new level inside a gap (15 %); levels beyond the initial span from the
touch go and new ones fill gaps at random ranks, so depth and span stay about constant. What an
update changed is its `delta` row (absolute sizes, 0 = delete).

Prices are integer ticks; bids are kept as negated ticks so both sides are ascending best-first lists.
"""

from __future__ import annotations

import bisect

import numpy as np


class SideBook:
    """One side: `keys` ascending best-first (ticks for asks, −ticks for bids) and their sizes."""

    def __init__(self, sign: int) -> None:
        self.sign = sign
        self.keys: list[int] = []
        self.size: dict[int, float] = {}

    def set(self, tick: int, size: float, changes: dict[int, float]) -> None:
        k = self.sign * tick
        if size == 0:
            if k in self.size:
                del self.size[k]
                self.keys.pop(bisect.bisect_left(self.keys, k))
        else:
            if k not in self.size:
                bisect.insort(self.keys, k)
            self.size[k] = size
        changes[tick] = size

    def best(self) -> int | None:
        return self.sign * self.keys[0] if self.keys else None

    def tick_at(self, rank: int) -> int:
        return self.sign * self.keys[rank]


class BookSim:
    """The evolving book of one series; `update(bid1, ask1)` returns the changed levels per side."""

    def __init__(self, rng: np.random.Generator, bid1: int, ask1: int, depth: int = 1000) -> None:
        self.rng = rng
        self.depth = depth
        self.bids = SideBook(-1)
        self.asks = SideBook(1)
        gaps = 1 + np.arange(depth) // 8  # spacing widens with rank: ~63,000 ticks over 1,000 levels
        self.span = int(gaps.sum())
        sink: dict[int, float] = {}
        for side, start, sign in ((self.bids, bid1, -1), (self.asks, ask1, 1)):
            offsets = np.concatenate(([0], np.cumsum(gaps[:-1])))
            for off, q in zip(offsets, self._sizes(depth), strict=True):
                side.set(int(start + sign * off), q, sink)

    def _sizes(self, n: int) -> np.ndarray:
        return np.round(self.rng.lognormal(-1.0, 1.0, n), 5) + 0.00001

    def _touch(
        self,
        side: SideBook,
        other: SideBook,
        best: int,
        changes: dict[int, float],
        other_changes: dict[int, float],
    ) -> None:
        """Make `best` the best price of `side`: drop better levels of it and crossing levels of the other."""
        while side.keys and side.sign * side.keys[0] != best and side.keys[0] < side.sign * best:
            side.set(side.best(), 0.0, changes)  # type: ignore[arg-type]
        if best * side.sign not in side.size:
            side.set(best, float(self._sizes(1)[0]), changes)
        while other.keys and (other.best() - best) * other.sign <= 0:  # type: ignore[operator]
            other.set(other.best(), 0.0, other_changes)  # type: ignore[arg-type]

    def update(self, bid1: int, ask1: int, changed: int) -> tuple[dict[int, float], dict[int, float]]:
        cb: dict[int, float] = {}
        ca: dict[int, float] = {}
        self._touch(self.bids, self.asks, bid1, cb, ca)
        self._touch(self.asks, self.bids, ask1, ca, cb)
        rng = self.rng
        ranks = np.minimum(rng.exponential(40.0, changed).astype(np.int64) + 1, self.depth - 1)
        acts = rng.random(changed)
        sides = rng.random(changed) < 0.5
        sizes = self._sizes(changed)
        for r, act, is_bid, q in zip(
            ranks.tolist(), acts.tolist(), sides.tolist(), sizes.tolist(), strict=True
        ):
            side, ch = (self.bids, cb) if is_bid else (self.asks, ca)
            if r >= len(side.keys):
                continue
            tick = side.tick_at(r)
            if act < 0.70:
                side.set(tick, q, ch)
            elif act < 0.85:
                side.set(tick, 0.0, ch)
            else:
                nxt = side.tick_at(r + 1) if r + 1 < len(side.keys) else tick + side.sign * 2
                if abs(nxt - tick) > 1:
                    side.set(tick + side.sign, q, ch)
        for side, ch, touch in ((self.bids, cb, bid1), (self.asks, ca, ask1)):
            # depth and span stay about constant: levels drifting beyond the span go, and the book is
            # topped up inside a gap at a random rank (never by extending the far end, which would
            # walk the deep end away without bound)
            while side.keys and abs(side.tick_at(len(side.keys) - 1) - touch) > self.span:
                side.set(side.tick_at(len(side.keys) - 1), 0.0, ch)
            for _ in range(4 * self.depth):
                if len(side.keys) >= self.depth:
                    break
                r = int(rng.integers(0, len(side.keys) - 1))
                a, b = side.tick_at(r), side.tick_at(r + 1)
                if abs(b - a) > 1:
                    side.set((a + b) // 2, float(self._sizes(1)[0]), ch)
        return cb, ca

    def top(self, n: int) -> tuple[list[int], list[float], list[int], list[float]]:
        """Best-first ticks and sizes of the top n levels per side
        (bid ticks, bid sizes, ask ticks, ask sizes)."""
        bk = self.bids.keys[:n]
        ak = self.asks.keys[:n]
        return ([-k for k in bk], [self.bids.size[k] for k in bk], list(ak), [self.asks.size[k] for k in ak])

    def full(self) -> tuple[list[int], list[float], list[int], list[float]]:
        return self.top(len(self.bids.keys) + len(self.asks.keys))
