"""Order-flow imbalance at the touch and across levels (docs/features.md "Sequential": `ofi`, `mlofi`).

Cont–Kukanov–Stoikov, applied to level m of consecutive snapshots n−1, n of one segment:

    e_n^m = 1{Pb_n ≥ Pb_{n−1}}·Qb_n − 1{Pb_n ≤ Pb_{n−1}}·Qb_{n−1}
          − 1{Pa_n ≤ Pa_{n−1}}·Qa_n + 1{Pa_n ≥ Pa_{n−1}}·Qa_{n−1}

`ofi` = e^1; `mlofi` = Σ_{m=1}^{L} exp(−α(m−1))·e^m. Prices compare exactly (tick multiples parsed
from decimal strings). A side's level m absent at n or n−1 contributes 0 to e^m. Both are NULL (NaN
here) at the first row of a segment, when either snapshot is crossed (crossed books are breaks for
OFI/MLOFI), or when level 1 of a side is absent at n or n−1 — so with L = 1, mlofi = ofi exactly.

Levels arrive flattened: side prices/sizes of all snapshots back to back, offsets[n]..offsets[n+1]
being snapshot n's levels, best first.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _side_term(p_now: float, q_now: float, p_prev: float, q_prev: float, bid: bool) -> float:
    if bid:
        return (q_now if p_now >= p_prev else 0.0) - (q_prev if p_now <= p_prev else 0.0)
    return -(q_now if p_now <= p_prev else 0.0) + (q_prev if p_now >= p_prev else 0.0)


@njit(cache=True)
def _pair(
    bid_px: np.ndarray,
    bid_sz: np.ndarray,
    b_now: int,
    nb_now: int,
    pbid_px: np.ndarray,
    pbid_sz: np.ndarray,
    b_prev: int,
    nb_prev: int,
    ask_px: np.ndarray,
    ask_sz: np.ndarray,
    a_now: int,
    na_now: int,
    pask_px: np.ndarray,
    pask_sz: np.ndarray,
    a_prev: int,
    na_prev: int,
    weights: np.ndarray,
) -> tuple[float, float]:
    """(e^1, Σ w_m e^m) of one book against its predecessor; levels start at the given offsets.
    NaN when level 1 of a side is absent in either book. The one place the OFI rule is applied."""
    if nb_now == 0 or nb_prev == 0 or na_now == 0 or na_prev == 0:
        return np.nan, np.nan
    total = 0.0
    first = 0.0
    for m in range(weights.shape[0]):
        e = 0.0
        if m < nb_now and m < nb_prev:
            e += _side_term(
                bid_px[b_now + m], bid_sz[b_now + m], pbid_px[b_prev + m], pbid_sz[b_prev + m], True
            )
        if m < na_now and m < na_prev:
            e += _side_term(
                ask_px[a_now + m], ask_sz[a_now + m], pask_px[a_prev + m], pask_sz[a_prev + m], False
            )
        if m == 0:
            first = e
        total += weights[m] * e
    return first, total


@njit(cache=True)
def ofi_mlofi(
    bid_px: np.ndarray,
    bid_sz: np.ndarray,
    bid_off: np.ndarray,
    ask_px: np.ndarray,
    ask_sz: np.ndarray,
    ask_off: np.ndarray,
    seg: np.ndarray,
    crossed: np.ndarray,
    levels: np.int64,
    alpha: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(ofi, mlofi) per snapshot of a whole series, NaN where NULL."""
    n = seg.shape[0]
    ofi = np.full(n, np.nan)
    mlofi = np.full(n, np.nan)
    weights = np.exp(-alpha * np.arange(levels).astype(np.float64))
    for i in range(1, n):
        if seg[i] != seg[i - 1] or crossed[i] or crossed[i - 1]:
            continue
        ofi[i], mlofi[i] = _pair(
            bid_px,
            bid_sz,
            bid_off[i],
            bid_off[i + 1] - bid_off[i],
            bid_px,
            bid_sz,
            bid_off[i - 1],
            bid_off[i] - bid_off[i - 1],
            ask_px,
            ask_sz,
            ask_off[i],
            ask_off[i + 1] - ask_off[i],
            ask_px,
            ask_sz,
            ask_off[i - 1],
            ask_off[i] - ask_off[i - 1],
            weights,
        )
    return ofi, mlofi


@njit(cache=True)
def ofi_pairs(
    bid_px: np.ndarray,
    bid_sz: np.ndarray,
    bid_off: np.ndarray,
    ask_px: np.ndarray,
    ask_sz: np.ndarray,
    ask_off: np.ndarray,
    pbid_px: np.ndarray,
    pbid_sz: np.ndarray,
    pbid_off: np.ndarray,
    pask_px: np.ndarray,
    pask_sz: np.ndarray,
    pask_off: np.ndarray,
    levels: np.int64,
    alpha: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(e^1, Σ w_m e^m) of row k's book against its predecessor's book given in the same row.

    Row-wise and stateless: each row carries both snapshots (the model pairs each row with its
    predecessor in (ts, seq) order), so any split of rows into vectors gives the same result.
    NaN when level 1 of a side is absent in either book; breaks and crossed books are applied by
    the series pipeline, which knows the segments.
    """
    n = bid_off.shape[0] - 1
    ofi = np.full(n, np.nan)
    mlofi = np.full(n, np.nan)
    weights = np.exp(-alpha * np.arange(levels).astype(np.float64))
    for i in range(n):
        ofi[i], mlofi[i] = _pair(
            bid_px,
            bid_sz,
            bid_off[i],
            bid_off[i + 1] - bid_off[i],
            pbid_px,
            pbid_sz,
            pbid_off[i],
            pbid_off[i + 1] - pbid_off[i],
            ask_px,
            ask_sz,
            ask_off[i],
            ask_off[i + 1] - ask_off[i],
            pask_px,
            pask_sz,
            pask_off[i],
            pask_off[i + 1] - pask_off[i],
            weights,
        )
    return ofi, mlofi
