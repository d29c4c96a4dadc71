"""Series segmentation: where sequential state restarts (docs/features.md "Time": the break rule).

A snapshot starts a new segment when it is the first row of the series handed to the kernel, when
silver flags `break_before` (a bronze `events` row: disconnect, gap, resync, overflow ...), or when
the time since the previous snapshot exceeds `max_state_staleness_seconds`. Every book-derived kernel
reads the segment id instead of re-deriving the rule, so those features restart at the same rows.
Trade windows follow the trades series' own breaks instead (series.py), not these segments.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def segment_ids(ts: np.ndarray, break_before: np.ndarray, staleness: np.int64) -> np.ndarray:
    """seg_n = number of segment starts at or before n, minus one (so the first segment is 0).

    Start at n ⇔ n = 0, or break_before_n, or ts_n − ts_{n−1} > staleness (same time unit as ts).
    """
    n = ts.shape[0]
    seg = np.empty(n, np.int64)
    cur = -1
    for i in range(n):
        if i == 0 or break_before[i] or ts[i] - ts[i - 1] > staleness:
            cur += 1
        seg[i] = cur
    return seg


@njit(cache=True)
def segment_starts(seg: np.ndarray) -> np.ndarray:
    """True at the first row of every segment (the row whose sequential values are all NULL)."""
    n = seg.shape[0]
    out = np.empty(n, np.bool_)
    for i in range(n):
        out[i] = i == 0 or seg[i] != seg[i - 1]
    return out
