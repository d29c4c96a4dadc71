"""VPIN by volume buckets (docs/features.md "Sequential": `vpin`).

Trades (or, in `bvc` mode, 1-minute bars) fill buckets of V base units in (ts, trade_id) order; a
trade larger than the room left is split exactly, the excess carrying into the next bucket(s). Each
bucket has buy volume V_B and sell volume V_S — by aggressor side (`buy_frac` 1 or 0), or by bulk
volume classification, V_B = V·Φ(Δp/σ). After each completed bucket,
    vpin = Σ |V_S − V_B| / Σ V   over the last n buckets (= Σ|V_S − V_B| / (n·V) when V is constant),
NULL (NaN) until n buckets exist. A bucket keeps the V it was opened with, so a day's new V (auto
mode) applies from the first bucket opened that day and the ratio stays exact across the change.

Every function takes its state as arguments and returns the new state, so a day's partition can
start where the previous one stopped (state carried by the `vpin_buckets` model).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# A split leaves a rounding residue of a few ulps; below this fraction of V it is not volume.
SPLIT_EPSILON = 1e-9


@njit(cache=True)
def fill_buckets(
    ts: np.ndarray,
    volume: np.ndarray,
    buy_frac: np.ndarray,
    bucket_v: float,
    fill_buy: float,
    fill_sell: float,
    new_v: float,
):
    """Fill buckets; returns (done_ts, done_v, done_buy, done_sell, bucket_v, fill_buy, fill_sell).

    `bucket_v` is the V of the bucket in progress (0: none open; the next one opens with `new_v`).
    A bucket completes at the ts of the trade (or bar) that fills it.
    """
    m = ts.shape[0]
    total = fill_buy + fill_sell
    for k in range(m):
        total += volume[k]
    smallest = new_v if bucket_v <= 0.0 else min(new_v, bucket_v)
    cap = int(total / smallest) + 2 if smallest > 0.0 else 0
    done_ts = np.empty(cap, np.int64)
    done_v = np.empty(cap)
    done_buy = np.empty(cap)
    done_sell = np.empty(cap)
    nd = 0
    for k in range(m):
        rem = volume[k]
        frac = buy_frac[k]
        while rem > 0.0:
            if bucket_v <= 0.0:
                bucket_v = new_v
                fill_buy = 0.0
                fill_sell = 0.0
            room = bucket_v - fill_buy - fill_sell
            if rem >= room - SPLIT_EPSILON * bucket_v:
                take = min(rem, room)
                fill_buy += take * frac
                fill_sell += take * (1.0 - frac)
                done_ts[nd] = ts[k]
                done_v[nd] = bucket_v
                done_buy[nd] = fill_buy
                done_sell[nd] = fill_sell
                nd += 1
                rem -= room
                if rem <= SPLIT_EPSILON * bucket_v:
                    rem = 0.0
                bucket_v = 0.0
                fill_buy = 0.0
                fill_sell = 0.0
            else:
                fill_buy += rem * frac
                fill_sell += rem * (1.0 - frac)
                rem = 0.0
    return done_ts[:nd], done_v[:nd], done_buy[:nd], done_sell[:nd], bucket_v, fill_buy, fill_sell


@njit(cache=True)
def rolling_vpin(
    prev_imbalance: np.ndarray,
    prev_volume: np.ndarray,
    imbalance: np.ndarray,
    volume: np.ndarray,
    n: np.int64,
) -> np.ndarray:
    """VPIN after each new bucket given the last buckets before them (oldest first); NaN until n exist.

    Each value is summed oldest → newest over exactly its n buckets, so it does not depend on how
    the history was split between calls.
    """
    p = prev_imbalance.shape[0]
    k = imbalance.shape[0]
    all_imb = np.concatenate((prev_imbalance, imbalance))
    all_vol = np.concatenate((prev_volume, volume))
    out = np.full(k, np.nan)
    for j in range(k):
        end = p + j + 1
        if end < n:
            continue
        num = 0.0
        den = 0.0
        for b in range(end - n, end):
            num += all_imb[b]
            den += all_vol[b]
        out[j] = num / den
    return out


@njit(cache=True)
def _phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


@njit(cache=True)
def bvc_bars(
    ts: np.ndarray,
    price: np.ndarray,
    volume: np.ndarray,
    eligible: np.ndarray,
    bar_len: np.int64,
    last_close: float,
    prev_dp: np.ndarray,
    sigma_bars: np.int64,
):
    """Bulk volume classification on time bars [k·bar_len, (k+1)·bar_len).

    Per non-empty bar: Δp = close − previous bar's close (across calls via `last_close`, NaN if
    none), σ = sample std (ddof 1) of the previous `sigma_bars` Δp values (causal: the bar's own Δp is
    excluded), buy fraction Φ(Δp/σ) (Φ(±∞) when σ = 0 and Δp ≠ 0, ½ when both are 0). A bar enters
    the buckets at its end, with the volume of its `eligible` trades, only once σ exists.
    Returns (bar_end, bar_volume, buy_frac, last_close, dp_history (last sigma_bars Δp)).
    """
    m = ts.shape[0]
    hist = np.empty(prev_dp.shape[0] + m)
    nh = prev_dp.shape[0]
    hist[:nh] = prev_dp
    ends = np.empty(m, np.int64)
    vols = np.empty(m)
    fracs = np.empty(m)
    nb = 0
    k = 0
    while k < m:
        bar = ts[k] // bar_len
        vol = 0.0
        close = price[k]
        while k < m and ts[k] // bar_len == bar:
            if eligible[k]:
                vol += volume[k]
            close = price[k]
            k += 1
        if not math.isnan(last_close):
            dp = close - last_close
            if nh >= sigma_bars and vol > 0.0:
                mean = 0.0
                for b in range(nh - sigma_bars, nh):
                    mean += hist[b]
                mean /= sigma_bars
                ss = 0.0
                for b in range(nh - sigma_bars, nh):
                    ss += (hist[b] - mean) ** 2
                sigma = math.sqrt(ss / (sigma_bars - 1))
                if sigma > 0.0:
                    frac = _phi(dp / sigma)
                elif dp > 0.0:
                    frac = 1.0
                elif dp < 0.0:
                    frac = 0.0
                else:
                    frac = 0.5
                ends[nb] = (bar + 1) * bar_len
                vols[nb] = vol
                fracs[nb] = frac
                nb += 1
            hist[nh] = dp
            nh += 1
        last_close = close
    keep = min(nh, sigma_bars)
    return ends[:nb], vols[:nb], fracs[:nb], last_close, hist[nh - keep : nh].copy()
