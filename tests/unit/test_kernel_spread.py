"""Spread regime: the strict-below rule on tied books, the open window, static mode."""

from __future__ import annotations

import numpy as np

from daedalus.udfs.kernels.spread import (
    spread_percentile,
    spread_regime_dynamic,
    spread_regime_static,
)

US = 1_000_000


def test_ties_follow_strict_below_rule() -> None:
    # 95 % of rows at one tick (equal spread_bps), 5 % at two ticks, as on real books.
    n = 400
    spread = np.full(n, 1.0)
    spread[np.arange(n) % 20 == 7] = 2.0
    ts = np.arange(n, dtype=np.int64) * 100_000
    seg = np.zeros(n, np.int64)
    pct = spread_percentile(ts, seg, spread, np.int64(300 * US))
    regime = spread_regime_dynamic(pct, 0.2, 0.8)
    one_tick = spread == 1.0
    # nothing in the window is strictly below one tick → 0 → tight (a ≤-rule would say ~0.95 → wide)
    assert (pct[1:][one_tick[1:]] == 0.0).all()
    assert (regime[1:][one_tick[1:]] == 0).all()
    # a two-tick row: the share of earlier rows strictly below = the one-tick share of its window
    i = 207
    window = spread[:i]
    assert pct[i] == (window < 2.0).sum() / window.size
    assert regime[i] == 2
    assert np.isnan(pct[0]) and regime[0] == -1  # empty window → NULL


def test_window_is_open_at_both_ends_and_excludes_current_timestamp() -> None:
    ts = np.array([0, 1, 2, 2, 3], np.int64) * US
    spread = np.array([1.0, 2.0, 3.0, 0.5, 4.0])
    seg = np.zeros(5, np.int64)
    pct = spread_percentile(ts, seg, spread, np.int64(2 * US))
    # row 2 (t=2): window (0, 2) = {row 1: 2.0} → 1 of 1 below 3.0
    assert pct[2] == 1.0
    # row 3 (t=2, same ts): same window, 0.5 has nothing below
    assert pct[3] == 0.0
    # row 4 (t=3): window (1, 3) = rows 2, 3 → {3.0, 0.5} both below 4.0
    assert pct[4] == 1.0
    assert np.isnan(pct[0])


def test_static_mode_threshold() -> None:
    spread = np.array([0.01, 0.02, np.nan])
    mid = np.array([100.0, 100.0, 100.0])
    regime = spread_regime_static(spread, mid, 0.0001)
    assert regime.tolist() == [0, 1, -1]
