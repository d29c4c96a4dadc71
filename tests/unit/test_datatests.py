"""Each data test kind as SQL over a real DuckDB relation."""

from __future__ import annotations

import duckdb
import pytest

from daedalus.build.datatests import KINDS, ROW_CONDITIONS, TestResult, _fmt_row, _merge, raise_on_failure
from daedalus.errors import BuildError

REL = """(SELECT * FROM (VALUES
    ('x', 'A', 1, 10.0, 'buy'), ('x', 'A', 2, 11.0, 'sell'), ('x', 'A', 3, 9.0, 'buy'),
    ('x', 'B', 1, 5.0, 'buy'), ('x', 'B', 1, 6.0, NULL)) t(ex, sym, ts, price, side))"""


def count(kind: str, args: dict) -> int:
    return duckdb.sql(f"SELECT count(*) FROM ({KINDS[kind](REL, args)})").fetchone()[0]


@pytest.mark.parametrize(
    ("kind", "args", "n"),
    [
        ("not_null", {"column": "side"}, 1),
        ("not_null", {"column": "price"}, 0),
        ("unique", {"column": "ts"}, 1),  # ts 1 twice (A and B... and B twice): groups with >1 rows
        ("unique", {"columns": ["sym", "ts"]}, 1),
        ("unique", {"columns": ["sym", "ts", "price"]}, 0),
        ("accepted_values", {"column": "side", "values": ["buy", "sell"]}, 1),  # NULL is not a value
        ("accepted_values", {"column": "side", "values": ["buy", "sell"], "allow_null": True}, 0),
        ("accepted_values", {"column": "side", "values": ["buy"]}, 2),  # groups: sell and NULL
        ("accepted_range", {"column": "price", "min_value": 5, "max_value": 11}, 0),
        ("accepted_range", {"column": "price", "min_value": 5, "inclusive": False}, 1),
        ("accepted_range", {"column": "price", "max_value": 10}, 1),
        ("monotonic", {"column": "price", "partition_by": ["sym"], "order_by": ["ts"]}, 1),
        ("monotonic", {"column": "ts", "partition_by": ["ex", "sym"], "order_by": ["ts"]}, 0),
        ("monotonic", {"column": "ts", "partition_by": ["sym"], "order_by": ["ts"], "strict": True}, 1),
    ],
)
def test_kinds(kind, args, n):
    assert count(kind, args) == n


@pytest.mark.parametrize("columns", [["k"], ["s", "k"], ["s"]])
def test_unique_over_files_finds_what_a_plain_group_by_finds(tmp_path, columns):
    # over files the keys are grouped only where their hash repeats: same groups, counts and NULL keys
    path = tmp_path / "t.parquet"
    duckdb.sql(
        "COPY (SELECT CASE WHEN i % 97 = 0 THEN NULL ELSE i % 50000 END AS k, "
        "CASE WHEN i % 89 = 0 THEN NULL ELSE (i % 3)::VARCHAR END AS s FROM range(120000) r(i)) "
        f"TO '{path}' (FORMAT parquet)"
    )
    rel = f"read_parquet(['{path}'])"
    sql = KINDS["unique"](rel, {"columns": columns})
    assert "hash(" in sql
    cols = ", ".join(columns)
    plain = f"SELECT {cols}, count(*) AS n_rows FROM {rel} GROUP BY ALL HAVING count(*) > 1"
    got, want = (duckdb.sql(f"SELECT * FROM ({q}) ORDER BY ALL").fetchall() for q in (sql, plain))
    assert want and got == want


@pytest.mark.parametrize(
    ("value", "args", "n"),
    [
        ("'nan'", {"min_value": 0}, 1),  # DuckDB sorts NaN above every number: `< 0` alone passes it
        ("'inf'", {"min_value": 0}, 1),
        ("'-inf'", {"max_value": 0}, 1),
        ("'nan'", {"min_value": 0, "max_value": 1}, 1),
        ("'1e12'", {"min_value": 0}, 0),
        ("NULL", {"min_value": 0}, 0),  # NULL is not_null's business
    ],
)
def test_accepted_range_fails_on_nan_and_inf(value, args, n):
    rel = f"(SELECT {value}::DOUBLE AS price)"
    assert (
        duckdb.sql(
            f"SELECT count(*) FROM ({KINDS['accepted_range'](rel, {'column': 'price', **args})})"
        ).fetchone()[0]
        == n
    )


