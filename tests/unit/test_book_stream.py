"""The streamed rebuild (udfs/book_stream.py) equals one kernel call per connection
(register_book.rebuild_connection) whatever the batches cut, and files the same unserved rows for
silver.orderbook_unserved; through DuckDB (udfs/relations.py) it streams a query's rows."""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from daedalus.udfs import relations, unserved_memo
from daedalus.udfs.book_stream import KIND, UNSERVED_SCHEMA, rebuild_stream
from daedalus.udfs.register_book import LEVEL, rebuild_connection

BASE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
TS = pa.timestamp("us", tz="UTC")
ROW_FIELDS = [
    ("seq", pa.int64()),
    ("ts", TS),
    ("capture_ts", TS),
    ("kind", pa.string()),
    ("first_update_id", pa.int64()),
    ("last_update_id", pa.int64()),
    ("prev_update_id", pa.int64()),
    ("bids", pa.list_(LEVEL)),
    ("asks", pa.list_(LEVEL)),
    ("n_breaks", pa.int64()),
    ("sync_rule", pa.string()),
    ("invalid", pa.bool_()),
    ("hold", pa.bool_()),
]
STREAM_FIELDS = [
    ("exchange", pa.string()),
    ("symbol", pa.string()),
    ("conn_id", pa.string()),
    *ROW_FIELDS,
    ("strict", pa.bool_()),
    ("slice_start", TS),
]
PARAMS = {"max_levels": 3, "bands": [0.0, 5.0, 10.0], "staleness_s": 300.0}
COMPARED = ("seq", "ts", "capture_ts", "kind", "last_update_id", "break_before", "reason", "bids", "asks")


@st.composite
def connection(draw: Any) -> list[dict[str, Any]]:
    """One connection: loads and diff chains with gaps, regressions, stale diffs, refused levels,
    repeated seqs, held copies, break events and staleness gaps (all things carried across batches)."""
    rule = draw(st.sampled_from(["contiguous", "prev_chain", "increasing", "none"]))
    rows, uid, seq, t, breaks = [], 100, 0, 0, 0
    for _ in range(draw(st.integers(1, 50))):
        seq += draw(st.sampled_from([1, 1, 1, 1, 0]))
        t += draw(st.sampled_from([1, 1, 1, 400]))
        breaks += draw(st.sampled_from([0] * 9 + [1]))
        kind = draw(st.sampled_from(["delta"] * 8 + ["snapshot", "checkpoint"]))
        step = draw(st.sampled_from([1, 1, 1, 1, 3, 0, -5]))
        first = uid + step
        last = first + draw(st.integers(0, 3))
        n_bids = draw(st.integers(0, 4))
        rows.append(
            {
                "seq": seq,
                "ts": BASE + dt.timedelta(seconds=t),
                "capture_ts": BASE + dt.timedelta(seconds=t),
                "kind": kind,
                "first_update_id": first if kind == "delta" else None,
                "last_update_id": last if kind == "delta" else uid,
                "prev_update_id": draw(st.sampled_from([uid, uid - 1, None])) if kind == "delta" else None,
                "bids": [
                    {"price": 100.0 - draw(st.integers(0, 5)), "size": float(draw(st.integers(0, 2)))}
                    for _ in range(n_bids)
                ],
                "asks": [{"price": 101.0 + draw(st.integers(0, 5)), "size": float(draw(st.integers(0, 2)))}],
                "n_breaks": breaks,
                "sync_rule": rule,
                "invalid": draw(st.integers(0, 19)) == 0,
                "hold": draw(st.integers(0, 9)) == 0,
            }
        )
        if kind == "delta" and step > 0:
            uid = last
    return rows


def _batches(conns: list[list[dict[str, Any]]], start: dt.datetime, strict: bool, size: int) -> list[Any]:
    rows = [
        {"exchange": "x", "symbol": "A/B", "conn_id": f"c{i}", **r, "strict": strict, "slice_start": start}
        for i, c in enumerate(conns)
        for r in c
    ]
    table = pa.Table.from_pylist(rows, pa.schema(STREAM_FIELDS))
    return table.to_batches(max_chunksize=size)


