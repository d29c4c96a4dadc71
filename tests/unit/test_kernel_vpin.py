"""VPIN: hand cases, exact splitting, NULL until n buckets, bvc, auto V without lookahead, state carry,
and a cross-check of aggressor VPIN against ob-analytics' independent implementation."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ob_analytics.flow_toxicity import compute_vpin

from daedalus.udfs.series import DAY_US, HOUR_US, US, VpinParams, VpinState, vpin_as_of, vpin_partition

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds the reference package
from reference import sequential_reference as ref  # noqa: E402

DAY0 = 19_700 * DAY_US  # a UTC midnight


def _run(ts, size, buy, v=10.0, n=3, state=None, start=DAY0, bvc=False, sigma_bars=50, price=None):
    ts = np.asarray(ts, np.int64)
    price = np.full(ts.shape[0], 100.0) if price is None else np.asarray(price, float)
    return vpin_partition(
        ts,
        np.asarray(size, float),
        np.asarray(buy, bool),
        price,
        state or VpinState(),
        VpinParams(bucket_volume=v, window_buckets=n, bvc=bvc, sigma_bars=sigma_bars),
        start,
    )


def test_all_buy_flow_gives_one() -> None:
    k = 40
    part = _run(DAY0 + np.arange(k) * US, np.full(k, 2.5), np.ones(k, bool), v=10.0, n=5)
    assert part.ts.shape[0] == 10
    assert np.isnan(part.vpin[:4]).all()  # NULL until n = 5 buckets exist
    np.testing.assert_allclose(part.vpin[4:], 1.0, rtol=0, atol=1e-15)


def test_single_trade_of_ten_buckets_fills_ten_exactly() -> None:
    part = _run([DAY0 + US], [100.0], [False], v=10.0, n=10)
    assert part.ts.shape[0] == 10
    np.testing.assert_array_equal(part.volume, 10.0)
    np.testing.assert_array_equal(part.sell, 10.0)
    np.testing.assert_array_equal(part.buy, 0.0)
    assert part.state.fill_buy == 0.0 and part.state.fill_sell == 0.0 and part.state.bucket_v == 0.0
    assert np.isnan(part.vpin[:9]).all() and part.vpin[9] == 1.0


def test_straddling_trade_is_split_exactly() -> None:
    # V = 10: a buy of 6 then a sell of 7 → bucket 1 = 6 buy + 4 sell, 3 sell carried into bucket 2.
    part = _run([DAY0 + US, DAY0 + 2 * US], [6.0, 7.0], [True, False], v=10.0, n=1)
    assert part.ts.tolist() == [DAY0 + 2 * US]
    assert (part.buy[0], part.sell[0]) == (6.0, 4.0)
    assert part.vpin[0] == pytest.approx(0.2, abs=1e-15)
    assert (part.state.fill_buy, part.state.fill_sell) == (0.0, 3.0)


def test_state_carry_equals_one_pass_and_matches_reference() -> None:
    rng = np.random.default_rng(7)
    k = 500
    ts = np.sort(DAY0 + rng.integers(0, 3 * DAY_US, k))
    size = rng.integers(1, 30, k).astype(float)
    buy = rng.random(k) < 0.6
    whole_ts, whole_v = [], []
    state = VpinState()
    for d in range(3):  # three days; buckets straddle both midnights
        sel = (ts >= DAY0 + d * DAY_US) & (ts < DAY0 + (d + 1) * DAY_US)
        part = _run(ts[sel], size[sel], buy[sel], v=37.0, n=4, state=state, start=DAY0 + d * DAY_US)
        whole_ts += part.ts.tolist()
        whole_v += part.vpin.tolist()
        state = part.state
    one = _run(ts, size, buy, v=37.0, n=4)
    assert whole_ts == one.ts.tolist()
    np.testing.assert_array_equal(np.array(whole_v), one.vpin)
    expected = ref.vpin_ref(
        [ref.Trade(int(t), float(s), bool(b)) for t, s, b in zip(ts, size, buy, strict=True)], 37.0, 4
    )
    assert [e[0] for e in expected] == whole_ts
    want = np.array([np.nan if e[3] is None else e[3] for e in expected])
    np.testing.assert_allclose(np.array(whole_v), want, rtol=1e-12)  # NaN (NULL) positions must agree too
    assert np.isnan(want[:3]).all() and not np.isnan(want[3:]).any()


def test_bvc_hand_case() -> None:
    # one trade per minute; closes 100, 101, 103, 102 → Δp 1, 2, −1. With sigma_bars = 2 only the
    # last bar has two previous Δp: σ = std([1, 2], ddof=1) = 1/√2, z = −1/σ = −√2,
    # V_B = V·Φ(−√2) = V·erfc(1)/2.
    minute = 60 * US
    ts = [DAY0 + k * minute + 5 * US for k in range(4)]
    part = _run(
        ts,
        [4.0, 4.0, 4.0, 10.0],
        [True] * 4,
        v=10.0,
        n=1,
        bvc=True,
        sigma_bars=2,
        price=[100.0, 101.0, 103.0, 102.0],
    )
    assert part.ts.tolist() == [DAY0 + 4 * minute]  # the bar enters at its end
    assert part.buy[0] == pytest.approx(10.0 * math.erfc(1.0) / 2.0, rel=1e-12)
    assert part.sell[0] == pytest.approx(10.0 - 10.0 * math.erfc(1.0) / 2.0, rel=1e-12)
    assert part.vpin[0] == pytest.approx(abs(1.0 - math.erfc(1.0)), rel=1e-12)


def _auto(ts, size, buy, days, n=2):
    """Day-by-day auto-V run; returns [(ts, vpin)] of all buckets."""
    state = VpinState()
    rows = []
    for d in range(days):
        sel = (ts >= DAY0 + d * DAY_US) & (ts < DAY0 + (d + 1) * DAY_US)
        part = vpin_partition(
            ts[sel],
            size[sel],
            buy[sel],
            np.full(int(sel.sum()), 100.0),
            state,
            VpinParams(bucket_volume=None, window_buckets=n),
            DAY0 + d * DAY_US,
        )
        rows += list(zip(part.ts.tolist(), part.vpin.tolist(), part.volume.tolist(), strict=True))
        state = part.state
    return rows


def test_auto_bucket_size_has_no_lookahead() -> None:
    rng = np.random.default_rng(3)
    k = 3000
    ts = np.sort(DAY0 + 2 * HOUR_US + rng.integers(0, 2 * DAY_US, k))
    size = rng.integers(1, 10, k).astype(float)
    buy = rng.random(k) < 0.5
    rows = _auto(ts, size, buy, 2)
    first = int(ts[0])
    assert rows and min(t for t, _, _ in rows) >= first + HOUR_US  # nothing during the first hour
    hour_vol = size[ts < first + HOUR_US].sum()
    day0 = [v for t, _, v in rows if t < DAY0 + DAY_US]
    assert set(day0) == {24 * hour_vol / 50}
    day1_vol = size[(ts >= DAY0) & (ts < DAY0 + DAY_US)].sum()
    assert {v for t, _, v in rows[len(day0) + 1 :]} == {day1_vol / 50}
    for cut in (first + HOUR_US // 2, first + 3 * HOUR_US, DAY0 + DAY_US + 5 * HOUR_US):
        keep = ts <= cut
        changed = size.copy()
        changed[~keep] *= 7.0  # everything after the cut changes
        flipped = buy.copy()
        flipped[~keep] = ~flipped[~keep]
        other = _auto(ts, changed, flipped, 2)
        before = np.array([(t, v) for t, v, _ in rows if t <= cut]).reshape(-1, 2)
        after = np.array([(t, v) for t, v, _ in other if t <= cut]).reshape(-1, 2)
        np.testing.assert_array_equal(after, before)  # NaN (NULL) equal to NaN here
    assert not np.isnan(np.array([v for _, v, _ in rows[5:]])).any()


def test_cross_check_with_ob_analytics() -> None:
    rng = np.random.default_rng(11)
    k = 2000
    ts = DAY0 + np.cumsum(rng.integers(1, 1000, k)) * 1000  # unique, sorted
    size = rng.integers(1, 25, k).astype(float)
    buy = rng.random(k) < 0.55
    n, v = 50, 40.0
    part = _run(ts, size, buy, v=v, n=n)
    theirs = compute_vpin(
        pd.DataFrame(
            {
                "timestamp": pd.to_datetime(ts, unit="us", utc=True),
                "price": 100.0,
                "volume": size,
                "direction": np.where(buy, "buy", "sell"),
            }
        ),
        v,
        n,
    )
    assert len(theirs) == part.ts.shape[0] > n
    np.testing.assert_allclose(part.buy, theirs["buy_volume"].to_numpy(), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(part.sell, theirs["sell_volume"].to_numpy(), rtol=1e-12, atol=1e-9)
    # theirs averages over min(n, available) buckets; ours is NULL until n exist
    assert np.isnan(part.vpin[: n - 1]).all()
    np.testing.assert_allclose(part.vpin[n - 1 :], theirs["vpin_avg"].to_numpy()[n - 1 :], rtol=1e-10)


def test_snapshot_takes_last_bucket_completed_at_or_before_it() -> None:
    # points: carried-in value at 0, then two buckets completed by one trade at 5 (the later one wins),
    # a point at 9 whose value is NULL. docs/features.md: VPIN does not restart at breaks, so no segment input.
    pts_ts = np.array([0, 5, 5, 9], np.int64)
    pts_v = np.array([0.4, 0.5, 0.6, np.nan])
    ts = np.array([0, 4, 5, 6, 9, 10], np.int64)
    got = vpin_as_of(ts, pts_ts, pts_v)
    np.testing.assert_array_equal(got, [0.4, 0.4, 0.6, 0.6, np.nan, np.nan])
    assert np.isnan(vpin_as_of(np.array([3], np.int64), np.array([5], np.int64), np.array([0.1]))).all()
