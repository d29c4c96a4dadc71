"""Mid-price changes (docs/features.md "Sequential": `log_return`, `mid_velocity`).

log_return_n = ln(mid_n / mid_{n−1}); mid_velocity_n = (mid_n − mid_{n−1}) / (ts_n − ts_{n−1}) in price
per second (NULL if Δt = 0). mid = (Pb^1 + Pa^1)/2, NaN when a side is empty. Both are NULL (NaN) at
the first row of a segment and where either mid is missing (log_return also where a mid is ≤ 0).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def mid_prices(
    bid_px: np.ndarray, bid_off: np.ndarray, ask_px: np.ndarray, ask_off: np.ndarray
) -> np.ndarray:
    n = bid_off.shape[0] - 1
    mid = np.full(n, np.nan)
    for i in range(n):
        if bid_off[i + 1] > bid_off[i] and ask_off[i + 1] > ask_off[i]:
            mid[i] = (bid_px[bid_off[i]] + ask_px[ask_off[i]]) / 2.0
    return mid


@njit(cache=True)
def mid_returns(
    mid: np.ndarray, ts: np.ndarray, seg: np.ndarray, units_per_second: float
) -> tuple[np.ndarray, np.ndarray]:
    """(log_return, mid_velocity) per snapshot, NaN where NULL."""
    n = mid.shape[0]
    lr = np.full(n, np.nan)
    vel = np.full(n, np.nan)
    for i in range(1, n):
        if seg[i] != seg[i - 1]:
            continue
        a = mid[i - 1]
        b = mid[i]
        if np.isnan(a) or np.isnan(b):
            continue
        if a > 0.0 and b > 0.0:
            lr[i] = np.log(b / a)
        dt = ts[i] - ts[i - 1]
        if dt > 0:
            vel[i] = (b - a) / (dt / units_per_second)
    return lr, vel


@njit(cache=True)
def touch(px: np.ndarray, off: np.ndarray) -> np.ndarray:
    """Best price of one side per snapshot (level 1), NaN when the side is empty."""
    n = off.shape[0] - 1
    out = np.full(n, np.nan)
    for i in range(n):
        if off[i + 1] > off[i]:
            out[i] = px[off[i]]
    return out