def test_failure_message_names_model_test_and_rows():
    r = TestResult("trades", "not_null(side)", False, 2, [{"side": None, "ts": 1}], where="t.yml:4")
    with pytest.raises(BuildError) as e:
        raise_on_failure([r])
    assert str(e.value) == (
        "t.yml:4: data test not_null(side) failed on model 'trades': 2 offending row(s), "
        "e.g. {side=None, ts=1}"
    )
    raise_on_failure([TestResult("t", "x", False, 1, [], severity="warn")])  # a warning does not fail
    assert _fmt_row({"a": 1}) == "{a=1}"


def test_shared_scan_counts_equal_each_test_alone():
    """Row-condition tests run as one scan (count(*) FILTER per test): each count must equal the
    offending rows of that test's own query."""
    cases = [
        ("not_null", {"column": "side"}),
        ("not_null", {"column": "price"}),
        ("accepted_range", {"column": "price", "min_value": 5, "inclusive": False}),
        ("accepted_range", {"column": "price", "max_value": 10}),
        ("accepted_range", {"column": "price", "min_value": 5, "max_value": 11}),
    ]
    filters = ", ".join(f"count(*) FILTER (WHERE {ROW_CONDITIONS[k](a)})" for k, a in cases)
    shared = duckdb.sql(f"SELECT {filters} FROM {REL}").fetchone()
    assert list(shared) == [count(k, a) for k, a in cases] == [1, 0, 1, 1, 0]


def test_results_of_partitions_merge_into_one_verdict():
    ok = TestResult("m", "unique(k)", True, 0, [], where="m.yml:3", sql="q1")
    bad1 = TestResult("m", "unique(k)", False, 2, [{"k": 1}, {"k": 2}], where="m.yml:3", sql="q2")
    bad2 = TestResult("m", "unique(k)", False, 4, [{"k": i} for i in range(3, 7)], where="m.yml:3", sql="q3")
    merged = _merge([ok, bad1, bad2])
    assert (merged.passed, merged.failures, merged.sql) == (False, 6, "q2")
    assert merged.sample == [{"k": i} for i in range(1, 6)]  # the first SAMPLE_ROWS of the failing ones
    assert _merge([ok, ok]).passed and _merge([ok, ok]).failures == 0


def test_monotonic_of_one_series_needs_no_partition(tmp_path):
    """With one value of partition_by in the files (a partition of one series), the window runs
    unpartitioned: the same offending rows, at half the memory (a 24 h orderbook_hf day)."""
    from daedalus.build.datatests import ONE_SERIES, _one_series

    path = tmp_path / "t.parquet"
    duckdb.sql(
        "COPY (SELECT 'x' AS ex, 'A' AS sym, CASE WHEN i IN (7, 500) THEN i - 3 ELSE i END AS ts "
        f"FROM range(1000) r(i)) TO '{path}' (FORMAT parquet)"
    )
    rel = f"read_parquet(['{path}'], file_row_number=true)"
    args = {"column": "ts", "partition_by": ["ex", "sym"]}
    plain, one = KINDS["monotonic"](rel, args), KINDS["monotonic"](rel, {**args, ONE_SERIES: True})
    assert "PARTITION BY" in plain and "PARTITION BY" not in one
    got, want = (duckdb.sql(f"SELECT * FROM ({q}) ORDER BY ALL").fetchall() for q in (one, plain))
    assert len(want) == 2 and got == want

    class R:  # the renderer's con(sql)
        con = staticmethod(lambda sql: duckdb.default_connection())

    assert _one_series(R(), rel, ["ex", "sym"])
    two = f"(SELECT ex, sym FROM {rel} UNION ALL SELECT 'x', 'B')"
    assert duckdb.sql(f"SELECT count(*) FROM {two}").fetchone()[0] == 1001
    assert not _one_series(R(), two, ["ex", "sym"])
    assert _one_series(R(), "(SELECT NULL AS ex FROM range(3))", ["ex"])  # NULLs are one value
