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
def _prefixes(sz: np.ndarray, lo: int, n: int, cum: np.ndarray) -> None:
    """cum[m − 1] = q_1 + … + q_m for m = 1..10, added left to right as the SQL's prefix sums: each is
    the previous one plus one term, so one running sum gives every prefix to the bit."""
    acc = _q(sz, lo, n, 1)
    cum[0] = acc
    for m in range(2, 11):
        acc = acc + _q(sz, lo, n, m)
        cum[m - 1] = acc


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
    cum: np.ndarray,
    dist: np.ndarray,
    acc: np.ndarray,
    increasing: bool,
) -> None:
    # `out` is column-major (feature, row): each feature is one contiguous column for Arrow.
    # `cum` holds this side's prefix sums (_prefixes); `dist` (≥ n) and `acc` (nb + 2) are scratch;
    # `increasing`: the edges strictly increase.
    # depth and concentration: list_sum / list_inner_product over every level (NULL for no levels)
    if n > 0:
        total = sz[lo]
        sq = 0.0 + sz[lo] * sz[lo]
        for k in range(lo + 1, lo + n):  # two independent sums in one loop, each in level order
            total = total + sz[k]
            sq = sq + sz[k] * sz[k]
        out[depth_col, row] = total
        t2 = total * total
        if t2 != 0.0 and t2 != np.inf:
            out[conc_col, row] = sq / t2
        elif total != 0.0 and np.isfinite(total):
            # ΣQ² under- or overflows (sizes near 1e-154 or 1e154): the same Herfindahl, each share
            # squared (a tiny-sized book divided by zero and failed the build)
            h = 0.0
            for k in range(lo, lo + n):
                h = h + (sz[k] / total) * (sz[k] / total)
            out[conc_col, row] = h
        else:
            out[conc_col, row] = NAN
    else:
        out[depth_col, row] = NAN
        out[conc_col, row] = NAN
    # vwap over levels 1..5: Σ coalesce(P·Q, 0) / Σ coalesce(Q, 0)
    q5 = cum[4]
    if q5 != 0.0:
        pq = px[lo] * sz[lo] if n >= 1 else 0.0
        for m in range(2, 6):
            pq = pq + (px[lo + m - 1] * sz[lo + m - 1] if m <= n else 0.0)
        out[vwap_col, row] = pq / q5
    else:
        out[vwap_col, row] = NAN
    nb = edges.shape[0] - 1
    if np.isnan(mid) or n == 0:
        for b in range(nb):
            bands[row, b] = NAN
        out[slope_col, row] = NAN
        return
    # Bands: the SQL sums sz·(1 or 0) over every level in order. Each level's distance is computed
    # once here, and a finite size outside a band is not added: its term is ±0, and adding ±0 leaves a
    # sum that starts at +0 unchanged (such a sum is never −0), so the sums are equal to the bit. A NaN
    # or inf size still adds sz·0 (NaN) to every band, as in the SQL.
    # With increasing edges a level lies in at most one band: band c − 1 for c the number of edges ≤ d
    # (counted without branches); acc[0] and acc[nb + 1] take the levels below and beyond every band.
    for b in range(nb + 2):
        acc[b] = 0.0
    for k in range(n):
        d = abs(px[lo + k] - mid) * 10000 / mid
        dist[k] = d
        q = sz[lo + k]
        if increasing and np.isfinite(q):
            c = 0
            for b in range(nb + 1):
                c += d >= edges[b]
            acc[c] = acc[c] + q
        else:
            for b in range(nb):
                acc[b + 1] = acc[b + 1] + q * (1.0 if (d >= edges[b] and d < edges[b + 1]) else 0.0)
    for b in range(nb):
        bands[row, b] = acc[b + 1]
    if n >= max_levels:  # truncated: a band the deepest stored level does not pass may continue
        last = dist[n - 1]
        for b in range(nb):
            if last < edges[b + 1]:
                bands[row, b] = NAN
    # OLS slope of cumulative size (y) on distance (x) over levels 1..min(10, n); every sum spelled
    # out over ten terms as the SQL does (a missing level adds 0)
    n10 = min(n, 10)
    sx = dist[0]
    for m in range(2, 11):
        sx = sx + (dist[m - 1] if m <= n else 0.0)
    mx = sx / n10
    sy = cum[0]
    for m in range(2, 11):
        sy = sy + (cum[m - 1] if m <= n10 else 0.0)
    my = sy / n10
    if n10 < 3:
        out[slope_col, row] = NAN
        return
    num = (dist[0] - mx) * (cum[0] - my)
    den = (dist[0] - mx) * (dist[0] - mx)
    for m in range(2, 11):
        if m <= n10:
            num = num + (dist[m - 1] - mx) * (cum[m - 1] - my)
            den = den + (dist[m - 1] - mx) * (dist[m - 1] - mx)
        else:
            num = num + 0.0
            den = den + 0.0
    out[slope_col, row] = num / den if den != 0.0 else NAN


# nogil: DuckDB calls the UDF from each of its threads, and the glue around this kernel holds the GIL
# (the Arrow conversions too); the kernel, most of the Python-side time, then overlaps another
# thread's conversions.
@njit(cache=True, nogil=True)
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
    """(scalars[len(SCALARS), n] column-major, bid band depths[n, bands], ask band depths[n, bands]);
    NaN = NULL."""
    rows = boff.shape[0] - 1
    nb = edges.shape[0] - 1
    out = np.empty((21, rows))
    bid_bands = np.empty((rows, nb))
    ask_bands = np.empty((rows, nb))
    # scratch, allocated once per call rather than per row and side
    bcum = np.empty(10)
    acum = np.empty(10)
    width = 1
    for r in range(rows):
        width = max(width, boff[r + 1] - boff[r], aoff[r + 1] - aoff[r])
    dist = np.empty(width)
    acc = np.empty(nb + 2)
    inc = True  # edges strictly increase (any band NaN edge makes this false)
    for b in range(nb):
        inc = inc and edges[b] < edges[b + 1]
    for r in range(rows):
        blo, bn = boff[r], boff[r + 1] - boff[r]
        alo, an = aoff[r], aoff[r + 1] - aoff[r]
        bb = bpx[blo] if bn > 0 else NAN
        ba = apx[alo] if an > 0 else NAN
        bq = bsz[blo] if bn > 0 else NAN
        aq = asz[alo] if an > 0 else NAN
        mid = (bb + ba) / 2
        spread = ba - bb
        out[0, r] = bb
        out[1, r] = ba
        out[2, r] = bq
        out[3, r] = aq
        out[4, r] = mid
        out[5, r] = spread
        out[6, r] = spread / mid * 10000
        s1 = bq + aq
        out[7, r] = (bb * aq + ba * bq) / s1 if (not np.isnan(s1) and s1 != 0.0) else NAN
        _prefixes(bsz, blo, bn, bcum)
        _prefixes(asz, alo, an, acum)
        for j, k in enumerate((1, 3, 5, 10)):
            if bn > 0 and an > 0:
                out[8 + j, r] = _ratio(bcum[k - 1], acum[k - 1])
            else:
                out[8 + j, r] = NAN
        _side(
            bpx, bsz, blo, bn, mid, max_levels, edges, out, r, 12, 15, 17, 19, bid_bands, bcum, dist, acc, inc
        )
        _side(
            apx, asz, alo, an, mid, max_levels, edges, out, r, 13, 16, 18, 20, ask_bands, acum, dist, acc, inc
        )
        out[14, r] = _ratio(out[12, r], out[13, r])
    return out, bid_bands, ask_bands
