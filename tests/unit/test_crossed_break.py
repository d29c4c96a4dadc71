"""docs/features.md `crossed`: for the sequential features a crossed row is a break. Hand-computed.

Series at 1 s steps (horizon 5 s, spread window 10 s), a crossed book at t = 2 s:

    t  bid        ask        mid    spread
    0  100 × 2    102 × 3    101      2
    1  100 × 1    102 × 3    101      2
    2  104 × 2    103 × 1    103.5   −1    crossed
    3  100 × 2    102 × 1    101      2
    4  101 × 1    102 × 1    101.5    1

The series breaks before and after the crossed row: at rows 2 and 3 every book-derived column is
NULL, and row 4's windows hold row 4 alone (the crossed book and everything before it are gone).
Trade windows restart only at breaks of the trades series, so tfi/trade_volume carry on.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from daedalus.udfs.series import US, SeqParams, orderbook_sequential

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds the reference package
from reference.sequential_reference import Snap, Trade, to_book, to_trades  # noqa: E402

BOOKS = [
    ([(100.0, 2.0)], [(102.0, 3.0)]),
    ([(100.0, 1.0)], [(102.0, 3.0)]),
    ([(104.0, 2.0)], [(103.0, 1.0)]),
    ([(100.0, 2.0)], [(102.0, 1.0)]),
    ([(101.0, 1.0)], [(102.0, 1.0)]),
]
CROSSED = 2


def _run() -> dict[str, np.ndarray]:
    snaps = [Snap(i * US, b, a, crossed=i == CROSSED) for i, (b, a) in enumerate(BOOKS)]
    trades = [Trade(int(1.5 * US), 2.0, True), Trade(2 * US, 1.0, False)]
    p = SeqParams(horizons=(5,), spread_regime_window=10)
    return orderbook_sequential(to_book(snaps), to_trades(trades), p)


def test_crossed_row_and_the_next_start_afresh() -> None:
    out = _run()
    assert out["seg_start"].tolist() == [True, False, True, True, False]
    for name in ("log_return", "mid_velocity", "ofi", "mlofi", "spread_pctile", "kyle_lambda"):
        assert np.isnan(out[name][CROSSED]) and np.isnan(out[name][CROSSED + 1]), name
    for name in ("ofi_sum", "mlofi_sum", "rv"):
        assert np.isnan(out[name][0, CROSSED]) and np.isnan(out[name][0, CROSSED + 1]), name
    # before the crossed row: computed as usual
    assert out["log_return"][1] == 0.0 and out["ofi"][1] == -1.0


def test_windows_after_the_crossed_row_hold_only_rows_after_it() -> None:
    out = _run()
    lr = math.log(101.5 / 101.0)
    assert out["log_return"][4] == pytest.approx(lr, rel=1e-15)
    assert out["mid_velocity"][4] == pytest.approx(0.5, rel=1e-15)
    # bid up (+Qb_n = 1), ask unchanged at 102 (−1 + 1 = 0)
    assert out["ofi"][4] == 1.0 and out["ofi_sum"][0, 4] == 1.0 and out["mlofi_sum"][0, 4] == 1.0
    # across the crossed row these would be sqrt(lr1² + lr2² + lr3² + lr4²) and ofi −1 + 1 = 0
    assert out["rv"][0, 4] == pytest.approx(abs(lr), rel=1e-15)
    # spread_bps of row 3 (2/101·1e4) is the only earlier value; 1/101.5·1e4 is not above it.
    # With the crossed row in the window (−96.6 bps) it would be 1/4.
    assert out["spread_pctile"][4] == 0.0


def test_trade_windows_do_not_restart_at_a_crossed_row() -> None:
    out = _run()
    # trades in (t − 5 s, t]: buy 2 at 1.5 s, sell 1 at 2 s
    for i in (CROSSED, CROSSED + 1, CROSSED + 2):
        assert out["trade_volume"][0, i] == 3.0
        assert out["tfi"][0, i] == pytest.approx(1.0 / 3.0, rel=1e-15)
