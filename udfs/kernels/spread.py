"""Spread regime (docs/features.md "Sequential": `spread_pctile`, `spread_regime`).

spread_pctile_t = share of `spread_bps` values of rows with ts in (t − w, t) — open at t, so the
current row and any row sharing its timestamp are excluded — of the current segment that are
**strictly below** the current value; NULL when that window holds no value or the current value is
NULL. Regime codes: 0 tight (pctile ≤ tight_pct), 2 wide (≥ wide_pct), 1 normal, −1 NULL.
Static mode (`use_dynamic_spread_regime: false`): tight if spread/mid ≤ threshold, else normal.

Ties matter on real books (most rows sit at one tick), so the count is exact: values are ranked once
(equal values share a rank) and a Fenwick tree over ranks holds the window; counts are integers, so
the result does not depend on where the build started.
"""

from __future__ import annotations

import numpy as np
from numba import njit

TIGHT = np.int8(0)
NORMAL = np.int8(1)
WIDE = np.int8(2)
NULL_REGIME = np.int8(-1)


@njit(cache=True)
def _dense_ranks(values: np.ndarray) -> np.ndarray:
    """1-based dense rank of each non-NaN value (equal values share a rank); 0 for NaN."""
    n = values.shape[0]
    ranks = np.zeros(n, np.int64)
    order = np.argsort(values)  # NaN sorts last
    rank = 0
    prev = np.nan
    for k in range(n):
        i = order[k]
        v = values[i]
        if np.isnan(v):
            break
        if rank == 0 or v != prev:
            rank += 1
            prev = v
        ranks[i] = rank
    return ranks


@njit(cache=True)
def _fenwick_add(tree: np.ndarray, pos: np.int64, delta: np.int64) -> None:
    size = tree.shape[0] - 1
    while pos <= size:
        tree[pos] += delta
        pos += pos & (-pos)


@njit(cache=True)
def _fenwick_prefix(tree: np.ndarray, pos: np.int64) -> np.int64:
    total = 0
    while pos > 0:
        total += tree[pos]
        pos -= pos & (-pos)
    return total


@njit(cache=True)
def spread_percentile(
    ts: np.ndarray, seg: np.ndarray, spread_bps: np.ndarray, window: np.int64
) -> np.ndarray:
    """spread_pctile per snapshot (NaN where NULL); window length in the unit of ts."""
    n = ts.shape[0]
    ranks = _dense_ranks(spread_bps)
    tree = np.zeros(n + 1, np.int64)
    out = np.full(n, np.nan)
    add = 0  # next row to enter the window
    rem = 0  # next row to leave it
    inside = 0
    for i in range(n):
        t = ts[i]
        while add < n and ts[add] < t:
            if ranks[add] > 0:
                _fenwick_add(tree, ranks[add], 1)
                inside += 1
            add += 1
        while rem < add and (ts[rem] <= t - window or seg[rem] < seg[i]):
            if ranks[rem] > 0:
                _fenwick_add(tree, ranks[rem], -1)
                inside -= 1
            rem += 1
        if ranks[i] == 0 or inside == 0:
            continue
        below = _fenwick_prefix(tree, ranks[i] - 1)
        out[i] = below / inside
    return out


@njit(cache=True)
def spread_regime_dynamic(pctile: np.ndarray, tight_pct: float, wide_pct: float) -> np.ndarray:
    n = pctile.shape[0]
    out = np.empty(n, np.int8)
    for i in range(n):
        p = pctile[i]
        if np.isnan(p):
            out[i] = NULL_REGIME
        elif p <= tight_pct:
            out[i] = TIGHT
        elif p >= wide_pct:
            out[i] = WIDE
        else:
            out[i] = NORMAL
    return out


@njit(cache=True)
def spread_regime_static(spread: np.ndarray, mid: np.ndarray, threshold: float) -> np.ndarray:
    n = spread.shape[0]
    out = np.empty(n, np.int8)
    for i in range(n):
        if np.isnan(spread[i]) or np.isnan(mid[i]) or mid[i] <= 0.0:
            out[i] = NULL_REGIME
        elif spread[i] / mid[i] <= threshold:
            out[i] = TIGHT
        else:
            out[i] = NORMAL
    return out
