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
