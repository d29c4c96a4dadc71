"""A memo relation (udfs/relations.py `memo_sql`): a small result every time slice of a day asks for
alike is computed once per text, until the build drops it."""

from __future__ import annotations

import re
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from daedalus.udfs import relations


@pytest.fixture
def counted() -> tuple[duckdb.DuckDBPyConnection, list[int]]:
    """A connection with `counted(x)`: x, and one more in the list each time DuckDB calls it."""
    con, calls = duckdb.connect(), [0]

    def bump(x: pa.Array) -> pa.Array:
        calls[0] += 1
        return x

    con.create_function("counted", bump, ["BIGINT"], "BIGINT", type="arrow")
    yield con, calls


def _run(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]]:
    names = relations.bind(con, sql)
    try:
        return con.execute(sql).fetchall()
    finally:
        relations.unbind(con, names)


def test_the_same_text_runs_once_until_forgotten(counted: Any) -> None:
    con, calls = counted
    memo = relations.memo_sql("SELECT counted(i) AS v FROM range(3) r(i)")
    sql = f"SELECT sum(v) FROM {memo}"
    assert _run(con, sql) == [(3,)] and calls[0] == 1
    assert _run(con, f"SELECT max(v) FROM {memo}") == [(2,)] and calls[0] == 1  # another query, same memo
    other = relations.memo_sql("SELECT counted(i) + 1 AS v FROM range(3) r(i)")
    assert _run(con, f"SELECT sum(v) FROM {other}") == [(6,)] and calls[0] == 2  # another text runs
    relations.drop_memos(con)
    assert _run(con, sql) == [(3,)] and calls[0] == 3
    # a cursor (a streamed relation's input runs on one) sees the table its database holds
    assert _run(con.cursor(), sql) == [(3,)] and calls[0] == 3


def test_a_memo_inside_a_streamed_relations_input(counted: Any) -> None:
    """The input query of a streamed relation may name a memo: it is bound on the stream's cursor."""
    con, calls = counted
    relations.register_kind("memo_echo_test", pa.schema([("v", pa.int64())]), lambda b, p: b)
    inner = f"SELECT v FROM {relations.memo_sql('SELECT counted(i) AS v FROM range(4) r(i)')} ORDER BY v"
    sql = f"SELECT list(v ORDER BY v) FROM {relations.relation_sql('memo_echo_test', {}, inner)}"
    assert _run(con, sql) == [([0, 1, 2, 3],)] and _run(con, sql) == [([0, 1, 2, 3],)]
    assert calls[0] == 1


def test_every_slice_of_a_day_names_the_same_fills_memo(updates_lake_config: Any) -> None:
    """The fills of unstamped book loads (macros/book_updates.sql) scan whole receive days: their text
    must not depend on the slice, or each slice of the day scans them again (24 × a day's scan at
    1 h slices). Slices 4..23 of a day name one memo; the first ones reach into the day before, the last into the next."""
    from daedalus.build import api

    memo = re.compile(r"\*/ (__daedalus_rel_memo_\w+)")
    for model in ("orderbook", "orderbook_unserved"):
        names = {
            n
            for k in (4, 12, 23)
            for n in memo.findall(api.compile_sql(updates_lake_config, model, slice_no=k))
        }
        assert len(names) == 1, model
    assert memo.findall(api.compile_sql(updates_lake_config, "orderbook", slice_no=1))[0] not in names


def test_a_streamed_relation_hands_memory_back_once_done(counted: Any, monkeypatch: Any) -> None:
    """What a producer held is freed on a DuckDB thread's arena: the stream trims once it is through."""
    con, _ = counted
    events: list[str] = []

    def producer(batches: Any, params: Any) -> Any:
        for b in batches:
            events.append("batch")
            yield b
        events.append("done")

    monkeypatch.setattr(relations, "release_memory", lambda: events.append("release"))
    relations.register_kind("release_test", pa.schema([("v", pa.int64())]), producer)
    sql = (
        f"SELECT sum(v) FROM {relations.relation_sql('release_test', {}, 'SELECT i AS v FROM range(5) r(i)')}"
    )
    assert _run(con, sql) == [(10,)]
    assert events[-2:] == ["done", "release"] and events.count("release") == 1


