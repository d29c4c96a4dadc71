"""Every per-snapshot kernel against the brute-force reference on random series (hypothesis).

Random series carry what real ones do: duplicate timestamps, gaps above the staleness limit, break
flags of the book and of the trades series (apart: a trades break is not a book break), crossed books, empty and short sides, prices on a coarse grid so equal prices (and equal
spreads) are common, and trades sharing timestamps with snapshots.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daedalus.udfs.series import SeqParams, orderbook_sequential

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds the reference package
from reference import sequential_reference as ref  # noqa: E402

STALENESS = 2.0
HORIZONS = (1, 3)
PARAMS = SeqParams(
    horizons=HORIZONS,
    ofi_levels=3,
    ofi_decay_alpha=0.7,
    max_state_staleness_seconds=STALENESS,
    kyle_lambda_window=4,
    spread_regime_window=2,
)

level = st.tuples(st.integers(0, 4), st.integers(1, 5).map(float))


@st.composite
def series(draw):
    n = draw(st.integers(1, 60))
    ts = 1_700_000_000_000_000 + draw(st.integers(0, 10**6))
    snaps: list[ref.Snap] = []
    for _ in range(n):
        step = draw(
            st.sampled_from([0, 100_000, 100_000, 200_000, 250_000, 400_000, 900_000] * 3 + [2_500_000])
        )
        ts += step
        mid_tick = draw(st.integers(98, 102))
        spread = draw(st.sampled_from([1, 1, 1, 2, 3]))
        nb = draw(st.sampled_from([0, 1, 2, 3, 3, 3, 3, 3]))
        na = draw(st.sampled_from([0, 1, 2, 3, 3, 3, 3, 3]))
        bids = [(float(mid_tick - k), draw(st.integers(1, 5)) * 0.5) for k in range(nb)]
        asks = [(float(mid_tick + spread + k), draw(st.integers(1, 5)) * 0.5) for k in range(na)]
        crossed = draw(st.booleans()) and draw(st.booleans())
        if crossed and bids and asks:
            bids[0] = (asks[0][0] + 1.0, bids[0][1])
        brk = draw(st.integers(0, 29)) == 0
        snaps.append(
            ref.Snap(
                ts, bids, asks, crossed=bool(bids and asks and bids[0][0] >= asks[0][0]), break_before=brk
            )
        )
    first, last = snaps[0].ts, snaps[-1].ts
    m = draw(st.integers(0, 80))
    times = sorted(
        draw(
            st.lists(
                st.sampled_from([s.ts for s in snaps]) | st.integers(first - 1_000_000, last),
                min_size=m,
                max_size=m,
            )
        )
    )
    # Trades-series break events, received at random instants (capture = exchange time here): each
    # snapshot and trade carries the count received strictly before it.
    cuts = draw(st.lists(st.integers(first - 1_000_000, last), max_size=3))
    for s in snaps:
        s.trade_breaks = sum(c < s.ts for c in cuts)
    trades = [
        ref.Trade(t, draw(st.integers(1, 8)) * 0.25, draw(st.booleans()), breaks=sum(c < t for c in cuts))
        for t in times
    ]
    return snaps, trades


def _check(actual: np.ndarray, expected: list, what: str) -> None:
    assert len(actual) == len(expected), what
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        if e is None:
            assert math.isnan(a), f"{what}[{i}]: expected NULL, got {a}"
        else:
            assert not math.isnan(a), f"{what}[{i}]: expected {e}, got NULL"
            assert math.isclose(a, e, rel_tol=1e-9, abs_tol=1e-9), f"{what}[{i}]: {a} != {e}"


@pytest.mark.slow
@settings(max_examples=80, deadline=None)
@given(series())
def test_all_kernels_match_reference(data) -> None:
    snaps, trades = data
    out = orderbook_sequential(ref.to_book(snaps), ref.to_trades(trades), PARAMS)
    ofi, mlofi = ref.ofi_ref(snaps, STALENESS, 3, 0.7)
    _check(out["ofi"], ofi, "ofi")
    _check(out["mlofi"], mlofi, "mlofi")
    lr, vel = ref.returns_ref(snaps, STALENESS)
    _check(out["log_return"], lr, "log_return")
    _check(out["mid_velocity"], vel, "mid_velocity")
    for j, h in enumerate(HORIZONS):
        _check(out["ofi_sum"][j], ref.rolling_sum_ref(snaps, ofi, STALENESS, h), f"ofi_sum_{h}")
        _check(out["mlofi_sum"][j], ref.rolling_sum_ref(snaps, mlofi, STALENESS, h), f"mlofi_sum_{h}")
        _check(out["rv"][j], ref.rv_ref(snaps, STALENESS, h), f"rv_{h}")
        tfi, vol = ref.tfi_ref(snaps, trades, STALENESS, h)
        _check(out["tfi"][j], tfi, f"tfi_{h}")
        _check(out["trade_volume"][j], vol, f"trade_volume_{h}")
    lam, r2 = ref.kyle_ref(snaps, trades, STALENESS, 4)
    _check(out["kyle_lambda"], lam, "kyle_lambda")
    _check(out["kyle_lambda_r2"], r2, "kyle_lambda_r2")
    pct = ref.spread_pctile_ref(snaps, STALENESS, 2)
    _check(out["spread_pctile"], pct, "spread_pctile")
    codes = {0: "tight", 1: "normal", 2: "wide", -1: None}
    assert [codes[int(c)] for c in out["spread_regime"]] == [ref.regime_ref(p, 0.2, 0.8) for p in pct]
