"""daedalus_levels_invalid (udfs/kernels/levels.py) gives the verdict of the list-lambda rule that
sql/tests/orderbook_levels_valid.sql held before it, row by row, NULLs and NaN included."""

from __future__ import annotations

import itertools

import duckdb
import pytest

from daedalus.udfs.register import register_all

# The rule as the test's SQL wrote it before the kernel (max_levels 3 here).
OLD_RULE = """len(bids) > 3 OR len(asks) > 3
   OR NOT coalesce(list_bool_and(list_transform(bids, l -> l.price > 0 AND l.size >= 0)), true)
   OR NOT coalesce(list_bool_and(list_transform(asks, l -> l.price > 0 AND l.size >= 0)), true)
   OR NOT coalesce(list_bool_and(list_transform(list_slice(bids, 2, len(bids)), (l, i) -> l.price < bids[i].price)), true)
   OR NOT coalesce(list_bool_and(list_transform(list_slice(asks, 2, len(asks)), (l, i) -> l.price > asks[i].price)), true)"""

LEVEL = "STRUCT(price DOUBLE, size DOUBLE)"
PRICES = ["NULL", "'nan'", "-1", "0", "99", "100", "101"]
SIZES = ["NULL", "'nan'", "-0.5", "0", "2"]


def _side(levels: list[tuple[str, str] | None]) -> str:
    items = [
        "NULL" if lv is None else f"{{'price': {lv[0]}::DOUBLE, 'size': {lv[1]}::DOUBLE}}" for lv in levels
    ]
    return f"[{', '.join(items)}]::{LEVEL}[]"


def _sides() -> list[str]:
    good = ("100", "2")
    out = ["NULL", f"[]::{LEVEL}[]", _side([good, ("99", "2"), ("98", "2"), ("97", "1")])]  # 4 > 3 levels
    out += [_side([(p, s)]) for p in PRICES for s in SIZES]
    out += [_side([(a, "1"), (b, "1")]) for a, b in itertools.product(PRICES, PRICES)]
    out += [
        _side([good, None, ("101", "1")]),
        _side([None]),
        _side([("100", "1"), ("100", "1"), ("99", "1")]),
    ]
    return out


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    register_all(c)
    sides = _sides()
    rows = [
        f"({i}, {b}, {a})"
        for i, (b, a) in enumerate(itertools.product(sides, [sides[0], sides[2], sides[5]]))
    ]
    rows += [f"({len(rows) + i}, {sides[3]}, {a})" for i, a in enumerate(sides)]  # asks in every shape
    c.execute(f"CREATE TABLE book AS SELECT * FROM (VALUES {', '.join(rows)}) t(id, bids, asks)")
    return c


def test_the_kernel_flags_exactly_the_rows_the_old_rule_flags(con: duckdb.DuckDBPyConnection) -> None:
    got = con.execute(
        f"SELECT id, coalesce({OLD_RULE}, false) AS old, daedalus_levels_invalid(bids, asks, 3) AS new FROM book"
    ).fetchall()
    assert len(got) > 200
    assert [r for r in got if r[1] != r[2]] == []
    flagged = sum(r[2] for r in got)
    assert 0 < flagged < len(got)  # both verdicts occur


def test_the_kernel_verdicts(con: duckdb.DuckDBPyConnection) -> None:
    def bad(bids: str, asks: str) -> bool:
        return con.execute(f"SELECT daedalus_levels_invalid({bids}, {asks}, 3)").fetchone()[0]

    ok_asks = _side([("101", "1"), ("102", "1")])
    assert not bad(_side([("100", "1"), ("99", "0")]), ok_asks)
    assert bad(_side([("100", "1"), ("100", "1")]), ok_asks)  # not strictly decreasing
    assert bad(_side([("100", "-1")]), ok_asks)  # negative size
    assert bad(_side([("0", "1")]), ok_asks)  # price 0
    assert bad(_side([("100", "1")]), _side([("102", "1"), ("101", "1")]))  # asks decreasing
    assert not bad(_side([("100", "1"), ("NULL", "1"), ("101", "1")]), ok_asks)  # NULL skips a pair
    assert not bad("NULL", "NULL")