@settings(max_examples=150, deadline=None)
@given(st.lists(connection(), min_size=1, max_size=3), st.integers(0, 60), st.booleans(), st.integers(1, 9))
def test_stream_equals_one_call_per_connection(
    conns: list[list[dict[str, Any]]], start: int, strict: bool, size: int
) -> None:
    # seqs apart: connections with the same rows would share one memo key
    conns = [[{**r, "seq": r["seq"] + 1000 * i} for r in c] for i, c in enumerate(conns)]
    start_dt = BASE + dt.timedelta(seconds=start)
    start_us = int(start_dt.timestamp() * 1_000_000)
    unserved_memo.clear()
    streamed = pa.Table.from_batches(
        list(rebuild_stream(iter(_batches(conns, start_dt, strict, size)), PARAMS)),
        schema=relations._KINDS[KIND][0],
    )
    edges = np.asarray(PARAMS["bands"])
    for i, rows in enumerate(conns):
        arr = pa.array(rows, pa.struct(ROW_FIELDS))
        one = rebuild_connection(arr, 3, edges, 300.0, strict, start_us)
        mine = streamed.filter(pa.compute.equal(streamed["conn_id"], f"c{i}"))
        for k in COMPARED:
            assert mine[k].to_pylist() == one[k].to_pylist(), k
        assert mine["bid_bands"].to_pylist() == one["bid_bands"].to_pylist()
    # every connection's unserved rows were filed once by the stream, and once more by the one-call
    # passes above (the same key): the unserved call takes what a replay of its own gives
    leans = [
        pa.array(rows if strict else [{**r, "bids": [], "asks": []} for r in rows], pa.struct(ROW_FIELDS))
        for rows in conns
    ]
    hits = unserved_memo.hits()
    filed = [rebuild_connection(arr, 3, edges, 300.0, strict, start_us, unserved=True) for arr in leans]
    assert unserved_memo.hits() == hits + len(conns)
    unserved_memo.clear()
    for arr, got in zip(leans, filed, strict=True):
        own = rebuild_connection(arr, 3, edges, 300.0, strict, start_us, unserved=True)
        assert {k: v.to_pylist() for k, v in got.items()} == {k: v.to_pylist() for k, v in own.items()}


def test_a_query_streams_through_duckdb() -> None:
    """A relation named in SQL (relations.relation_sql) is bound to a stream of its input query's rows
    on a cursor while the outer query runs; 40,000 rows of two connections, several batches."""
    con = duckdb.connect()
    inner = """
        SELECT 'x' AS exchange, 'A/B' AS symbol, 'c' || (i // 20000) AS conn_id, i AS seq,
            TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_seconds(i % 20000) AS ts,
            TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_seconds(i % 20000) AS capture_ts,
            CASE WHEN i % 20000 = 0 THEN 'snapshot' ELSE 'delta' END AS kind, NULL::BIGINT AS first_update_id,
            i AS last_update_id, NULL::BIGINT AS prev_update_id,
            [{'price': 100.0 - (i % 3), 'size': 1.0 + i % 2}] AS bids, [{'price': 101.0, 'size': 2.0}] AS asks,
            0::BIGINT AS n_breaks, 'increasing' AS sync_rule, false AS invalid, false AS hold, false AS strict,
            TIMESTAMPTZ '2024-01-01 00:00:10+00' AS slice_start
        FROM range(40000) r(i) ORDER BY conn_id, seq
    """
    sql = f"SELECT conn_id, count(*), sum(bids[1].size), max(len(bids)) FROM {relations.relation_sql(KIND, PARAMS, inner)} GROUP BY ALL ORDER BY 1"
    names = relations.bind(con, sql)
    try:
        got = con.execute(sql).fetchall()
    finally:
        relations.unbind(con, names)
    # rows at ts ≥ 10 s served; bids: sizes 1 or 2 at 100, 99, 98, the book keeps the last size of each
    assert [(c, n) for c, n, _, _ in got] == [("c0", 19990), ("c1", 19990)]
    assert all(lv == 3 for *_, lv in got)


def test_the_input_query_survives_comment_delimiters() -> None:
    """File globs (`**/*.parquet`), percent signs and comment marks in the input query: the compiled SQL
    still parses (the comment neither ends early nor nests) and the stream runs the query as written."""
    con = duckdb.connect()
    inner = "SELECT '**/*.parquet /* %2F */' AS s, 1 AS n"
    relations.register_kind("echo_test", pa.schema([("s", pa.string()), ("n", pa.int32())]), lambda b, p: b)
    sql = f"SELECT s, n FROM {relations.relation_sql('echo_test', {}, inner)}"
    names = relations.bind(con, sql)
    try:
        assert con.execute(sql).fetchall() == [("**/*.parquet /* %2F */", 1)]
    finally:
        relations.unbind(con, names)


def test_the_input_query_runs_with_its_kinds_settings() -> None:
    """A kind's DuckDB settings hold while its input query is planned, and are put back after (most are
    database-wide: left set, they would change the plans of every later model of the build)."""
    con = duckdb.connect()
    inner = "SELECT current_setting('disabled_optimizers') AS s"
    relations.register_kind(
        "settings_test",
        pa.schema([("s", pa.string())]),
        lambda b, p: b,
        {"disabled_optimizers": "build_side_probe_side"},
    )
    sql = f"SELECT s FROM {relations.relation_sql('settings_test', {}, inner)}"
    names = relations.bind(con, sql)
    try:
        assert con.execute(sql).fetchall() == [("build_side_probe_side",)]
    finally:
        relations.unbind(con, names)
    assert con.execute("SELECT current_setting('disabled_optimizers')").fetchone() == ("",)