def test_a_sources_stamp_follows_the_files(tmp_path: Any) -> None:
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    for p in (a, b):
        duckdb.sql(f"COPY (SELECT 1 AS x) TO '{p}' (FORMAT parquet)")
    sql = f"SELECT * FROM read_parquet(['{a}', '{b}'])"
    stamp = relations.sources_stamp(sql)
    assert stamp is not None and stamp == relations.sources_stamp(f"SELECT 1 FROM '{b}' UNION ALL FROM '{a}'")
    duckdb.sql(f"COPY (SELECT 2 AS x, 3 AS y) TO '{b}' (FORMAT parquet)")  # rewritten in place
    assert relations.sources_stamp(sql) not in (None, stamp)
    assert relations.sources_stamp(f"SELECT * FROM '{tmp_path}/gone.parquet'") is None


def test_an_identified_producer_that_answers_alone_never_runs_its_input(counted: Any) -> None:
    con, calls = counted

    def answer(batches: Any, params: dict[str, Any]) -> Any:
        assert params[relations.RELATION].startswith("__daedalus_rel_answer_")
        yield pa.record_batch([pa.array([7], pa.int64())], names=["v"])

    relations.register_kind("answer", pa.schema([("v", pa.int64())]), answer, identify=True)
    sql = f"SELECT v FROM {relations.relation_sql('answer', {}, 'SELECT counted(i) AS v FROM range(3) r(i)')}"
    assert _run(con, sql) == [(7,)] and calls[0] == 0


@pytest.mark.parametrize("threads", [1, 2])
def test_with_one_thread_a_streamed_relation_runs_in_step_on_the_querys_thread(threads: int) -> None:
    """threads = 1 (the Pi profile): DuckDB pulls the relation's batches itself, on the query's thread,
    one when it needs one; with more threads the relation stays a pyarrow reader (a Scanner pulls it on
    an Arrow thread of its own, ahead of the query)."""
    import threading

    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    seen: list[int] = []

    def producer(batches: Any, params: Any) -> Any:
        for b in batches:
            seen.append(threading.get_ident())
            yield b

    relations.register_kind("thread_test", pa.schema([("v", pa.int64())]), producer)
    inner = "SELECT i AS v FROM range(200000) r(i)"
    sql = f"SELECT sum(v) FROM {relations.relation_sql('thread_test', {}, inner)}"
    assert _run(con, sql) == [(199999 * 200000 // 2,)]
    assert len(seen) > 1
    assert (set(seen) == {threading.get_ident()}) == (threads == 1)


def test_a_kind_sets_its_input_batch_rows() -> None:
    """A producer gets its input in batches of its kind's `batch_rows` (the relations' 16,384 unless
    set); the order-book rebuild asks for 4,096: its rows out are served books, much wider than a delta."""
    from daedalus.udfs import book_stream

    sizes: list[int] = []

    def producer(batches: Any, params: Any) -> Any:
        for b in batches:
            sizes.append(b.num_rows)
            yield b

    con = duckdb.connect()
    schema = pa.schema([("v", pa.int64())])
    inner = "SELECT i AS v FROM range(40000) r(i) ORDER BY v"
    for kind, rows in (("batch_default_test", None), ("batch_small_test", 1000)):
        extra = {} if rows is None else {"batch_rows": rows}
        relations.register_kind(kind, schema, producer, **extra)
        sizes.clear()
        assert _run(con, f"SELECT count(*), sum(v) FROM {relations.relation_sql(kind, {}, inner)}") == [
            (40000, 40000 * 39999 // 2)
        ]
        assert max(sizes) == (rows or relations.BATCH_ROWS) and sum(sizes) == 40000, (kind, sizes[:3])
    assert relations._KINDS[book_stream.KIND][4] == book_stream.INPUT_BATCH_ROWS == 4096
    assert relations._KINDS[book_stream.UNSERVED_KIND][4] == 4096
