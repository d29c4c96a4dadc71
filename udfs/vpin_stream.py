"""gold.vpin_buckets as a stream (udfs/relations.py kind `vpin_buckets`): the rows of
`daedalus_vpin_buckets` (udfs/register.py) without a day's trades gathered into one DuckDB list.

The input is one query's rows, tagged: per series (exchange, symbol) its carried state (`tag` 0, at
most one row: state_f, state_i, recent_imbalance, recent_volume, recent_dp) and its trades of the
partition (`tag` 1: ts, amount, is_buy, price, trade_id, and `tie_num` = TRY_CAST(trade_id AS
HUGEINT)), NOT sorted by DuckDB: a sort of a day's trades held ~80 MB more than the numpy columns
below (24 h symbol-day, 860 k trades), a `list(... ORDER BY ...)` ~230 MB. The trades come in
silver.trades' file order instead, which its config(order_by) makes (exchange, symbol, ts, ...), the
query planned with preserve_insertion_order = true (INPUT_SETTINGS) so that DuckDB keeps that order on
any number of threads. The stream checks it: a series' trades must come in ts order (else it raises,
never computes on a wrong order). Trades sharing a ts are put in the model's order, (TRY_CAST(trade_id
AS HUGEINT) NULLS LAST, trade_id), here: their keys are the only ones kept.

Per series the stream keeps four numpy columns of the day's trades (ts, amount, is_buy, price: 25 bytes
a trade; copies, never views of an input batch, which would keep all of its columns) and runs the same
call as the UDF (udfs/series.py `vpin_partition`) on them once the series' rows are all in, so its rows
equal the UDF's bit for bit (the day's volume is one numpy sum over the day, as there). The rows out
are the model's: 'open', one per completed bucket, 'state' (state columns on that row only); a series
without trades gives none.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa

from daedalus.udfs import arrow_io as aio
from daedalus.udfs import relations
from daedalus.udfs.arrow_io import F64, TS
from daedalus.udfs.columns import VpinParams
from daedalus.udfs.series import VpinState, vpin_partition

KIND = "vpin_buckets"
STATE, TRADE = 0, 1
"""`tag` of an input row."""
KEYS = ("exchange", "symbol")
STATE_FIELDS = ("state_f", "state_i", "recent_imbalance", "recent_volume", "recent_dp")
SCHEMA = pa.schema(
    [
        pa.field("exchange", pa.string()),
        pa.field("symbol", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("ts", TS),
        pa.field("bucket_index", pa.int64()),
        pa.field("bucket_volume", F64),
        pa.field("buy_volume", F64),
        pa.field("sell_volume", F64),
        pa.field("vpin", F64),
        pa.field("state_f", pa.list_(F64)),
        pa.field("state_i", pa.list_(pa.int64())),
        pa.field("recent_imbalance", pa.list_(F64)),
        pa.field("recent_volume", pa.list_(F64)),
        pa.field("recent_dp", pa.list_(F64)),
    ]
)
INPUT_SETTINGS = {"preserve_insertion_order": "true"}
"""The input query keeps silver.trades' file order (the builds run with false)."""


def vpin_params(given: dict[str, Any]) -> VpinParams:
    """`VpinParams` from its fields as the model passes them (bucket_volume NULL or ≤ 0 = auto)."""
    bv = given["bucket_volume"]
    return VpinParams(**{**given, "bucket_volume": None if bv is None or bv <= 0 else float(bv)})


def _tie_key(num: Decimal | None, trade_id: str | None) -> tuple[bool, int, bool, str]:
    # ORDER BY TRY_CAST(trade_id AS HUGEINT) NULLS LAST, trade_id (NULLS LAST); str order = UTF-8 byte order
    return (num is None, 0 if num is None else int(num), trade_id is None, trade_id or "")


