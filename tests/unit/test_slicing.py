"""`etl.slice_hours: auto`: the densest slice of a day from row-group footers, and the length chosen."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daedalus.build.slicing import AUTO_HOURS, DAY_MS, auto_slice_hours, densest_slice_bytes

H = 3_600_000
DAY = 1_704_499_200_000  # 2024-01-06 00:00 UTC


def test_a_row_group_is_spread_over_its_time_range() -> None:
    # 600 bytes over 01:00-02:30: 400 in [01:00, 02:00), 200 in [02:00, 03:00)
    spans = [(600, DAY + H, DAY + 2 * H + H // 2 - 1)]
    assert densest_slice_bytes(spans, DAY, 1) == pytest.approx(400)
    assert densest_slice_bytes(spans, DAY, 2) == pytest.approx(400)  # [00:00, 02:00) holds the same 400
    assert densest_slice_bytes(spans, DAY, 3) == pytest.approx(600)
    assert densest_slice_bytes(spans, DAY, 24) == pytest.approx(600)


def test_rows_outside_the_day_count_at_its_edge_and_unknown_ranges_spread_over_it() -> None:
    assert densest_slice_bytes([(100, DAY - 5 * H, DAY - H)], DAY, 1) == pytest.approx(100)
    assert densest_slice_bytes([(100, DAY + DAY_MS + H, DAY + DAY_MS + 2 * H)], DAY, 6) == pytest.approx(100)
    assert densest_slice_bytes([(2400, None, None)], DAY, 1) == pytest.approx(100)


def test_the_longest_slice_within_the_budget() -> None:
    busy = [(9_000_000, DAY + h * H, DAY + (h + 1) * H - 1) for h in range(3)]  # 9 MB an hour, 3 hours
    assert auto_slice_hours(busy, DAY, 8_000_000) == 0.5  # 1 h holds 9 MB: half hours
    assert auto_slice_hours(busy, DAY, 9_000_000) == 1
    assert auto_slice_hours(busy, DAY, 18_000_000) == 2
    assert auto_slice_hours(busy, DAY, 27_000_000) == 24  # the whole day in one query
    assert auto_slice_hours([], DAY, 1) == 24
    assert auto_slice_hours([(10**12, DAY, DAY + 1)], DAY, 1) == AUTO_HOURS[-1]  # none fits: the shortest


spans_st = st.lists(
    st.tuples(
        st.integers(0, 10**9),
        st.integers(-DAY_MS // 4, DAY_MS + DAY_MS // 4),
        st.integers(0, DAY_MS // 2),
    ).map(lambda t: (t[0], DAY + t[1], DAY + t[1] + t[2])),
    max_size=30,
)


@given(spans_st, st.integers(1, 3 * 10**9))
def test_chosen_length_fits_and_the_next_longer_does_not(spans, budget) -> None:
    hours = auto_slice_hours(spans, DAY, budget)
    i = AUTO_HOURS.index(hours)
    if hours != AUTO_HOURS[-1]:
        assert densest_slice_bytes(spans, DAY, hours) <= budget
    for longer in AUTO_HOURS[:i]:
        assert densest_slice_bytes(spans, DAY, longer) > budget


@given(spans_st)
def test_the_whole_day_holds_every_byte_and_halving_never_adds(spans) -> None:
    total = sum(b for b, _, _ in spans)
    assert densest_slice_bytes(spans, DAY, 24) == pytest.approx(total, rel=1e-9, abs=1e-6)
    for long, short in [(24, 12), (12, 6), (6, 3), (2, 1), (1, 0.5), (8, 4), (4, 2)]:
        assert (
            densest_slice_bytes(spans, DAY, short)
            <= densest_slice_bytes(spans, DAY, long) * (1 + 1e-9) + 1e-6
        )
