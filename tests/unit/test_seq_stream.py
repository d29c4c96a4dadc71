"""The streamed sequential columns (udfs/seq_stream.py) equal one whole-series call of
`daedalus_orderbook_seq_books` (register.py `orderbook_seq_udf`), bit for bit, whatever the chunk size
and the input batches: series with breaks, crossed rows, gaps over the staleness span, snapshots and
trades sharing timestamps, break counts that step back, VPIN points before and inside the series."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daedalus.udfs import seq_stream
from daedalus.udfs.arrow_io import TS
from daedalus.udfs.columns import SEQUENTIAL
from daedalus.udfs.register import orderbook_seq_udf
from daedalus.udfs.register_book import LEVEL
from daedalus.udfs.series import SeqParams

BASE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
# short windows, so a series of a few dozen rows spans many lookbacks (lookback 9 s)
PARAMS = SeqParams(
    horizons=[2, 5],
    max_state_staleness_seconds=3.0,
    ofi_levels=2,
    kyle_lambda_window=6,
    spread_regime_window=4,
)
BOOK_TYPE = pa.struct(
    [
        ("ts", TS),
        ("seq", pa.int64()),
        ("crossed", pa.bool_()),
        ("break_before", pa.bool_()),
        ("mid", pa.float64()),
        ("spread", pa.float64()),
        ("bids", pa.list_(LEVEL)),
        ("asks", pa.list_(LEVEL)),
        ("trade_breaks", pa.int64()),
    ]
)
TRADE_TYPE = pa.struct([("ts", TS), ("buy", pa.float64()), ("sell", pa.float64()), ("breaks", pa.int64())])
POINT_TYPE = pa.struct([("ts", TS), ("vpin", pa.float64())])
STREAM = pa.schema(
    [("exchange", pa.string()), ("symbol", pa.string()), ("ts", TS), ("tag", pa.int32())]
    + [(f.name, f.type) for f in BOOK_TYPE if f.name != "ts"]
    + [("buy", pa.float64()), ("sell", pa.float64()), ("breaks", pa.int64()), ("vpin", pa.float64())]
)


def _at(us: int) -> dt.datetime:
    return BASE + dt.timedelta(microseconds=us)


@st.composite
def series(draw: Any) -> tuple[list[dict], list[dict], list[dict], int]:
    """(book rows, trades, VPIN points, slice start in µs), each kind in its whole-series order."""
    books, t, q_breaks = [], 0, 0
    for seq in range(1, draw(st.integers(1, 80)) + 1):
        t += draw(st.sampled_from([0, 0, 250_000, 500_000, 1_000_000, 1_000_000, 4_000_000]))
        q_breaks = max(0, q_breaks + draw(st.sampled_from([0] * 8 + [1, -1])))
        bid = 100.0 - draw(st.integers(0, 3))
        ask = bid + draw(st.sampled_from([1.0, 1.0, 2.0, -1.0]))  # -1: a crossed book
        bids = [
            {"price": bid - k, "size": float(draw(st.integers(0, 3)))} for k in range(draw(st.integers(0, 3)))
        ]
        asks = [
            {"price": ask + k, "size": float(draw(st.integers(1, 3)))} for k in range(draw(st.integers(1, 3)))
        ]
        mid = (bids[0]["price"] + asks[0]["price"]) / 2 if bids else None
        books.append(
            {
                "ts": _at(t),
                "seq": seq if draw(st.integers(0, 9)) else None,
                "crossed": bool(bids) and bids[0]["price"] >= asks[0]["price"],
                "break_before": draw(st.integers(0, 14)) == 0,
                "mid": mid,
                "spread": asks[0]["price"] - bids[0]["price"] if bids else None,
                "bids": bids,
                "asks": asks,
                "trade_breaks": q_breaks if draw(st.integers(0, 19)) else None,
            }
        )
    snap_us = sorted({int((b["ts"] - BASE) / dt.timedelta(microseconds=1)) for b in books})
    trades, t_breaks = [], 0
    for _ in range(draw(st.integers(0, 120))):
        # at a snapshot's ts (a tie) or anywhere around the series
        at = (
            draw(st.sampled_from(snap_us))
            if draw(st.booleans())
            else draw(st.integers(-2_000_000, t + 2_000_000))
        )
        t_breaks = max(0, t_breaks + draw(st.sampled_from([0] * 8 + [1, -1])))
        side = draw(st.booleans())
        size = float(draw(st.integers(1, 5))) / 4
        trades.append(
            {"ts": _at(at), "buy": size if side else 0.0, "sell": 0.0 if side else size, "breaks": t_breaks}
        )
    trades.sort(key=lambda r: r["ts"])  # stable: the drawn order breaks ties, as trade ids would
    points = []
    for _ in range(draw(st.integers(0, 12))):
        at = draw(st.sampled_from(snap_us)) if draw(st.booleans()) else draw(st.integers(-30_000_000, t))
        points.append({"ts": _at(at), "vpin": draw(st.sampled_from([None, 0.25, 0.5, 0.75]))})
    points.sort(key=lambda r: r["ts"])
    start = draw(st.sampled_from([0, *snap_us, t // 2, t + 1]))
    return books, trades, points, start


def whole(books: list[dict], trades: list[dict], points: list[dict], start: int) -> dict[str, list]:
    """One call of the UDF over the whole series, the rows with ts ≥ start, per output column."""
    params = pa.array([PARAMS.model_dump()])
    r = orderbook_seq_udf(
        pa.array([books], pa.list_(BOOK_TYPE)),
        pa.array([trades or None], pa.list_(TRADE_TYPE)),
        pa.array([points or None], pa.list_(POINT_TYPE)),
        params,
    )[0]
    out = {k: r[k].values for k in ("ts", "seq")}
    for c in SEQUENTIAL:
        out[c.name] = (
            pa.array(r[c.name].as_py(), pa.list_(pa.float64())) if c.per_horizon else r[c.name].values
        )
    base_us = int((BASE - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) / dt.timedelta(microseconds=1))
    keep = np.asarray(out["ts"].cast(pa.int64()).to_numpy()) >= base_us + start
    res = {}
    for k, v in out.items():
        if k in {c.name for c in SEQUENTIAL if c.per_horizon}:
            # the UDF holds one list per horizon; the stream one list per row
            per_h = v.to_pylist()
            res[k] = [list(x) for x in zip(*per_h, strict=True)] if per_h else []
            res[k] = [x for x, kept in zip(res[k], keep, strict=True) if kept] if res[k] else []
        else:
            res[k] = v.filter(pa.array(keep))
    return res


def stream_rows(books, trades, points) -> list[dict]:
    """The stream's input: the three kinds as tagged rows, sorted as the model's query sorts them."""
    rows = []
    for i, p in enumerate(points):
        rows.append(((p["ts"], 0, i), {"ts": p["ts"], "tag": 0, "vpin": p["vpin"]}))
    for i, t in enumerate(trades):
        rows.append(((t["ts"], 1, i), {"tag": 1, **t}))
    for i, b in enumerate(books):
        rows.append(((b["ts"], 2, i), {"tag": 2, **b}))
    rows.sort(key=lambda x: x[0])
    return [{"exchange": "x", "symbol": "S/T", **r} for _, r in rows]


def streamed(books, trades, points, start: int, chunk: int, batch: int) -> pa.Table:
    table = pa.Table.from_pylist(stream_rows(books, trades, points), schema=STREAM)
    params = {"params": PARAMS.model_dump(), "start": _at(start).isoformat(), "chunk_rows": chunk}
    out = list(seq_stream.sequential_stream(iter(table.to_batches(max_chunksize=batch)), params))
    return pa.Table.from_batches(out, seq_stream.SCHEMA)


def _bits(a: pa.Array | pa.ChunkedArray) -> tuple[list, list]:
    """Values to the bit (doubles as their int64 pattern, so −0.0 ≠ 0.0) and the NULL mask."""
    a = a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a
    nulls = a.is_null().to_pylist()
    if pa.types.is_floating(a.type):
        return np.asarray(a.fill_null(0.0).to_numpy(zero_copy_only=False)).view(np.int64).tolist(), nulls
    return a.to_pylist(), nulls


def assert_same(got: pa.Table, want: dict[str, Any]) -> None:
    assert got.num_rows == len(want["ts"])
    for name, w in want.items():
        g = got.column(name)
        if isinstance(w, list):  # per horizon: lists of doubles
            flat_g = pa.array(g.to_pylist(), pa.list_(pa.float64()))
            flat_w = pa.array(w, pa.list_(pa.float64()))
            assert flat_g.value_lengths().to_pylist() == flat_w.value_lengths().to_pylist(), name
            assert _bits(flat_g.flatten()) == _bits(flat_w.flatten()), name
        else:
            assert _bits(g.cast(w.type)) == _bits(w), name


@settings(max_examples=300, deadline=None)
@given(series(), st.integers(1, 40), st.integers(1, 50))
def test_stream_equals_one_whole_series_call(s, chunk: int, batch: int) -> None:
    books, trades, points, start = s
    assert_same(streamed(books, trades, points, start, chunk, batch), whole(books, trades, points, start))


def _dense_series() -> tuple[list[dict], list[dict], list[dict], int]:
    """Snapshots every 0.5 s with trades between: every window reaches back over earlier chunks."""
    books, trades = [], []
    for i in range(60):
        bid = 100.0 + (i % 5)
        books.append(
            {
                "ts": _at(i * 500_000),
                "seq": i,
                "crossed": False,
                "break_before": False,
                "mid": bid + 0.5,
                "spread": 1.0,
                "bids": [{"price": bid, "size": 1.0 + i % 3}],
                "asks": [{"price": bid + 1, "size": 2.0 - i % 2}],
                "trade_breaks": 0,
            }
        )
        trades.append({"ts": _at(i * 500_000 + 100_000), "buy": 1.0 + i % 4, "sell": 0.0, "breaks": 0})
        trades.append({"ts": _at(i * 500_000 + 200_000), "buy": 0.0, "sell": 2.0 + i % 3, "breaks": 0})
    return books, trades, [], 0


def test_dense_series_in_chunks_equals_whole() -> None:
    books, trades, points, start = _dense_series()
    want = whole(books, trades, points, start)
    for chunk in (1, 7, 16, 1000):
        assert_same(streamed(books, trades, points, start, chunk, 13), want)


def test_without_the_overlap_the_stream_differs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kept rows are what makes chunks exact (the property test above has teeth)."""
    books, trades, points, start = _dense_series()
    want = whole(books, trades, points, start)
    monkeypatch.setattr(seq_stream, "lookback_us", lambda p: 0)
    with pytest.raises(AssertionError):
        assert_same(streamed(books, trades, points, start, 7, 13), want)


