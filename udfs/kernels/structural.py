"""The per-snapshot structural features of docs/features.md "Per snapshot" (gold.orderbook_hf) in one
pass over each row's levels, replacing ~60 SQL list expressions (macros/orderbook.sql before issue 23).

Every value is computed with the same operations in the same order as that SQL, so the results are
equal to the bit: sums run level by level from the first term (DuckDB's list_sum and
list_inner_product add in list order, no compensation), missing levels add 0 where the SQL coalesced
them, and distances are abs(P − mid)·10000/mid. NaN stands for NULL in the outputs.

Levels arrive flattened (price, size per side, offsets[n]..offsets[n+1] the levels of row n, best
first). The band depths here are over the stored levels; gold.orderbook_hf takes silver's whole-book
band depths instead for rows rebuilt from book updates (full_book), in SQL.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Column order of the scalar outputs (the struct fields of daedalus_book_structural, in order).
SCALARS = (
    "best_bid",
    "best_ask",
    "bid_size_1",
    "ask_size_1",
    "mid",
    "spread",
    "spread_bps",
    "microprice",
    "imbalance_1",
    "imbalance_3",
    "imbalance_5",
    "imbalance_10",
    "bid_depth",
    "ask_depth",
    "depth_imbalance",
    "bid_vwap_5",
    "ask_vwap_5",
    "bid_concentration",
    "ask_concentration",
    "bid_slope",
    "ask_slope",
)
_COL = {name: i for i, name in enumerate(SCALARS)}
NAN = np.nan


@njit(cache=True, inline="always")
def _ratio(a: float, b: float) -> float:
    """(a − b)/(a + b); NULL when either is NULL or the sum is 0."""
    s = a + b
    if np.isnan(s) or s == 0.0:
        return NAN
    return (a - b) / s


@njit(cache=True, inline="always")
def _q(sz: np.ndarray, lo: int, n: int, m: int) -> float:
    """Size of level m (1-based) or 0 when the side has fewer levels (the SQL's coalesce(q_m, 0))."""
    return sz[lo + m - 1] if m <= n else 0.0


@njit(cache=True, inline="always")
def _prefix(sz: np.ndarray, lo: int, n: int, k: int) -> float:
    acc = _q(sz, lo, n, 1)
    for m in range(2, k + 1):
        acc = acc + _q(sz, lo, n, m)
    return acc


@njit(cache=True)
def _side(
    px: np.ndarray,
    sz: np.ndarray,
    lo: int,
    n: int,
    mid: float,
    max_levels: int,
    edges: np.ndarray,
    out: np.ndarray,
    row: int,
    depth_col: int,
    vwap_col: int,
    conc_col: int,
    slope_col: int,
    bands: np.ndarray,
) -> None:
    # depth and concentration: list_sum / list_inner_product over every level (NULL for no levels)
    if n > 0:
        total = sz[lo]
        for k in range(lo + 1, lo + n):
            total = total + sz[k]
        sq = 0.0 + sz[lo] * sz[lo]
        for k in range(lo + 1, lo + n):
            sq = sq + sz[k] * sz[k]
        out[row, depth_col] = total
        out[row, conc_col] = sq / (total * total) if total != 0.0 else NAN
    else:
        out[row, depth_col] = NAN
        out[row, conc_col] = NAN
    # vwap over levels 1..5: Σ coalesce(P·Q, 0) / Σ coalesce(Q, 0)
    q5 = _prefix(sz, lo, n, 5)
    if q5 != 0.0:
        pq = px[lo] * sz[lo] if n >= 1 else 0.0
        for m in range(2, 6):
            pq = pq + (px[lo + m - 1] * sz[lo + m - 1] if m <= n else 0.0)
        out[row, vwap_col] = pq / q5
    else:
        out[row, vwap_col] = NAN
    nb = edges.shape[0] - 1
    if np.isnan(mid) or n == 0:
        for b in range(nb):
            bands[row, b] = NAN
        out[row, slope_col] = NAN
        return
    last = abs(px[lo + n - 1] - mid) * 10000 / mid
    for b in range(nb):
        hi = edges[b + 1]
        if n >= max_levels and last < hi:
            bands[row, b] = NAN
            continue
        lo_e = edges[b]
        acc = 0.0
        for k in range(lo, lo + n):
            d = abs(px[k] - mid) * 10000 / mid
            acc = acc + sz[k] * (1.0 if (d >= lo_e and d < hi) else 0.0)
        bands[row, b] = acc
    # OLS slope of cumulative size (y) on distance (x) over levels 1..min(10, n); every sum spelled
    # out over ten terms as the SQL does (a missing level adds 0)
    n10 = min(n, 10)
    xs = np.empty(10)
    ys = np.empty(10)
    for m in range(1, 11):
        xs[m - 1] = abs(px[lo + m - 1] - mid) * 10000 / mid if m <= n else NAN
        ys[m - 1] = _prefix(sz, lo, n, m)
    sx = xs[0] if n >= 1 else 0.0
    for m in range(2, 11):
        sx = sx + (xs[m - 1] if m <= n else 0.0)
    mx = sx / n10
    sy = ys[0] if n10 >= 1 else 0.0
    for m in range(2, 11):
        sy = sy + (ys[m - 1] if m <= n10 else 0.0)
    my = sy / n10
    if n10 < 3:
        out[row, slope_col] = NAN
        return
    num = (xs[0] - mx) * (ys[0] - my)
    den = (xs[0] - mx) * (xs[0] - mx)
    for m in range(2, 11):
        if m <= n10:
            num = num + (xs[m - 1] - mx) * (ys[m - 1] - my)
            den = den + (xs[m - 1] - mx) * (xs[m - 1] - mx)
        else:
            num = num + 0.0
            den = den + 0.0
    out[row, slope_col] = num / den if den != 0.0 else NAN


@njit(cache=True)
def structural(
    bpx: np.ndarray,
    bsz: np.ndarray,
    boff: np.ndarray,
    apx: np.ndarray,
    asz: np.ndarray,
    aoff: np.ndarray,
    max_levels: int,
    edges: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scalars[n, len(SCALARS)], bid band depths[n, bands], ask band depths[n, bands]); NaN = NULL."""
    rows = boff.shape[0] - 1
    nb = edges.shape[0] - 1
    out = np.empty((rows, 21))
    bid_bands = np.empty((rows, nb))
    ask_bands = np.empty((rows, nb))
    for r in range(rows):
        blo, bn = boff[r], boff[r + 1] - boff[r]
        alo, an = aoff[r], aoff[r + 1] - aoff[r]
        bb = bpx[blo] if bn > 0 else NAN
        ba = apx[alo] if an > 0 else NAN
        bq = bsz[blo] if bn > 0 else NAN
        aq = asz[alo] if an > 0 else NAN
        mid = (bb + ba) / 2
        spread = ba - bb
        out[r, 0] = bb
        out[r, 1] = ba
        out[r, 2] = bq
        out[r, 3] = aq
        out[r, 4] = mid
        out[r, 5] = spread
        out[r, 6] = spread / mid * 10000
        s1 = bq + aq
        out[r, 7] = (bb * aq + ba * bq) / s1 if (not np.isnan(s1) and s1 != 0.0) else NAN
        for j, k in enumerate((1, 3, 5, 10)):
            if bn > 0 and an > 0:
                out[r, 8 + j] = _ratio(_prefix(bsz, blo, bn, k), _prefix(asz, alo, an, k))
            else:
                out[r, 8 + j] = NAN
        _side(bpx, bsz, blo, bn, mid, max_levels, edges, out, r, 12, 15, 17, 19, bid_bands)
        _side(apx, asz, alo, an, mid, max_levels, edges, out, r, 13, 16, 18, 20, ask_bands)
        out[r, 14] = _ratio(out[r, 12], out[r, 13])
    return out, bid_bands, ask_bands