def _scans(node: dict[str, Any], through_aggregates: bool = True) -> list[str]:
    """The columns of every Parquet scan whose rows reach `node` (as they are: not past an aggregate,
    unless `through_aggregates`)."""
    name = node.get("name", "")
    if not through_aggregates and ("GROUP_BY" in name or "AGGREGATE" in name):
        return []
    cols = node.get("extra_info", {}).get("Projections", []) if "PARQUET" in name else []
    out = [" ".join(cols if isinstance(cols, list) else [cols])] if cols else []
    for child in node.get("children", []):
        out.extend(_scans(child, through_aggregates))
    return out


def _hash_builds(node: dict[str, Any]) -> list[list[str]]:
    """For every hash join in a JSON plan, the Parquet scans of its build side (the right child)."""
    out = []
    if node.get("name", "").strip() == "HASH_JOIN" and len(node.get("children", [])) == 2:
        out.append(_scans(node["children"][1], through_aggregates=False))
    for child in node.get("children", []):
        out.extend(_hash_builds(child))
    return out


def test_silver_orderbooks_input_never_hashes_the_level_lists(updates_lake_config: Any) -> None:
    """silver.orderbook's streamed input (macros/book_updates.sql) joins bronze rows to their narrow
    keys: with the stream's settings every hash join builds on the keys, so the level lists only
    stream through (built on the bronze side, they held ~160 MB of a 1 h slice at the Pi profile)."""
    import json

    from daedalus.build import api
    from daedalus.udfs.book_stream import INPUT_SETTINGS

    sql = api.compile_sql(updates_lake_config, "orderbook")
    inner = next(relations._unescape(m[2]) for m in relations._MARK.findall(sql) if m[0] == KIND)
    con = duckdb.connect()
    for name, value in INPUT_SETTINGS.items():
        con.execute(f"SET {name} = '{value}'")
    relations.bind(con, inner)  # the memo it names (the fills of unstamped loads)
    plan = json.loads(con.execute(f"EXPLAIN (FORMAT json) {inner}").fetchall()[0][1])
    builds = [b for root in plan for b in _hash_builds(root)]
    assert len(builds) >= 3 and any(any("bids" in s for s in scans) for scans in [_scans(p) for p in plan])
    assert not [s for scans in builds for s in scans if "bids" in s or "asks" in s]


def _one_connection(n: int) -> list[dict[str, Any]]:
    """A load, then diffs of which the third skips ids (a gap: unserved rows)."""
    rows = []
    for i in range(n):
        first = 100 + i + (5 if i >= 3 else 0)
        rows.append(
            {
                "seq": i,
                "ts": BASE + dt.timedelta(seconds=i),
                "capture_ts": BASE + dt.timedelta(seconds=i),
                "kind": "snapshot" if i == 0 else "delta",
                "first_update_id": None if i == 0 else first,
                "last_update_id": 100 if i == 0 else first,
                "prev_update_id": None,
                "bids": [{"price": 100.0, "size": 1.0}],
                "asks": [{"price": 101.0, "size": 1.0}],
                "n_breaks": 0,
                "sync_rule": "contiguous",
                "invalid": False,
                "hold": False,
            }
        )
    return rows


def test_a_finished_stream_files_its_slice_unless_a_connection_mixes_named_and_unnamed_rows() -> None:
    params = {**PARAMS, relations.RELATION: "rel", relations.SOURCES: "files"}
    for unnamed, filed in (([True] * 8, True), ([False] * 8, True), ([False] * 4 + [True] * 4, False)):
        unserved_memo.clear()
        table = pa.Table.from_batches(_batches([_one_connection(8)], BASE, False, 3))
        table = table.append_column("unnamed", pa.array(unnamed))
        out = list(rebuild_stream(iter(table.to_batches(max_chunksize=3)), params))
        assert sum(b.num_rows for b in out) > 0
        got = unserved_memo.take_slice("rel/files")
        assert (got is not None) == filed
        if filed:
            assert got["seq"].to_pylist() == [3, 4, 5, 6, 7]
            assert got["reason"].to_pylist() == ["update_id_gap"] + ["no_book"] * 4
            assert got["conn_id"].to_pylist() == ["c0"] * 5 and got.schema == UNSERVED_SCHEMA
    # without the relation's name (not identified) or its files' stamp (a remote lake): nothing filed
    unserved_memo.clear()
    list(
        rebuild_stream(
            iter(_batches([_one_connection(8)], BASE, False, 3)), {**PARAMS, relations.SOURCES: None}
        )
    )
    assert unserved_memo.pending() == 1  # the connection's own entry only
    unserved_memo.clear()