# ---------------------------------------------------------------- break events counted by the stream

STREAM_CAPTURE = pa.schema(
    [(f.name, f.type) for f in STREAM if f.name not in ("trade_breaks", "breaks")] + [("capture_ts", TS)]
)


def _asof_counts(caps: list[int | None], captures: list[int | None]) -> list[int]:
    """The break counts as macros/series.sql `series_break_counts` places them: an ASOF LEFT JOIN on
    capture_ts > cap against count(*) OVER (ORDER BY cap), run in DuckDB."""
    import duckdb

    con = duckdb.connect()
    con.execute("CREATE TABLE ev (exchange VARCHAR, symbol VARCHAR, cap BIGINT)")
    con.execute("CREATE TABLE r (i INTEGER, exchange VARCHAR, symbol VARCHAR, capture_ts BIGINT)")
    if caps:
        con.executemany("INSERT INTO ev VALUES ('x', 'S/T', ?)", [[c] for c in caps])
    con.executemany("INSERT INTO r VALUES (?, 'x', 'S/T', ?)", list(enumerate(captures)))
    return [
        n
        for (n,) in con.execute(
            """
            WITH s AS (SELECT exchange, symbol, cap, count(*) OVER (PARTITION BY exchange, symbol ORDER BY cap) AS n
                       FROM ev)
            SELECT coalesce(s.n, 0) FROM r
            ASOF LEFT JOIN s ON r.exchange = s.exchange AND r.symbol = s.symbol AND r.capture_ts > s.cap
            ORDER BY r.i
            """
        ).fetchall()
    ]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(0, 20), max_size=12),
    st.lists(st.one_of(st.none(), st.integers(-2, 22)), min_size=1, max_size=30),
)
def test_breaks_before_is_the_asof_count(caps: list[int], captures: list[int | None]) -> None:
    """Ties (an event at a row's receive time is not before it), NULL receive times, repeated events."""
    base = int((BASE - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) / dt.timedelta(microseconds=1))
    got = seq_stream.breaks_before(
        np.sort(np.asarray(caps, np.int64)) + base,
        pa.array([None if c is None else _at(c) for c in captures], TS),
    )
    want = _asof_counts([base + c for c in caps], [None if c is None else base + c for c in captures])
    assert got.tolist() == want


