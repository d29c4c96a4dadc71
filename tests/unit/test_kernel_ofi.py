"""OFI/MLOFI kernel: the nine bid/ask price-move cases by hand, missing levels, MLOFI(L=1) = OFI."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daedalus.udfs.series import SeqParams, orderbook_sequential

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds the reference package
from reference.sequential_reference import Snap, to_book  # noqa: E402

# previous snapshot: bid 100 @ 2, ask 104 @ 3; the next one moves each side (multi-tick where noted)
# to a size of 5 (bid) and 7 (ask).
BID_MOVES = {"up2": 102.0, "same": 100.0, "down3": 97.0}
ASK_MOVES = {"up1": 105.0, "same": 104.0, "down1": 103.0}
# Hand values of e = bid part + ask part (docs/features.md "ofi"):
#  bid up   → +Qb_n = 5      bid same → 5 − 2 = 3      bid down → −Qb_{n−1} = −2
#  ask up   → +Qa_{n−1} = 3  ask same → −7 + 3 = −4     ask down → −Qa_n = −7
EXPECTED = {
    ("up2", "up1"): 8.0,
    ("up2", "same"): 1.0,
    ("up2", "down1"): -2.0,
    ("same", "up1"): 6.0,
    ("same", "same"): -1.0,
    ("same", "down1"): -4.0,
    ("down3", "up1"): 1.0,
    ("down3", "same"): -6.0,
    ("down3", "down1"): -9.0,
}


def _run(snaps: list[Snap], levels: int = 10, alpha: float = 0.5) -> dict[str, np.ndarray]:
    return orderbook_sequential(
        to_book(snaps), None, SeqParams(horizons=(5,), ofi_levels=levels, ofi_decay_alpha=alpha)
    )


@pytest.mark.parametrize(("bid", "ask"), list(EXPECTED))
def test_nine_price_move_combinations(bid: str, ask: str) -> None:
    snaps = [
        Snap(0, [(100.0, 2.0)], [(104.0, 3.0)]),
        Snap(100_000, [(BID_MOVES[bid], 5.0)], [(ASK_MOVES[ask], 7.0)]),
    ]
    out = _run(snaps)
    assert np.isnan(out["ofi"][0])  # first row of the series: NULL
    assert out["ofi"][1] == EXPECTED[(bid, ask)]
    assert out["mlofi"][1] == EXPECTED[(bid, ask)]  # single level


def test_missing_level_contributes_zero() -> None:
    # level 2: bid present at n−1 only → contributes 0; ask present at both, price same:
    # −7 + 3 = −4 on the ask side, weighted by exp(−0.5).
    snaps = [
        Snap(0, [(100.0, 2.0), (99.0, 4.0)], [(104.0, 3.0), (105.0, 3.0)]),
        Snap(100_000, [(100.0, 2.0)], [(104.0, 3.0), (105.0, 7.0)]),
    ]
    out = _run(snaps, levels=3)
    assert out["ofi"][1] == 0.0
    assert out["mlofi"][1] == pytest.approx(np.exp(-0.5) * -4.0, rel=1e-15)


def test_crossed_and_empty_sides_are_null() -> None:
    snaps = [
        Snap(0, [(100.0, 2.0)], [(104.0, 3.0)]),
        Snap(100_000, [(105.0, 2.0)], [(104.0, 3.0)], crossed=True),
        Snap(200_000, [(100.0, 2.0)], [(104.0, 3.0)]),
        Snap(300_000, [(100.0, 1.0)], [(104.0, 3.0)]),
        Snap(400_000, [], [(104.0, 3.0)]),
        Snap(500_000, [(100.0, 1.0)], [(104.0, 3.0)]),
    ]
    out = _run(snaps)
    assert np.isnan(out["ofi"][1]) and np.isnan(out["ofi"][2])  # crossed row and the row after it
    assert out["ofi"][3] == -1.0
    assert np.isnan(out["ofi"][4]) and np.isnan(out["ofi"][5])
    assert np.isnan(out["mlofi"][4])


level = st.tuples(st.integers(95, 105).map(float), st.integers(1, 9).map(float))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.lists(level, min_size=1, max_size=4), st.lists(level, min_size=1, max_size=4)),
        min_size=2,
        max_size=30,
    )
)
def test_mlofi_with_one_level_equals_ofi(books) -> None:
    snaps = [Snap(i * 100_000, b, a) for i, (b, a) in enumerate(books)]
    out = _run(snaps, levels=1)
    np.testing.assert_array_equal(out["mlofi"], out["ofi"])
