"""A table relation (udfs/relations.py `table_sql`): a result one query reads several times, made by a
statement of its own before the query (so what made it is freed first) and dropped after it."""

from __future__ import annotations

from typing import Any

import duckdb
import pytest

from daedalus.udfs import relations


def _tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]


def _setting(con: duckdb.DuckDBPyConnection, name: str) -> Any:
    return con.execute(f"SELECT current_setting('{name}')").fetchone()[0]


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    c.execute("SET threads = 1")
    c.execute("SET preserve_insertion_order = false")  # as a build's connection (daedalus/duck.py)
    yield c
    c.close()


def test_made_before_the_query_read_in_its_order_and_dropped_after(con: duckdb.DuckDBPyConnection) -> None:
    n = 300_000
    table = relations.table_sql(f"SELECT i, (i * 7919) % {n} AS k FROM range({n}) r(i) ORDER BY k DESC")
    sql = f"WITH t AS NOT MATERIALIZED (SELECT * FROM {table}) SELECT (SELECT list(k) FROM t), (SELECT count(*) FROM t)"
    names = relations.bind(con, sql)
    try:
        assert names and names[0] in _tables(con)  # made before the query runs
        assert not _setting(con, "preserve_insertion_order")  # put back once made
        keys, count = con.execute(sql).fetchone()
    finally:
        relations.unbind(con, names)
    # the scan gives the rows in the ORDER BY of the table's query (one thread)
    assert count == n and keys == list(range(n - 1, -1, -1))
    assert _tables(con) == []


def test_a_failing_table_leaves_nothing_bound(con: duckdb.DuckDBPyConnection) -> None:
    good = relations.table_sql("SELECT 1 AS x")
    bad = relations.table_sql("SELECT * FROM no_such_table")
    with pytest.raises(duckdb.CatalogException):
        relations.bind(con, f"SELECT * FROM {good} UNION ALL SELECT * FROM {bad}")
    assert _tables(con) == []
    assert not _setting(con, "preserve_insertion_order")


def test_the_bars_base_is_one_table_read_by_every_rollup(updates_lake_config: Any) -> None:
    """gold.orderbook_bars' 1 s base bars: a table, made (and the hash table and sort that made it freed)
    before the rollups and the final sort run; a MATERIALIZED CTE kept those until the query ended
    (24 h day, Pi profile: +20 MB peak)."""
    import re

    from daedalus.build import api

    sql = api.compile_sql(updates_lake_config, "orderbook_bars")
    assert len(re.findall(r"/\*daedalus:relation table ", sql)) == 1
    assert re.search(r"\bbase AS NOT MATERIALIZED\b", sql)
    assert not re.search(r"(?<!NOT )MATERIALIZED \(", sql)