def streamed_with_events(books, trades, points, caps: list[int], start: int, chunk: int, batch: int):
    """The stream's input as the model now sends it: capture_ts, no counts, the events ahead as BREAK rows."""
    rows = [{"exchange": "x", "symbol": "S/T", "ts": None, "tag": -1, "capture_ts": _at(c)} for c in caps]
    for r in stream_rows(books, trades, points):
        rows.append({k: v for k, v in r.items() if k not in ("trade_breaks", "breaks")})
    table = pa.Table.from_pylist(rows, schema=STREAM_CAPTURE)
    params = {"params": PARAMS.model_dump(), "start": _at(start).isoformat(), "chunk_rows": chunk}
    out = list(seq_stream.sequential_stream(iter(table.to_batches(max_chunksize=batch)), params))
    return pa.Table.from_batches(out, seq_stream.SCHEMA)


@settings(max_examples=150, deadline=None)
@given(
    series(),
    st.lists(st.integers(-3_000_000, 40_000_000), max_size=8),
    st.integers(1, 40),
    st.integers(1, 50),
)
def test_stream_counting_break_events_equals_given_counts(s, caps: list[int], chunk: int, batch: int) -> None:
    """Rows with capture_ts and BREAK rows give what rows carrying the ASOF counts give (one whole call)."""
    books, trades, points, start = s
    # receive times: the exchange time plus a delay, some NULL
    for i, r in enumerate(books + trades):
        us = int((r["ts"] - BASE) / dt.timedelta(microseconds=1))
        r["capture_ts"] = None if i % 11 == 5 else _at(us + (i * 7919) % 3_000_000)
    base = int((BASE - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) / dt.timedelta(microseconds=1))
    cap_us = np.sort(np.asarray(caps, np.int64)) + base
    for rows, name in ((books, "trade_breaks"), (trades, "breaks")):
        counts = seq_stream.breaks_before(cap_us, pa.array([r["capture_ts"] for r in rows], TS))
        for r, n in zip(rows, counts.tolist(), strict=True):
            r[name] = n
    want = whole(
        [{k: v for k, v in b.items() if k != "capture_ts"} for b in books],
        [{k: v for k, v in t.items() if k != "capture_ts"} for t in trades],
        points,
        start,
    )
    assert_same(streamed_with_events(books, trades, points, caps, start, chunk, batch), want)


