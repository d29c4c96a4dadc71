"""The synthetic deep book (daedalus/devkit/synth_book.py): its deltas replay into the book it holds, and
depth and span stay about constant over a long run (a drifting deep end once reached negative prices)."""

from __future__ import annotations

import numpy as np

from daedalus.devkit.synth_book import BookSim


def test_long_run_keeps_depth_span_and_the_touch_and_deltas_replay() -> None:
    rng = np.random.default_rng(3)
    sim = BookSim(rng, 6_000_000, 6_000_001, depth=300)
    bt, bq, at, aq = sim.full()
    bids, asks = dict(zip(bt, bq, strict=True)), dict(zip(at, aq, strict=True))
    bid1 = 6_000_000
    sizes = []
    for _ in range(20_000):
        bid1 += int(rng.choice([-1, 0, 1], p=[0.05, 0.9, 0.05]))
        cb, ca = sim.update(bid1, bid1 + 1, int(rng.integers(10, 41)))
        sizes.append(len(cb) + len(ca))
        for book, changes in ((bids, cb), (asks, ca)):
            for tick, q in changes.items():
                if q == 0:
                    # a level made and removed within one update shows as a delete of an unseen
                    # level, as Binance's aggregated diffs do
                    book.pop(tick, None)
                else:
                    book[tick] = q
    bt, bq, at, aq = sim.full()
    assert dict(zip(bt, bq, strict=True)) == bids and dict(zip(at, aq, strict=True)) == asks
    assert bt[0] == bid1 and at[0] == bid1 + 1
    assert 290 <= len(bt) <= 302 and 290 <= len(at) <= 302  # the touch may add one or two
    assert bid1 - bt[-1] <= sim.span and at[-1] - bid1 - 1 <= sim.span
    assert 10 <= np.median(sizes) <= 45
