"""Trailing window sums over (t − h, t] within one segment, exact to the bit across builds.

docs/features.md "Sequential": `ofi_sum_{h}s`, `mlofi_sum_{h}s`, `rv_{h}s`, `tfi_{h}s`, `trade_volume_{h}s`
and the sums behind `kyle_lambda`.

Why not a running sum (add the new row, subtract the row leaving)? Its rounding depends on every row
since the series began, so a partition built day by day would differ in the last bits from a full
build. Here every window sum depends only on the rows inside the window: events are cut into blocks
aligned to the epoch, block k = [k·h, (k+1)·h); a window (t − h, t] with K = ⌊t/h⌋ covers the tail of
block K−1 and the head of block K. Per event we keep P (sum from the start of its block-and-segment
up to it) and S (sum from it to the end of its block-and-segment); the window sum is S[lo] (if lo is
in block K−1) + P[hi] (if hi is in block K). Both only touch rows inside (t − h, t]. O(n) per horizon.

NaN values are NULL: they add 0 and are not counted; `counts` lets callers return NULL when no valid
value fell in the window. Events must be sorted by time with non-decreasing segment ids; queries
likewise. `q_hi[j]` is the last event index a query may include (its own row for snapshot series,
the last trade with ts ≤ t for trade series), −1 for none.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def window_sums(
    ev_ts: np.ndarray,
    ev_seg: np.ndarray,
    ev_val: np.ndarray,
    q_ts: np.ndarray,
    q_seg: np.ndarray,
    q_hi: np.ndarray,
    h: np.int64,
) -> tuple[np.ndarray, np.ndarray]:
    """(sums, counts of valid values), shape (k, queries), of the k value rows of `ev_val` (k, events)
    over events in (t − h, t] with the query's segment. One pass shares blocks and pointers; the
    work arrays are laid out event-major so each step touches one cache line for all k columns."""
    k = ev_val.shape[0]
    m = ev_ts.shape[0]
    nq = q_ts.shape[0]
    blk = np.empty(m, np.int64)
    for e in range(m):
        blk[e] = ev_ts[e] // h
    # joined[e]: event e continues the block-and-segment of event e − 1
    joined = np.zeros(m + 1, np.bool_)
    for e in range(1, m):
        joined[e] = ev_seg[e] == ev_seg[e - 1] and blk[e] == blk[e - 1]
    x = np.empty((m, k))
    cnt = np.empty((m, k), np.int64)
    for c in range(k):
        acc = 0
        for e in range(m):
            v = ev_val[c, e]
            if np.isnan(v):
                x[e, c] = 0.0
            else:
                x[e, c] = v
                acc += 1
            cnt[e, c] = acc
    pre = np.empty((m, k))
    suf = np.empty((m, k))
    for e in range(m):
        if joined[e]:
            for c in range(k):
                pre[e, c] = pre[e - 1, c] + x[e, c]
        else:
            for c in range(k):
                pre[e, c] = x[e, c]
    for e in range(m - 1, -1, -1):
        if e + 1 < m and joined[e + 1]:
            for c in range(k):
                suf[e, c] = x[e, c] + suf[e + 1, c]
        else:
            for c in range(k):
                suf[e, c] = x[e, c]
    sums = np.zeros((k, nq))
    counts = np.zeros((k, nq), np.int64)
    lo_t = 0
    lo_s = 0
    for j in range(nq):
        t = q_ts[j]
        s = q_seg[j]
        hi = q_hi[j]
        while lo_t < m and ev_ts[lo_t] <= t - h:
            lo_t += 1
        while lo_s < m and ev_seg[lo_s] < s:
            lo_s += 1
        lo = max(lo_t, lo_s)
        if hi < lo or ev_seg[hi] != s:
            continue
        big_k = t // h
        head = blk[lo] != big_k
        tail = blk[hi] == big_k
        for c in range(k):
            total = 0.0
            if head:
                total += suf[lo, c]
            if tail:
                total += pre[hi, c]
            sums[c, j] = total
            counts[c, j] = cnt[hi, c] - (cnt[lo - 1, c] if lo > 0 else 0)
    return sums, counts


@njit(cache=True)
def window_sum(
    ev_ts: np.ndarray,
    ev_seg: np.ndarray,
    ev_val: np.ndarray,
    q_ts: np.ndarray,
    q_seg: np.ndarray,
    q_hi: np.ndarray,
    h: np.int64,
) -> tuple[np.ndarray, np.ndarray]:
    """(sum, count of valid values) of events in (t − h, t] with the query's segment, per query."""
    vals = np.empty((1, ev_val.shape[0]))
    vals[0] = ev_val
    sums, counts = window_sums(ev_ts, ev_seg, vals, q_ts, q_seg, q_hi, h)
    return sums[0], counts[0]


@njit(cache=True)
def last_at_or_before(ev_ts: np.ndarray, q_ts: np.ndarray) -> np.ndarray:
    """Per query, the index of the last event with ts ≤ query ts (−1 if none). Both sorted."""
    m = ev_ts.shape[0]
    out = np.empty(q_ts.shape[0], np.int64)
    k = -1
    for j in range(q_ts.shape[0]):
        while k + 1 < m and ev_ts[k + 1] <= q_ts[j]:
            k += 1
        out[j] = k
    return out


@njit(cache=True)
def flow_between_snapshots(trade_ts: np.ndarray, trade_signed: np.ndarray, snap_ts: np.ndarray) -> np.ndarray:
    """q_n = Σ signed size of trades with ts in (ts_{n−1}, ts_n] (0 for the first snapshot: no interval)."""
    n = snap_ts.shape[0]
    m = trade_ts.shape[0]
    q = np.zeros(n)
    k = 0
    for i in range(n):
        if i == 0:
            while k < m and trade_ts[k] <= snap_ts[0]:
                k += 1
            continue
        acc = 0.0
        while k < m and trade_ts[k] <= snap_ts[i]:
            acc += trade_signed[k]
            k += 1
        q[i] = acc
    return q