def test_break_events_change_the_result() -> None:
    """The events are counted (the test above has teeth): breaks before the rows move the trade windows."""
    books, trades, points, start = _dense_series()
    for r in books + trades:
        r["capture_ts"] = r["ts"]
    quiet = streamed_with_events(books, trades, points, [], start, 16, 13)
    broken = streamed_with_events(books, trades, points, [10_000_000, 20_000_000], start, 16, 13)
    assert quiet.column("tfi").to_pylist() != broken.column("tfi").to_pylist()


def test_break_events_after_rows_are_refused() -> None:
    books, trades, points, start = _dense_series()
    for r in books + trades:
        r["capture_ts"] = r["ts"]
    rows = [
        {k: v for k, v in r.items() if k not in ("trade_breaks", "breaks")}
        for r in stream_rows(books, [], [])
    ]
    rows.append({"exchange": "x", "symbol": "S/T", "ts": None, "tag": -1, "capture_ts": _at(0)})
    table = pa.Table.from_pylist(rows, schema=STREAM_CAPTURE)
    params = {"params": PARAMS.model_dump(), "start": _at(start).isoformat()}
    with pytest.raises(ValueError, match="break events must come before"):
        list(seq_stream.sequential_stream(iter(table.to_batches(max_chunksize=7)), params))
