"""Kyle's λ: recovers a planted λ, NULL below 10 observations and on zero variance of q."""

from __future__ import annotations

import numpy as np

from daedalus.udfs.kernels.kyle import kyle_lambda

US = 1_000_000


def test_recovers_planted_lambda_within_two_percent() -> None:
    rng = np.random.default_rng(5)
    n = 5000
    ts = np.arange(n, dtype=np.int64) * 100_000  # 10 snapshots a second
    seg = np.zeros(n, np.int64)
    q = rng.normal(0.0, 2.0, n)
    lam_true = 3.0e-5
    r = lam_true * q + rng.normal(0.0, 1.0e-5, n)
    r[0] = np.nan  # no return at the first row
    lam, r2 = kyle_lambda(ts, seg, r, q, np.int64(300 * US))
    full = lam[-1]  # 3,000 observations in the last 300 s
    assert abs(full / lam_true - 1.0) < 0.02
    expected_r2 = (lam_true * 2.0) ** 2 / ((lam_true * 2.0) ** 2 + 1.0e-10)
    assert abs(r2[-1] - expected_r2) < 0.02


def test_null_below_ten_observations() -> None:
    n = 12
    ts = np.arange(n, dtype=np.int64) * US
    seg = np.zeros(n, np.int64)
    q = np.arange(n, dtype=float)
    r = 1e-4 * q + np.where(np.arange(n) % 2 == 0, 1e-6, -1e-6)
    r[0] = np.nan
    lam, r2 = kyle_lambda(ts, seg, r, q, np.int64(300 * US))
    assert np.isnan(lam[:10]).all() and np.isnan(r2[:10]).all()  # rows 1..9 hold ≤ 9 observations
    assert not np.isnan(lam[10:]).any()
    # 9 s window: at row 11 the observations are rows 3..11 → 9 → NULL again
    lam_w, _ = kyle_lambda(ts, seg, r, q, np.int64(9 * US))
    assert np.isnan(lam_w).all()


def test_null_on_zero_variance() -> None:
    n = 40
    ts = np.arange(n, dtype=np.int64) * US
    seg = np.zeros(n, np.int64)
    r = np.sin(np.arange(n)) * 1e-4
    for q in (np.zeros(n), np.full(n, 0.1)):  # no flow; constant flow (cancels to a few ulps)
        lam, r2 = kyle_lambda(ts, seg, r, q, np.int64(300 * US))
        assert np.isnan(lam).all() and np.isnan(r2).all()


def test_segment_restart_drops_earlier_observations() -> None:
    n = 30
    ts = np.arange(n, dtype=np.int64) * US
    seg = np.where(np.arange(n) < 20, 0, 1).astype(np.int64)
    q = np.cos(np.arange(n))
    r = 2e-5 * q
    lam, _ = kyle_lambda(ts, seg, r, q, np.int64(300 * US))
    assert abs(lam[19] - 2e-5) < 1e-12
    assert np.isnan(lam[20:29]).all()  # fewer than 10 observations since the break
    assert abs(lam[29] - 2e-5) < 1e-12  # rows 20..29: ten observations of the new segment only