class _Series:
    """One (exchange, symbol): its carried state and its trades so far, in arrival (ts) order."""

    def __init__(self, key: tuple[str, str]) -> None:
        self.key = key
        self.state: VpinState | None = None
        self.parts: tuple[list[np.ndarray], ...] = ([], [], [], [])
        self.n = 0
        self.last_ts: int | None = None
        self.last_key: tuple[bool, int, bool, str] | None = None
        self.ties: dict[int, tuple[bool, int, bool, str]] = {}
        """Sort key of every trade sharing its ts with another, by arrival position."""

    def add_state(self, rows: pa.RecordBatch) -> None:
        if rows.num_rows > 1 or self.state is not None:
            raise ValueError(f"vpin_buckets {self.key}: more than one carried state row")
        self.state = VpinState.from_lists(*(rows.column(k)[0].as_py() for k in STATE_FIELDS))

    def add_trades(self, rows: pa.RecordBatch) -> None:
        m = rows.num_rows
        ts = aio.ts_us(rows.column("ts"))
        prev = self.last_ts
        if (prev is not None and ts[0] < prev) or bool(np.any(ts[1:] < ts[:-1])):
            raise ValueError(
                f"vpin_buckets {self.key}: trades not in ts order (silver.trades files are written in "
                "(exchange, symbol, ts, ...) order, read with preserve_insertion_order = true)"
            )
        tied = np.zeros(m, bool)
        same = ts[1:] == ts[:-1]
        tied[1:] |= same
        tied[:-1] |= same
        first_tied = prev is not None and ts[0] == prev
        tied[0] |= first_tied
        # the last row's key, in case the next rows of the series start at its ts
        at = np.flatnonzero(tied | (np.arange(m) == m - 1))
        nums = rows.column("tie_num").take(pa.array(at)).to_pylist()
        ids = rows.column("trade_id").take(pa.array(at)).to_pylist()
        keys = {int(i): _tie_key(n, s) for i, n, s in zip(at, nums, ids, strict=True)}
        if first_tied:
            assert self.last_key is not None
            self.ties[self.n - 1] = self.last_key
        for i in np.flatnonzero(tied):
            self.ties[self.n + int(i)] = keys[int(i)]
        self.last_key = keys[m - 1]
        self.last_ts = int(ts[-1])
        # copies, not views: a numpy view of an input column keeps the whole batch alive (trade ids,
        # exchange, symbol, the NULL state lists: ~100 MB over a 24 h symbol-day's 860 k trades)
        for part, values in zip(
            self.parts,
            (
                ts.copy(),
                np.nan_to_num(aio.f64(rows.column("amount"))),
                aio.bools(rows.column("is_buy")),
                aio.f64(rows.column("price")).copy(),
            ),
            strict=True,
        ):
            part.append(values)
        self.n += m

    def columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The trades in the model's order: (ts, amount, is_buy, price)."""
        cols = []
        for part in self.parts:  # one column at a time, its pieces freed once joined
            cols.append(np.concatenate(part))
            part.clear()
        # the pieces (16 k rows each) were freed into the heap of the DuckDB thread the stream runs on,
        # which keeps them: hand them back before the day's call adds its own arrays (−15 MB peak)
        aio.release_memory()
        if not self.ties:
            return tuple(cols)  # type: ignore[return-value]
        order = np.arange(self.n)
        pos = sorted(self.ties)
        ts = cols[0]
        a = 0
        while a < len(pos):
            b = a + 1
            while b < len(pos) and pos[b] == pos[b - 1] + 1 and ts[pos[b]] == ts[pos[a]]:
                b += 1
            run = pos[a:b]  # one ts, consecutive positions; sorted() is stable for equal keys
            order[run[0] : run[-1] + 1] = sorted(run, key=self.ties.__getitem__)
            a = b
        if np.array_equal(order, np.arange(self.n)):
            return tuple(cols)  # type: ignore[return-value]
        for i, c in enumerate(cols):
            cols[i] = c[order]
        return tuple(cols)  # type: ignore[return-value]

    def rows(self, params: VpinParams, start: int) -> pa.RecordBatch:
        ts, amount, is_buy, price = self.columns()
        state = self.state if self.state is not None else VpinState()
        part = vpin_partition(ts, amount, is_buy, price, state, params, start)
        k = part.ts.shape[0]
        nan = np.full(1, np.nan)
        n = k + 2
        none: list[Any] = [None] * (n - 1)
        st = part.state
        cols: list[pa.Array] = [
            pa.array([self.key[0]] * n, pa.string()),
            pa.array([self.key[1]] * n, pa.string()),
            pa.array(["open"] + ["bucket"] * k + ["state"], pa.string()),
            pa.array(np.concatenate(([start], part.ts, [start])).astype(np.int64), pa.int64()).cast(TS),
            pa.array(np.concatenate(([part.open_index], part.index, [st.n_completed - 1])), pa.int64()),
            aio.f64_array(np.concatenate((nan, part.volume, nan))),
            aio.f64_array(np.concatenate((nan, part.buy, nan))),
            aio.f64_array(np.concatenate((nan, part.sell, nan))),
            aio.f64_array(np.concatenate(([part.open_vpin], part.vpin, nan))),
            pa.array([*none, st.floats()], pa.list_(F64)),
            pa.array([*none, st.ints()], pa.list_(pa.int64())),
            pa.array([*none, st.recent_imbalance.tolist()], pa.list_(F64)),
            pa.array([*none, st.recent_volume.tolist()], pa.list_(F64)),
            pa.array([*none, st.recent_dp.tolist()], pa.list_(F64)),
        ]
        return pa.RecordBatch.from_arrays(cols, schema=SCHEMA)


def vpin_stream(batches: Iterator[pa.RecordBatch], params: dict[str, Any]) -> Iterator[pa.RecordBatch]:
    """The model's rows of every series with trades in `batches` (series in order of first arrival)."""
    p = vpin_params(params["params"])
    start_dt = dt.datetime.fromisoformat(params["start"])
    start = (start_dt - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
    series: dict[tuple[str, str], _Series] = {}
    for run_key, rows in relations.key_runs(batches, (*KEYS, "tag")):
        key = (str(run_key[0]), str(run_key[1]))
        s = series.get(key)
        if s is None:
            s = series[key] = _Series(key)
        if int(run_key[2]) == STATE:
            s.add_state(rows)
        else:
            s.add_trades(rows)
    for s in series.values():
        if s.n:
            yield s.rows(p, start)
        # the trades' columns go before the next series' are made
        s.parts = ([], [], [], [])


relations.register_kind(KIND, SCHEMA, vpin_stream, INPUT_SETTINGS)
