"""gold.orderbook_seq's sequential columns as a stream (udfs/relations.py kind `orderbook_seq`).

The input is one query's rows sorted by (exchange, symbol, ts, tag, tie keys): each series' book rows
(`tag` 2), its trades (1) and its VPIN points (0) merged, each kind in the order the whole-series
call took it (books by seq, trades by numeric then text trade id, points by bucket index then kind
descending). At equal ts the trades and points come first: a snapshot at t counts the trades and
points with ts ≤ t. DuckDB does the sorting (it spills); Python holds a bounded window per series.

Each series runs through the numpy pipeline of the whole-series UDF (register.py `series_inputs`,
series.py `series_sequential`) in chunks of `CHUNK_ROWS` book rows or more. Before each chunk the rows
of the previous calls (books and trades) within `lookback` of the chunk's first ts are kept and go
into the call again, never emitted; a chunk ends only between two distinct ts, once a later book row
has arrived, so every trade, point and tied snapshot at or before its last ts is in. That is exact,
for the reason a time slice is (sql/gold/orderbook_seq.sql): every value of a row at t depends only
on the rows in its windows, at most max(horizons, kyle_lambda_window, spread_regime_window) back, and
on each such row's predecessor, which lies within max_state_staleness_seconds before it or else is a
break. The kept rows' first one is a forced segment start in the call; if it falls inside any
emitted row's window, its gap to its true predecessor exceeds the staleness span, so it is one in
the whole series too. The trades-series break counts are carried as running maxima over the whole
stream (the kernel's running maximum then changes nothing), as one call from the first row has them.

The model's query sends those counts' events instead (`CAPTURE`): each break event of the series as a
row (tag BREAK, ts NULL) ahead of all its other rows, and each book row and trade with its capture_ts;
the stream counts the events received strictly before it, as the ASOF joins of macros/series.sql
`series_break_counts` did, which sorted every row of the slice by capture_ts once more for it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from daedalus.udfs import arrow_io as aio
from daedalus.udfs import relations
from daedalus.udfs.arrow_io import F64, TS
from daedalus.udfs.columns import SEQUENTIAL
from daedalus.udfs.register import regime_text, series_inputs
from daedalus.udfs.series import US, SeqParams, series_sequential

KIND = "orderbook_seq"
BREAK, POINT, TRADE, BOOK = -1, 0, 1, 2
"""`tag` of an input row; at equal ts the rows sort in this order. BREAK: a trades-series break event
(ts NULL, its receive time in `capture_ts`), ahead of every other row of its series."""
KEYS = ("exchange", "symbol")
BOOK_FIELDS = ("ts", "seq", "crossed", "break_before", "mid", "spread", "bids", "asks", "trade_breaks")
TRADE_FIELDS = ("ts", "buy", "sell", "breaks")
CAPTURE = "capture_ts"
"""With this column the input counts its break events itself (BREAK rows; the model's query): a book
row's `trade_breaks` and a trade's `breaks` are the events received strictly before its capture_ts
(none when it is NULL), as the ASOF joins of macros/series.sql `series_break_counts` place them.
Without it, the rows carry those counts (`trade_breaks`, `breaks`)."""
CHUNK_ROWS = 8_192
"""Book rows per call, at least (plus the kept rows before them, and at least as many as those, so
the rows computed twice cost at most as much again): the producer's memory follows this."""


def _field(c: Any) -> pa.Field:
    if c.sql_type == "VARCHAR":
        return pa.field(c.name, pa.string())
    # a per-horizon column: one value per features.horizons entry, the model picks `name[k]`
    return pa.field(c.name, pa.list_(F64) if c.per_horizon else F64)


SCHEMA = pa.schema(
    [pa.field("exchange", pa.string()), pa.field("symbol", pa.string()), pa.field("ts", TS)]
    + [pa.field("seq", pa.int64())]
    + [_field(c) for c in SEQUENTIAL]
)


def lookback_us(p: SeqParams) -> int:
    """How far back of a row its values can reach: the longest window plus the staleness span."""
    longest = max([*p.horizons, p.kyle_lambda_window, p.spread_regime_window])
    return int(round((longest + p.max_state_staleness_seconds) * US))


def breaks_before(caps: np.ndarray, capture: pa.Array) -> np.ndarray:
    """Per row, the events of `caps` (µs, sorted) received strictly before its `capture` (NULL: 0)."""
    valid = np.asarray(capture.is_valid().to_numpy(zero_copy_only=False), np.bool_)
    us = pc.fill_null(pc.cast(capture, TS).cast(pa.int64()), 0)
    us = np.asarray(us.to_numpy(zero_copy_only=False), np.int64)
    return np.where(valid, np.searchsorted(caps, us, side="left"), 0).astype(np.int64)


def _running_max(values: pa.Array | np.ndarray, carry: int | None) -> tuple[np.ndarray, int | None]:
    if isinstance(values, np.ndarray):
        counts = values.copy()
    else:
        counts = np.array(pc.fill_null(values, 0).to_numpy(zero_copy_only=False), np.int64)
    if counts.shape[0] == 0:
        return counts, carry
    if carry is not None:
        counts[0] = max(int(counts[0]), carry)
    out = np.maximum.accumulate(counts)
    return out, int(out[-1])


class _Part:
    """Buffered rows of one kind: a table, its ts (µs) and its carried break counts."""

    def __init__(self, fields: tuple[str, ...], counts: str | None) -> None:
        self.fields, self.counts = fields, counts
        self.batches: list[pa.RecordBatch] = []
        self.ts: list[np.ndarray] = [np.empty(0, np.int64)]
        self.maxed: list[np.ndarray] = [np.empty(0, np.int64)]
        self.carry: int | None = None
        self.n = 0

    def add(self, rows: pa.RecordBatch, caps: np.ndarray | None = None) -> None:
        """`caps`: the series' break events (µs, sorted), counted here from the rows' capture_ts."""
        if rows.num_rows == 0:
            return
        counts = breaks_before(caps, rows.column(CAPTURE)) if caps is not None else None
        rows = rows.select([f for f in self.fields if counts is None or f != self.counts])
        self.batches.append(rows)
        self.ts.append(aio.ts_us(rows.column("ts")))
        if self.counts is not None:
            given = rows.column(self.counts) if counts is None else counts
            maxed, self.carry = _running_max(given, self.carry)
            self.maxed.append(maxed)
        self.n += rows.num_rows

    def flat(self) -> tuple[pa.Table, np.ndarray, np.ndarray]:
        """Everything buffered as one table, one ts array and one counts array (kept as one part)."""
        schema = self.batches[0].schema if self.batches else None
        table = pa.Table.from_batches(self.batches, schema).combine_chunks() if self.batches else None
        ts, maxed = np.concatenate(self.ts), np.concatenate(self.maxed)
        self.batches = table.to_batches() if table is not None else []
        self.ts, self.maxed = [ts], [maxed]
        return table, ts, maxed

    def drop(self, k: int) -> None:
        """Drop the first `k` rows (after `flat`)."""
        if k == 0:
            return
        table, ts, maxed = self.flat()
        self.batches = table.slice(k).to_batches() if table is not None else []
        self.ts = [ts[k:]]
        self.maxed = [maxed[k:]]
        self.n -= k


class _Series:
    """One (exchange, symbol): its buffered rows and how many of the front book rows are done."""

    def __init__(self, key: tuple[str, str], p: SeqParams, start_us: int, chunk: int) -> None:
        self.key, self.p, self.start_us, self.chunk = key, p, start_us, chunk
        self.lookback = lookback_us(p)
        self.books = _Part(BOOK_FIELDS, "trade_breaks")
        self.trades = _Part(TRADE_FIELDS, "breaks")
        self.points_ts = [np.empty(0, np.int64)]
        self.points_v = [np.empty(0)]
        self.done = 0
        """Book rows at the front already computed (kept for the next call's lookback only)."""
        self.caps: list[np.ndarray] = []
        """The break events' receive times (µs), with a `capture_ts` input (CAPTURE)."""

    def _caps(self, rows: pa.RecordBatch, tag: np.ndarray) -> np.ndarray | None:
        """The series' break events, sorted, once every one of them is in (they come first)."""
        if CAPTURE not in rows.schema.names:
            return None
        brk = tag == BREAK
        if brk.any():
            if self.books.n or self.trades.n or not brk[: int(brk.sum())].all():
                raise ValueError(f"{KIND}: break events must come before the other rows of their series")
            cap = rows.column(CAPTURE).filter(pa.array(brk))
            self.caps = [np.sort(np.concatenate([*self.caps, aio.ts_us(cap.drop_null())]))]
        elif not self.caps:
            self.caps = [np.empty(0, np.int64)]
        return self.caps[0]

    def add(self, rows: pa.RecordBatch) -> Iterator[pa.RecordBatch]:
        tag = rows.column("tag").to_numpy(zero_copy_only=False)
        caps = self._caps(rows, tag)
        if caps is not None and tag[-1] == BREAK:
            return
        self.books.add(rows.filter(pa.array(tag == BOOK)), caps)
        self.trades.add(rows.filter(pa.array(tag == TRADE)), caps)
        points = rows.filter(pa.array(tag == POINT))
        if points.num_rows:
            self.points_ts.append(aio.ts_us(points.column("ts")))
            self.points_v.append(aio.f64(points.column("vpin")))
        if self.books.n == self.done and self.trades.n > self.chunk:
            # no book row waiting (a stretch of trades only): a later book row reaches back no further
            # than the lookback from the last ts seen
            _, tts, _ = self.trades.flat()
            seen = int(aio.ts_us(rows.column("ts")[-1:])[0])
            self.trades.drop(int(np.searchsorted(tts, seen - self.lookback)))
        while self.books.n - self.done >= self._chunk():
            out = self._step(final=False)
            if out is False:
                break
            if out is not None:
                yield out

    def finish(self) -> Iterator[pa.RecordBatch]:
        if self.books.n > self.done:
            out = self._step(final=True)
            if isinstance(out, pa.RecordBatch):
                yield out

    def _chunk(self) -> int:
        return max(self.chunk, self.done)

    def _cut(self, bts: np.ndarray) -> int | None:
        """The end of the next chunk: between two distinct ts, near `done + chunk`; None = wait for rows."""
        n, lo = bts.shape[0], self.done
        cuts = np.flatnonzero(bts[lo + 1 :] != bts[lo : n - 1]) + lo + 1  # c with bts[c−1] < bts[c]
        if cuts.shape[0] == 0:
            return None
        want = lo + self._chunk()
        before = cuts[cuts <= want]
        return int(before[-1]) if before.shape[0] else int(cuts[0])

    def _step(self, final: bool) -> pa.RecordBatch | None | bool:
        """Compute the next chunk; False when no chunk can end yet, None when it emits no row."""
        books, bts, q_breaks = self.books.flat()
        trades, tts, t_breaks = self.trades.flat()
        pts, pv = np.concatenate(self.points_ts), np.concatenate(self.points_v)
        n = bts.shape[0]
        c = n if final else self._cut(bts)
        if c is None:
            return False
        last = bts[c - 1]
        emit = np.arange(self.done, c)[bts[self.done : c] >= self.start_us]
        out = None
        if emit.shape[0]:
            out = self._compute(books.slice(0, c), q_breaks[:c], trades, tts, t_breaks, pts, pv, last, emit)
        if not final:
            # keep what the next chunk's rows can reach: books and trades within the lookback of its
            # first ts, the last point before it and every point after
            nxt = bts[c]
            keep_from = nxt - self.lookback
            d = int(np.searchsorted(bts, keep_from, side="left"))
            self.books.drop(d)
            self.done = c - d
            self.trades.drop(int(np.searchsorted(tts, keep_from, side="left")))
            k = max(int(np.searchsorted(pts, nxt, side="left")) - 1, 0)
            self.points_ts, self.points_v = [pts[k:]], [pv[k:]]
        return out

    def _compute(
        self,
        books: pa.Table,
        q_breaks: np.ndarray,
        trades: pa.Table | None,
        tts: np.ndarray,
        t_breaks: np.ndarray,
        pts: np.ndarray,
        pv: np.ndarray,
        last: int,
        emit: np.ndarray,
    ) -> pa.RecordBatch:
        rows = _struct(books)
        tc = int(np.searchsorted(tts, last, side="right"))  # the trades with ts ≤ the chunk's last ts
        trade_rows = _struct(trades.slice(0, tc)) if trades is not None and tc else None
        sr, tr, seq = series_inputs(rows, trade_rows, self.p)
        sr.trade_breaks = q_breaks
        if tc:
            tr.breaks = t_breaks[:tc]
        pc_ = int(np.searchsorted(pts, last, side="right"))
        r = series_sequential(sr, tr, self.p, (pts[:pc_], pv[:pc_]))
        m = emit.shape[0]
        cols: list[pa.Array] = [
            pa.array([self.key[0]] * m, pa.string()),
            pa.array([self.key[1]] * m, pa.string()),
            pa.array(sr.ts[emit], pa.int64()).cast(TS),
            pa.array(seq[emit], pa.int64()),
        ]
        for c in SEQUENTIAL:
            v = r[c.name]
            if c.sql_type == "VARCHAR":
                cols.append(regime_text(np.asarray(v[emit], np.int8)))
            elif c.per_horizon:
                hs = v.shape[0]
                values = aio.f64_array(np.ascontiguousarray(v[:, emit].T).ravel())
                offsets = pa.array(np.arange(m + 1, dtype=np.int32) * hs, pa.int32())
                cols.append(pa.ListArray.from_arrays(offsets, values))
            else:
                cols.append(aio.f64_array(v[emit]))
        return pa.RecordBatch.from_arrays(cols, schema=SCHEMA)


def _struct(table: pa.Table) -> pa.StructArray:
    t = table.combine_chunks()
    return pa.StructArray.from_arrays([aio.flat(t.column(k)) for k in t.column_names], names=t.column_names)


def sequential_stream(batches: Iterator[pa.RecordBatch], params: dict[str, Any]) -> Iterator[pa.RecordBatch]:
    """The sequential rows (ts ≥ the slice start) of every series in `batches`, in input order."""
    p = SeqParams(**params["params"])
    start = dt.datetime.fromisoformat(params["start"])
    start_us = (start - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
    chunk = int(params.get("chunk_rows", CHUNK_ROWS))
    series: _Series | None = None
    for run_key, rows in relations.key_runs(batches, KEYS):
        key = (str(run_key[0]), str(run_key[1]))
        if series is None or key != series.key:
            if series is not None:
                yield from series.finish()
            series = _Series(key, p, start_us, chunk)
        yield from series.add(rows)
    if series is not None:
        yield from series.finish()


relations.register_kind(KIND, SCHEMA, sequential_stream)
