"""Structural and band-depth features of gold.orderbook_hf (docs/features.md "Per snapshot").

The macro `orderbook_structural` is rendered through the build's compiler (the same Jinja context a
model gets) and run by DuckDB over hand-made books. Fixtures are hand-computed; a hypothesis test
holds random books to the plain-Python reference in tests/reference/features_reference.py.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daedalus.build.compiler import Compiler, ParseResolver
from daedalus.build.project import SqlTest, load_project
from daedalus.config import load_config
from daedalus.udfs.register import register_all

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds the reference package
from reference.features_reference import band_names, close, structural  # noqa: E402

LEVELS = pa.list_(pa.struct([("price", pa.float64()), ("size", pa.float64())]))
DEFAULT_BANDS = [0, 5, 10, 25, 50, 100]


@functools.cache
def _compiler() -> Compiler:
    cfg = load_config()
    return Compiler(load_project(cfg), cfg)


@functools.cache
def structural_sql(max_levels: int, bands: tuple[float, ...]) -> str:
    # The compiler caches templates by path: one path per distinct call.
    call = f"{{{{ orderbook_structural('book', {max_levels}, {list(bands)}) }}}}"
    return _compiler().render_test(
        SqlTest("structural", Path(f"structural-{max_levels}-{bands}.sql"), call), ParseResolver()
    )


def run_books(
    books: list[tuple[list[tuple[float, float]], list[tuple[float, float]]]],
    max_levels: int = 20,
    bands: list[float] | None = None,
) -> list[dict[str, Any]]:
    """One output row per (bids, asks) book, in input order."""
    bands = bands or DEFAULT_BANDS
    table = pa.table(
        {
            "id": pa.array(range(len(books)), pa.int64()),
            "bids": pa.array([[{"price": p, "size": q} for p, q in b] for b, _ in books], LEVELS),
            "asks": pa.array([[{"price": p, "size": q} for p, q in a] for _, a in books], LEVELS),
        }
    )
    con = duckdb.connect()
    register_all(con)  # the macro calls daedalus_book_structural (udfs/kernels/structural.py)
    con.register("book", table)
    cur = con.execute(f"SELECT * FROM ({structural_sql(max_levels, tuple(bands))}) ORDER BY id")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def one(bids: list[tuple[float, float]], asks: list[tuple[float, float]], **kw: Any) -> dict[str, Any]:
    return run_books([(bids, asks)], **kw)[0]


def test_one_level_book() -> None:
    r = one([(99.0, 2.0)], [(101.0, 1.0)], bands=[0, 50, 100, 150])
    assert (r["best_bid"], r["best_ask"], r["bid_size_1"], r["ask_size_1"]) == (99.0, 101.0, 2.0, 1.0)
    assert r["mid"] == 100.0 and r["spread"] == 2.0 and r["spread_bps"] == pytest.approx(200.0)
    assert r["microprice"] == pytest.approx((99 * 1 + 101 * 2) / 3)  # leans toward the thinner ask
    for k in (1, 3, 5, 10):  # min(k, M) = 1 level on each side
        assert r[f"imbalance_{k}"] == pytest.approx(1 / 3)
    assert (r["bid_depth"], r["ask_depth"]) == (2.0, 1.0)
    assert r["depth_imbalance"] == pytest.approx(1 / 3)
    assert (r["bid_vwap_5"], r["ask_vwap_5"]) == (99.0, 101.0)
    # both levels sit exactly 100 bps from mid: [100, 150) holds them, [50, 100) is empty on both sides
    assert (r["bid_depth_0_50bps"], r["bid_depth_50_100bps"], r["bid_depth_100_150bps"]) == (0.0, 0.0, 2.0)
    assert (r["ask_depth_0_50bps"], r["ask_depth_50_100bps"], r["ask_depth_100_150bps"]) == (0.0, 0.0, 1.0)
    assert r["band_imbalance_50_100bps"] is None  # both 0
    assert r["band_imbalance_100_150bps"] == pytest.approx(1 / 3)
    assert (r["bid_concentration"], r["ask_concentration"]) == (1.0, 1.0)
    assert r["bid_slope"] is None and r["ask_slope"] is None  # fewer than 3 levels


def test_missing_side_is_null_not_zero() -> None:
    r = one([(99.0, 1.0), (98.0, 2.0)], [])
    for col in (
        "best_ask",
        "ask_size_1",
        "mid",
        "spread",
        "spread_bps",
        "microprice",
        "imbalance_1",
        "imbalance_10",
        "ask_depth",
        "depth_imbalance",
        "ask_vwap_5",
        "ask_concentration",
        "ask_slope",
    ):
        assert r[col] is None, col
    for name in band_names(DEFAULT_BANDS):  # no mid → no distance → no band
        assert r[f"bid_depth_{name}"] is None and r[f"ask_depth_{name}"] is None
        assert r[f"band_imbalance_{name}"] is None
    assert r["best_bid"] == 99.0 and r["bid_depth"] == 3.0
    assert r["bid_vwap_5"] == pytest.approx((99 * 1 + 98 * 2) / 3)
    assert r["bid_concentration"] == pytest.approx(1 / 9 + 4 / 9)
    both_empty = one([], [])
    assert both_empty["bid_depth"] is None and both_empty["best_bid"] is None


def test_zero_sizes_give_null_ratios() -> None:
    r = one([(999.5, 0.0), (999.0, 0.0)], [(1000.5, 0.0)])
    assert r["mid"] == 1000.0
    for col in (
        "microprice",
        "imbalance_1",
        "imbalance_5",
        "depth_imbalance",
        "bid_vwap_5",
        "ask_vwap_5",
        "bid_concentration",
        "ask_concentration",
        "band_imbalance_5_10bps",
    ):
        assert r[col] is None, col
    assert (r["bid_depth"], r["ask_depth"]) == (0.0, 0.0)
    assert (r["bid_depth_5_10bps"], r["ask_depth_5_10bps"]) == (0.0, 0.0)


def test_concentration_of_sizes_whose_square_under_or_overflows() -> None:
    """(1e-160)² is 0 and (1e160)² is inf in doubles: the Herfindahl of two equal levels is still 1/2
    (dividing by the squared total failed the whole build with ZeroDivisionError)."""
    for q in (1e-160, 1e160):
        r = one([(99.0, q), (98.0, q)], [(101.0, q), (102.0, 3 * q)])
        assert r["bid_concentration"] == pytest.approx(0.5), q
        assert r["ask_concentration"] == pytest.approx(1 / 16 + 9 / 16), q
        assert r["bid_depth"] == pytest.approx(2 * q, rel=1e-12)


def test_crossed_book_keeps_structural_values() -> None:
    bids, asks = [(101.0, 1.0), (100.0, 1.0), (99.0, 2.0)], [(100.5, 1.0), (102.0, 3.0)]
    r = one(bids, asks)
    assert r["mid"] == 100.75 and r["spread"] == -0.5
    assert r["spread_bps"] == pytest.approx(-0.5 / 100.75 * 1e4)
    assert r["microprice"] == pytest.approx((101 * 1 + 100.5 * 1) / 2)
    assert r["imbalance_1"] == 0.0 and r["imbalance_3"] == pytest.approx((4 - 4) / 8)
    ref = structural(bids, asks, 20, DEFAULT_BANDS)
    for key, want in ref.items():
        if key != "crossed":
            assert close(r[key], want), (key, r[key], want)


def test_band_edges_lo_inclusive_hi_exclusive() -> None:
    # mid = 1000: 999.5 and 1000.5 are exactly 5 bps away, 999.0 / 1001.0 exactly 10, 997.5 exactly 25
    r = one(
        [(999.5, 1.0), (999.0, 2.0), (997.5, 4.0)], [(1000.5, 3.0), (1001.0, 5.0)], bands=[0, 5, 10, 25, 50]
    )
    assert r["mid"] == 1000.0
    assert [r[f"bid_depth_{n}"] for n in ("0_5bps", "5_10bps", "10_25bps", "25_50bps")] == [
        0.0,
        1.0,
        2.0,
        4.0,
    ]
    assert [r[f"ask_depth_{n}"] for n in ("0_5bps", "5_10bps", "10_25bps", "25_50bps")] == [
        0.0,
        3.0,
        5.0,
        0.0,
    ]
    assert r["band_imbalance_5_10bps"] == pytest.approx((1 - 3) / 4)
    assert r["band_imbalance_25_50bps"] == 1.0


def test_truncated_side_band_is_null_when_deepest_level_inside() -> None:
    # max_levels = 3 and the bid side holds 3 levels: it was truncated. Deepest level at 20 bps.
    r = one([(999.5, 1.0), (999.0, 2.0), (998.0, 3.0)], [(1000.5, 2.0)], max_levels=3, bands=[0, 5, 10, 25])
    assert r["bid_depth_0_5bps"] == 0.0  # fully visible: the book goes deeper than 5 bps
    assert r["bid_depth_5_10bps"] == 1.0
    assert r["bid_depth_10_25bps"] is None  # deepest level 20 < 25: more may hide beyond it
    assert r["band_imbalance_10_25bps"] is None
    assert r["ask_depth_5_10bps"] == 2.0 and r["ask_depth_10_25bps"] == 0.0  # 1 level < max_levels: complete
    # a deepest level exactly on the upper edge (25 bps, not < 25) leaves the band visible
    r = one(
        [(999.5, 1.0), (999.0, 2.0), (997.5, 3.0)], [(1000.5, 2.0)], max_levels=3, bands=[0, 5, 10, 25, 50]
    )
    assert r["bid_depth_10_25bps"] == 2.0
    assert r["bid_depth_25_50bps"] is None


def test_slope_vwap_concentration_hand_computed() -> None:
    # x = 5, 10, 15 bps; cumulative y = 1, 3, 6 → slope = Sxy / Sxx = 25 / 50
    r = one([(999.5, 1.0), (999.0, 2.0), (998.5, 3.0)], [(1000.5, 1.0), (1001.0, 1.0), (1001.5, 2.0)])
    assert r["bid_slope"] == pytest.approx(0.5)
    # ask: x = 5, 10, 15; y = 1, 2, 4 → x̄ = 10, ȳ = 7/3, Sxy = (-5)(1-7/3) + 5(4-7/3) = 15, Sxx = 50
    assert r["ask_slope"] == pytest.approx(15 / 50)
    assert r["ask_concentration"] == pytest.approx((1 + 1 + 4) / 16)
    seven = [(100.0 - i, float(i + 1)) for i in range(7)]
    r = one(seven, [(101.0, 1.0)])
    top5 = seven[:5]
    assert r["bid_vwap_5"] == pytest.approx(sum(p * q for p, q in top5) / sum(q for _, q in top5))
    assert r["imbalance_3"] == pytest.approx((6 - 1) / 7)  # asks: min(3, 1) = 1 level
    assert r["imbalance_10"] == pytest.approx((28 - 1) / 29)


def test_band_columns_follow_config() -> None:
    r = one([(999.5, 1.0)], [(1000.5, 1.0)], bands=[0, 2.5, 10])
    assert {"bid_depth_0_2p5bps", "bid_depth_2p5_10bps", "band_imbalance_2p5_10bps"} <= set(r)
    assert not any(k.startswith("bid_depth_0_5bps") for k in r)
    assert r["bid_depth_2p5_10bps"] == 1.0


def test_band_edges_that_do_not_increase_sum_every_level_in_each_band() -> None:
    # The kernel's one-band-per-level path assumes increasing edges; any other layout (a band whose
    # edges are out of order, or that another band overlaps) takes the per-band sums, as the SQL did.
    book = ([(999.5, 1.0), (999.0, 2.0), (998.0, 4.0), (996.0, 8.0)], [(1000.5, 3.0), (1002.0, 5.0)])
    for edges in ([0, 10, 5, 25], [5, 0, 30], [0, 25, 25, 50]):
        row = run_books([book], bands=edges)[0]
        want = structural(*book, 20, edges)
        for key, value in want.items():
            if "_depth_" in key or key.startswith("band_imbalance"):
                assert close(row[key], value), (edges, key, row[key], value)
        assert any(row[k] not in (None, 0.0) for k in want if "_depth_" in k)


# ---------------------------------------------------------------------------------------------
# Random books against the plain-Python reference


@st.composite
def books(draw: st.DrawFn, max_levels: int) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    tick = draw(st.sampled_from([0.01, 0.5, 1.0]))
    center = draw(st.integers(1000, 200_000))
    crossed = draw(st.booleans()) and draw(st.booleans())  # ~1 in 4 books crossed
    size = st.one_of(st.just(0.0), st.floats(0.00001, 50.0, allow_nan=False, allow_infinity=False))

    def side(direction: int, start: int) -> list[tuple[float, float]]:
        n = draw(st.integers(0, max_levels))
        gaps = draw(st.lists(st.integers(1, 4), min_size=n, max_size=n))
        out, k = [], start
        for g in gaps:
            out.append((k * tick, draw(size)))
            k += direction * g
        return [(p, q) for p, q in out if p > 0]

    best_bid = center + (3 if crossed else 0)
    best_ask = center + draw(st.integers(1, 3))
    return side(-1, best_bid), side(+1, best_ask)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(data=st.data())
def test_random_books_match_reference(data: st.DataObject) -> None:
    max_levels = data.draw(st.sampled_from([3, 5, 20]))
    # A few band layouts (each distinct layout is one more compiled query): default, fine, uneven.
    edges = data.draw(st.sampled_from([DEFAULT_BANDS, [0, 1, 2.5, 5], [2, 10, 400]]))
    batch = data.draw(st.lists(books(max_levels), min_size=1, max_size=30))
    rows = run_books(batch, max_levels=max_levels, bands=edges)
    for (bids, asks), row in zip(batch, rows, strict=True):
        want = structural(bids, asks, max_levels, edges)
        for key, value in want.items():
            if key == "crossed":
                continue  # silver's column; the macro does not compute it
            assert close(row[key], value), (key, row[key], value, bids, asks)
