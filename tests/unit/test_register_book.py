"""`daedalus_book_rebuild` through DuckDB: one list per connection in, lists out; break_before from
restarts, break events (n_breaks) and staleness, by hand; more than 2,048 output rows."""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from daedalus.udfs import unserved_memo
from daedalus.udfs.kernels.book import CHECKPOINT_MISMATCH, OK, REASONS, place_breaks
from daedalus.udfs.register import register_all
from daedalus.udfs.register_book import LEVEL, rebuild_connection

BASE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
ROWS_TYPE = pa.struct(
    [
        ("seq", pa.int64()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("capture_ts", pa.timestamp("us", tz="UTC")),
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
)
QUERY = """
WITH r AS (
    SELECT conn, list({'seq': i, 'ts': TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_seconds(t), 'capture_ts':
                       TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_seconds(t), 'kind': kind, 'first_update_id': uid,
                       'last_update_id': uid, 'prev_update_id': NULL::BIGINT, 'bids': bids, 'asks': asks,
                       'n_breaks': nb, 'sync_rule': 'contiguous', 'invalid': false, 'hold': false} ORDER BY i) AS rows
    FROM (
        SELECT c AS conn, i, i * 0.1 + CASE WHEN i >= 3000 THEN 400 ELSE 0 END AS t,
            CASE WHEN i = 0 THEN 'snapshot' ELSE 'delta' END AS kind, 100 + i AS uid,
            CASE WHEN i = 0 THEN [{'price': 100.0, 'size': 1.0}, {'price': 90.0, 'size': 1.0}]
                 ELSE [{'price': 99.0, 'size': (i % 7 + 1)::DOUBLE}] END AS bids,
            CASE WHEN i = 0 THEN [{'price': 101.0, 'size': 1.0}, {'price': 111.0, 'size': 1.0}] ELSE [] END AS asks,
            CASE WHEN i >= 2000 THEN 1 ELSE 0 END AS nb
        FROM range(2) c(c), range(3500) s(i)
    )
    GROUP BY conn
)
SELECT conn, unnest(x.seq) AS seq, unnest(x.emit) AS emit, unnest(x.break_before) AS brk, unnest(x.reason) AS reason,
       unnest(x.bids)[2].size AS bid2, unnest(x.bid_bands)[1] AS b05
FROM (SELECT conn, daedalus_book_rebuild(rows, 5, [0, 5, 10]::DOUBLE[], 300::DOUBLE, false,
                                         TIMESTAMPTZ '2024-01-01 00:00:00+00', false) AS x FROM r)
ORDER BY conn, seq
"""


def test_rebuild_through_duckdb_two_connections() -> None:
    con = duckdb.connect()
    register_all(con)
    register_all(con)  # idempotent
    rows = con.execute(QUERY).fetchall()
    assert len(rows) == 7000  # every input row comes back, across several vectors
    for c in (0, 1):
        mine = [r for r in rows if r[0] == c]
        assert all(r[2] for r in mine)
        # breaks: the snapshot, the first row after n_breaks grew (2000), the first after a 400 s gap (3000)
        assert [r[1] for r in mine if r[3]] == [0, 2000, 3000]
        assert mine[0][4] == "snapshot" and mine[2000][4] == ""
        assert mine[10][5] == 10 % 7 + 1  # level 99 took the delta's size
        # mid 100.5: bid 100 is 49.8 bps away, 99 is 149 bps: band 0–5 is empty, and visible (the
        # deepest bid, 90, lies beyond it)
        assert mine[10][6] == 0.0


def test_rows_before_start_are_replayed_but_not_returned() -> None:
    con = duckdb.connect()
    register_all(con)
    q = QUERY.replace(
        "TIMESTAMPTZ '2024-01-01 00:00:00+00', false) AS x",
        "TIMESTAMPTZ '2024-01-01 00:05:00+00', false) AS x",
    )
    rows = con.execute(q).fetchall()
    # 300 s at 0.1 s a row: rows 0…2999 are before the start; the break at 3000 (400 s gap) still shows
    assert len(rows) == 2 * 500 and rows[0][1] == 3000 and rows[0][3] and not rows[1][3]
    assert rows[1][5] == 3001 % 7 + 1


def test_breaks_move_from_checkpoints_to_the_next_served_row() -> None:
    emit = np.array([True, False, True, True, True, False, True])
    applied = np.array([True, True, True, True, True, True, True])
    restart = np.array([True, False, False, False, False, True, False])
    reason = np.array([1, OK, OK, OK, OK, CHECKPOINT_MISMATCH, OK], np.int8)
    ts = np.array([0, 1, 2, 500_000_000, 500_000_001, 500_000_002, 500_000_003])
    n = np.array([0, 5, 5, 5, 6, 6, 6])
    # row 1 (a checkpoint) saw n grow: row 2 breaks; row 3: 500 s after row 2; row 4: one more
    # event; row 5's mismatch lands on row 6 with its reason
    flags, why = place_breaks(emit, applied, restart, reason, ts, n, np.int64(300_000_000), False)
    assert flags.tolist() == [True, False, True, True, True, False, True]
    assert [REASONS[w] for w in why] == ["series_start", "", "", "", "", "", "checkpoint_mismatch"]
    # a slice's anchor checkpoint (row 0, before the slice) is no series start
    anchored = place_breaks(
        np.array([False, True]),
        np.array([True, True]),
        np.array([False, False]),
        np.zeros(2, np.int8),
        np.array([0, 1]),
        np.zeros(2, np.int64),
        np.int64(300_000_000),
        True,
    )
    assert anchored[0].tolist() == [False, False]


def test_unserved_mode_returns_the_messages_not_served_with_their_reason() -> None:
    con = duckdb.connect()
    register_all(con)
    rows = con.execute("""
        WITH r AS (SELECT list({'seq': i, 'ts': TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_seconds(i),
                'capture_ts': TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_seconds(i), 'kind': k,
                'first_update_id': f, 'last_update_id': u, 'prev_update_id': p,
                'bids': [{'price': 100.0, 'size': 1.0}], 'asks': [{'price': 101.0, 'size': 1.0}],
                'n_breaks': 0, 'sync_rule': NULL, 'invalid': i = 5, 'hold': false} ORDER BY i) AS rows
            FROM (VALUES (0, 'snapshot', NULL, 10, NULL), (1, 'delta', 5, 9, 4), (2, 'delta', 8, 12, 7),
                         (3, 'checkpoint', NULL, 12, NULL), (4, 'delta', 20, 25, 13), (5, 'delta', 26, 26, 25),
                         (6, 'delta', 27, 27, 26)) v(i, k, f, u, p))
        SELECT unnest(x.seq), unnest(x.kind), unnest(x.reason), unnest(x.emit)
        FROM (SELECT daedalus_book_rebuild(rows, 5, [0, 5]::DOUBLE[], 300::DOUBLE, false,
                                           TIMESTAMPTZ '2024-01-01 00:00:00+00', true) AS x FROM r)
    """).fetchall()
    # inferred prev_chain (the deltas carry pu); 4: pu 13 ≠ 12; 5: refused levels; 6: no book
    assert rows == [
        (1, "delta", "stale", False),
        (4, "delta", "update_id_gap", False),
        (5, "delta", "invalid_levels", False),
        (6, "delta", "no_book", False),
    ]


@st.composite
def chains(draw: Any) -> list[dict[str, Any]]:
    """One connection: loads, and diff chains of a random rule with random gaps, regressions,
    stale diffs, refused levels, repeated seqs and held (cross-connection) copies."""
    rule = draw(st.sampled_from([None, "contiguous", "prev_chain", "increasing", "none"]))
    rows, uid, seq = [], 100, 0
    for i in range(draw(st.integers(1, 60))):
        seq += draw(st.sampled_from([1, 1, 1, 1, 0]))
        kind = draw(st.sampled_from(["delta"] * 10 + ["snapshot", "checkpoint"]))
        step = draw(st.sampled_from([1, 1, 1, 1, 3, 0, -5]))
        first = uid + step
        last = first + draw(st.integers(0, 3))
        rows.append(
            {
                "seq": seq,
                "ts": BASE + dt.timedelta(seconds=i),
                "capture_ts": BASE + dt.timedelta(seconds=i),
                "kind": kind,
                "first_update_id": first if kind == "delta" else None,
                "last_update_id": last if kind == "delta" else uid,
                "prev_update_id": draw(st.sampled_from([uid, uid, uid - 1, None]))
                if kind == "delta"
                else None,
                "bids": [{"price": 100.0 - draw(st.integers(0, 3)), "size": float(draw(st.integers(0, 2)))}],
                "asks": [{"price": 101.0 + draw(st.integers(0, 3)), "size": float(draw(st.integers(0, 2)))}],
                "n_breaks": 0,
                "sync_rule": rule,
                "invalid": draw(st.integers(0, 19)) == 0,
                "hold": draw(st.integers(0, 9)) == 0,
            }
        )
        if kind == "delta" and step > 0:
            uid = last
    return rows


@settings(max_examples=200, deadline=None)
@given(chains(), st.integers(0, 30))
def test_served_plus_unserved_is_every_message_from_the_slice_start(
    rows: list[dict[str, Any]], start: int
) -> None:
    arr = pa.array(rows, ROWS_TYPE)
    start_us = int((BASE + dt.timedelta(seconds=start)).timestamp() * 1_000_000)
    edges = np.array([0.0, 5.0, 10.0])
    served = rebuild_connection(arr, 5, edges, 300.0, False, start_us)
    unserved = rebuild_connection(arr, 5, edges, 300.0, False, start_us, unserved=True)
    messages = [
        (r["seq"], r["kind"])
        for r in rows
        if r["kind"] != "checkpoint" and r["ts"] >= BASE + dt.timedelta(seconds=start)
    ]
    got = sorted(zip(served["seq"].to_pylist(), served["kind"].to_pylist(), strict=True)) + sorted(
        zip(unserved["seq"].to_pylist(), unserved["kind"].to_pylist(), strict=True)
    )
    assert sorted(got) == sorted(messages)
    assert "checkpoint" not in served["kind"].to_pylist()
    assert all(unserved["reason"].to_pylist())  # every message not served has its reason
    assert not any(
        served["reason"].to_pylist()[i] for i, b in enumerate(served["break_before"].to_pylist()) if not b
    )


@settings(max_examples=150, deadline=None)
@given(chains(), st.integers(0, 30), st.booleans())
def test_unserved_from_the_served_pass_equal_a_replay_of_their_own(
    rows: list[dict[str, Any]], start: int, strict: bool
) -> None:
    """silver.orderbook_unserved hands the kernel the rows without levels (unless deletes are strict):
    what the served pass filed for it equals the unserved call's own replay, value for value."""
    start_us = int((BASE + dt.timedelta(seconds=start)).timestamp() * 1_000_000)
    edges = np.array([0.0, 5.0, 10.0])
    lean = rows if strict else [{**r, "bids": [], "asks": []} for r in rows]
    unserved_memo.clear()
    replayed = rebuild_connection(pa.array(lean, ROWS_TYPE), 5, edges, 300.0, strict, start_us, unserved=True)
    assert unserved_memo.held() == 0  # an unserved call files nothing
    rebuild_connection(pa.array(rows, ROWS_TYPE), 5, edges, 300.0, strict, start_us)
    assert unserved_memo.held() == len(replayed["seq"])
    if len(replayed["seq"]):
        # a different slice start, or other ids, is another key: not served from the memo
        other = [{**r, "last_update_id": (r["last_update_id"] or 0) + 1} for r in lean]
        rebuild_connection(pa.array(other, ROWS_TYPE), 5, edges, 300.0, strict, start_us, unserved=True)
        assert unserved_memo.held() == len(replayed["seq"])
    from_memo = rebuild_connection(
        pa.array(lean, ROWS_TYPE), 5, edges, 300.0, strict, start_us, unserved=True
    )
    assert unserved_memo.held() == 0  # taken once
    assert {k: v.to_pylist() for k, v in from_memo.items()} == {k: v.to_pylist() for k, v in replayed.items()}
