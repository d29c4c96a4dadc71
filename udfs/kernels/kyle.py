"""Kyle's λ over a trailing time window (docs/features.md "Sequential": `kyle_lambda`, `kyle_lambda_r2`).

Observation n: r_n = log_return_n, q_n = buy − sell aggressor size of trades with ts in (ts_{n−1}, ts_n].
Over the observations of snapshots in (t − w, t] of the current segment (w = `kyle_lambda_window`),
OLS with intercept: λ = Cov(r, q)/Var(q), r2 = Corr(r, q)². NULL with fewer than 10 observations or
Var(q) = 0. The moments come from `windows.window_sum`, so a value depends only on its window's rows.
Var(q) counts as 0 when it is below 1e−12 of the mean square of q: a constant non-zero q cancels to
a few ulps rather than exactly 0, and a slope over such noise would be meaningless.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from daedalus.udfs.kernels.windows import window_sums

MIN_OBSERVATIONS = 10
ZERO_VARIANCE_RELATIVE = 1e-12


@njit(cache=True)
def kyle_lambda(
    ts: np.ndarray,
    seg: np.ndarray,
    log_return: np.ndarray,
    flow: np.ndarray,
    window: np.int64,
) -> tuple[np.ndarray, np.ndarray]:
    """(λ, r²) per snapshot, NaN where NULL. `flow` is q_n; observations are the rows with a log_return
    and a q_n."""
    n = ts.shape[0]
    # An observation needs both r and q (q is NaN where the trades series broke since the last snapshot).
    r = np.where(np.isnan(flow), np.nan, log_return)
    q = np.where(np.isnan(r), np.nan, flow)
    hi = np.arange(n).astype(np.int64)
    vals = np.empty((5, n))
    vals[0] = r
    vals[1] = q
    vals[2] = r * r
    vals[3] = q * q
    vals[4] = r * q
    sums, counts = window_sums(ts, seg, vals, ts, seg, hi, window)
    s_r = sums[0]
    s_q = sums[1]
    s_rr = sums[2]
    s_qq = sums[3]
    s_rq = sums[4]
    cnt = counts[0]
    lam = np.full(n, np.nan)
    r2 = np.full(n, np.nan)
    for i in range(n):
        k = cnt[i]
        if k < MIN_OBSERVATIONS:
            continue
        sxx = s_qq[i] - s_q[i] * s_q[i] / k
        if sxx <= ZERO_VARIANCE_RELATIVE * s_qq[i] or sxx <= 0.0:
            continue
        sxy = s_rq[i] - s_r[i] * s_q[i] / k
        syy = s_rr[i] - s_r[i] * s_r[i] / k
        lam[i] = sxy / sxx
        if syy > ZERO_VARIANCE_RELATIVE * s_rr[i] and syy > 0.0:
            r2[i] = min(1.0, sxy * sxy / (sxx * syy))
    return lam, r2
