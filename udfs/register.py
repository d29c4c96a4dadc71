"""DuckDB registrations of the sequential kernels: thin Arrow wrappers, one call per whole series.

DuckDB calls an Arrow scalar UDF once per vector, on any thread, in no promised order, so no UDF
here ever carries state between calls or between rows. Each argument row is one complete series —
`list(struct_pack(...) ORDER BY ts, seq)` per (exchange, symbol) in the model — and each result row
holds that series' outputs as lists in the same order, which the model UNNESTs. Order inside a
series is fixed by the list's ORDER BY, never by how DuckDB schedules vectors, which is what makes
the result identical for any `threads`.

- `daedalus_ofi(bids, asks, prev_bids, prev_asks, levels, alpha)` → STRUCT(ofi, mlofi): row-wise,
  stateless (each row carries its predecessor's books); NULL when the predecessor is NULL.
- `daedalus_orderbook_seq(series, trades, vpin_points, params)` → one struct of lists: ts, seq,
  seg_start, then one field per column declared in udfs/columns.py. `params` is one struct with a
  field per `SequentialParams` key (daedalus/config.py; udfs/columns.py `params_sql` renders it);
  `daedalus_orderbook_seq_books`: the same with each row's first ofi_levels `bids`/`asks` in place of
  `ofi`/`mlofi`, paired against the previous row of the series inside the call
- `daedalus_vpin_buckets(trades, state_f, state_i, recent_imbalance, recent_volume, recent_dp,
  partition_start, params)`: `params` one struct of `VpinParams` (udfs/columns.py; bucket_volume
  NULL = auto)

Both use null_handling='special': a series without trades, or a first partition without carried
state, passes NULL and the wrapper treats it as empty; a NULL book gives a NULL result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from daedalus.udfs import arrow_io as aio
from daedalus.udfs.arrow_io import F64, LEVEL_SQL, TS
from daedalus.udfs.columns import PARAMS_SQL, SEQUENTIAL, VPIN_PARAMS_SQL, SeqColumn, VpinParams
from daedalus.udfs.kernels.ofi import ofi_mlofi, ofi_pairs
from daedalus.udfs.series import (
    Book,
    SeqParams,
    Series,
    Trades,
    VpinState,
    series_sequential,
    vpin_partition,
)

if TYPE_CHECKING:
    import duckdb

    from daedalus.config import Config

ORDERBOOK_SEQ = "daedalus_orderbook_seq"
ORDERBOOK_SEQ_BOOKS = "daedalus_orderbook_seq_books"
OFI = "daedalus_ofi"
VPIN_BUCKETS = "daedalus_vpin_buckets"

SERIES_SQL = (
    "STRUCT(ts TIMESTAMPTZ, seq BIGINT, crossed BOOLEAN, break_before BOOLEAN, mid DOUBLE, "
    "spread DOUBLE, ofi DOUBLE, mlofi DOUBLE, trade_breaks BIGINT)[]"
)
# The same series with each snapshot's first ofi_levels levels instead of ofi/mlofi: OFI is paired
# inside the call (row n against row n−1 of the series), no predecessor join in SQL.
SERIES_BOOKS_SQL = (
    "STRUCT(ts TIMESTAMPTZ, seq BIGINT, crossed BOOLEAN, break_before BOOLEAN, mid DOUBLE, "
    f"spread DOUBLE, bids {LEVEL_SQL}, asks {LEVEL_SQL}, trade_breaks BIGINT)[]"
)
OFI_RETURN_SQL = "STRUCT(ofi DOUBLE, mlofi DOUBLE)"
FLOW_SQL = "STRUCT(ts TIMESTAMPTZ, buy DOUBLE, sell DOUBLE, breaks BIGINT)[]"
VPIN_POINTS_SQL = "STRUCT(ts TIMESTAMPTZ, vpin DOUBLE)[]"
VPIN_TRADES_SQL = "STRUCT(ts TIMESTAMPTZ, amount DOUBLE, is_buy BOOLEAN, price DOUBLE)[]"

SEQ_KEYS = [
    pa.field("ts", pa.list_(TS)),
    pa.field("seq", pa.list_(pa.int64())),
    pa.field("seg_start", pa.list_(pa.bool_())),
]


def _seq_field(c: SeqColumn) -> pa.Field:
    if c.sql_type == "VARCHAR":
        return pa.field(c.name, pa.list_(pa.string()))
    return pa.field(c.name, pa.list_(pa.list_(F64)) if c.per_horizon else pa.list_(F64))


# The result struct follows the declaration of udfs/columns.py, one field per declared column.
SEQ_FIELDS = SEQ_KEYS + [_seq_field(c) for c in SEQUENTIAL]
SEQ_RETURN_SQL = (
    "STRUCT(ts TIMESTAMPTZ[], seq BIGINT[], seg_start BOOLEAN[], "
    + ", ".join(f"{c.name} {c.sql_type}[]{'[]' if c.per_horizon else ''}" for c in SEQUENTIAL)
    + ")"
)
VPIN_FIELDS = [
    pa.field("kind", pa.list_(pa.string())),
    pa.field("ts", pa.list_(TS)),
    pa.field("bucket_index", pa.list_(pa.int64())),
    pa.field("bucket_volume", pa.list_(F64)),
    pa.field("buy_volume", pa.list_(F64)),
    pa.field("sell_volume", pa.list_(F64)),
    pa.field("vpin", pa.list_(F64)),
    pa.field("state_f", pa.list_(F64)),
    pa.field("state_i", pa.list_(pa.int64())),
    pa.field("recent_imbalance", pa.list_(F64)),
    pa.field("recent_volume", pa.list_(F64)),
    pa.field("recent_dp", pa.list_(F64)),
]
VPIN_RETURN_SQL = (
    "STRUCT(kind VARCHAR[], ts TIMESTAMPTZ[], bucket_index BIGINT[], bucket_volume DOUBLE[], "
    "buy_volume DOUBLE[], sell_volume DOUBLE[], vpin DOUBLE[], state_f DOUBLE[], state_i BIGINT[], "
    "recent_imbalance DOUBLE[], recent_volume DOUBLE[], recent_dp DOUBLE[])"
)
REGIMES = pa.array(["tight", "normal", "wide"])


# ----------------------------------------------------------------------------------- Arrow → numpy


def series_from_arrow(rows: pa.StructArray, ofi_levels: int = 0, alpha: float = 0.0) -> Series:
    """One series' rows (already in (ts, seq) order) as numpy arrays; NULL doubles become NaN.

    Rows with `bids`/`asks` instead of `ofi`/`mlofi`: each row's pair against the row before it in
    the series (the first: NaN), by the same rule as the row-wise `daedalus_ofi` (kernels/ofi.py)."""

    def col(name: str) -> np.ndarray:
        return aio.f64(pc.struct_field(rows, name))

    if rows.type.get_field_index("ofi") < 0:
        n = len(rows)
        ofi, mlofi = ofi_mlofi(
            *aio.levels(pc.struct_field(rows, "bids")),
            *aio.levels(pc.struct_field(rows, "asks")),
            np.zeros(n, np.int64),
            np.zeros(n, np.bool_),
            np.int64(ofi_levels),
            float(alpha),
        )
    else:
        ofi, mlofi = col("ofi"), col("mlofi")

    return Series(
        aio.ts_us(pc.struct_field(rows, "ts")),
        aio.bools(pc.struct_field(rows, "crossed")),
        aio.bools(pc.struct_field(rows, "break_before")),
        col("mid"),
        col("spread"),
        ofi,
        mlofi,
        _counts(rows, "trade_breaks"),
    )


def _counts(rows: pa.StructArray, name: str) -> np.ndarray | None:
    """An optional int64 field (a running count of break events), None when the struct lacks it."""
    if rows.type.get_field_index(name) < 0:
        return None
    return np.asarray(pc.fill_null(pc.struct_field(rows, name), 0).to_numpy(zero_copy_only=False), np.int64)


def book_from_arrow(rows: pa.StructArray) -> Book:
    """One series' book rows (already in (ts, seq) order) as flattened numpy arrays."""
    bid_px, bid_sz, bid_off = aio.levels(pc.struct_field(rows, "bids"))
    ask_px, ask_sz, ask_off = aio.levels(pc.struct_field(rows, "asks"))
    return Book(
        aio.ts_us(pc.struct_field(rows, "ts")),
        bid_px,
        bid_sz,
        bid_off,
        ask_px,
        ask_sz,
        ask_off,
        aio.bools(pc.struct_field(rows, "crossed")),
        aio.bools(pc.struct_field(rows, "break_before")),
    )


def trades_from_arrow(rows: pa.StructArray | None) -> Trades:
    if rows is None or len(rows) == 0:
        return Trades(np.empty(0, np.int64), np.empty(0), np.empty(0))
    buy = np.nan_to_num(aio.f64(pc.struct_field(rows, "buy")))
    sell = np.nan_to_num(aio.f64(pc.struct_field(rows, "sell")))
    return Trades(aio.ts_us(pc.struct_field(rows, "ts")), buy, sell, _counts(rows, "breaks"))


# ----------------------------------------------------------------------------------- numpy → Arrow


def regime_text(codes: np.ndarray) -> pa.Array:
    """The spread regime's int8 codes (−1 = NULL) as its SQL text."""
    text = pa.DictionaryArray.from_arrays(pa.array(codes, pa.int8(), mask=codes < 0), REGIMES)
    return text.cast(pa.string())


def seq_ids(rows: pa.StructArray) -> np.ndarray:
    """The series rows' `seq` as the result carries it (NULL: −1)."""
    return np.asarray(pc.fill_null(pc.struct_field(rows, "seq"), -1).to_numpy(zero_copy_only=False), np.int64)


def series_inputs(
    rows: pa.StructArray, trades: pa.StructArray | None, p: SeqParams
) -> tuple[Series, Trades, np.ndarray]:
    """One series' book rows and trades (each in its order) as `series_sequential` takes them, and the
    rows' seq ids: the per-row preparation of the UDF and of the stream (udfs/seq_stream.py) alike."""
    sr = series_from_arrow(rows, p.ofi_levels, p.ofi_decay_alpha)
    return sr, trades_from_arrow(trades), seq_ids(rows)


def _seq_result(
    results: list[dict[str, np.ndarray] | None], ts: list[np.ndarray], seq: list[np.ndarray], n_horizons: int
) -> pa.StructArray:
    valid = [r is not None for r in results]
    live = [r for r in results if r is not None]
    lengths = [len(t) for t in ts]
    arrays: list[pa.Array] = [
        aio.list_array(pa.array(aio.concat(ts, np.int64), pa.int64()).cast(TS), lengths, valid),
        aio.list_array(pa.array(aio.concat(seq, np.int64), pa.int64()), lengths, valid),
        aio.list_array(
            pa.array(aio.concat([r["seg_start"] for r in live], np.bool_), pa.bool_()), lengths, valid
        ),
    ]
    inner_lengths = [n for n in lengths for _ in range(n_horizons)]
    outer = [n_horizons if v else 0 for v in valid]
    for c in SEQUENTIAL:
        if c.sql_type == "VARCHAR":  # the regime: int8 codes in the kernel, text in SQL
            text = regime_text(aio.concat([r[c.name] for r in live], np.int8))
            arrays.append(aio.list_array(text, lengths, valid))
        elif c.per_horizon:
            inner = aio.list_array(
                aio.f64_array(aio.concat([r[c.name].ravel() for r in live], np.float64)),
                inner_lengths,
                [True] * len(inner_lengths),
            )
            arrays.append(aio.list_array(inner, outer, valid))
        else:
            arrays.append(
                aio.list_array(
                    aio.f64_array(aio.concat([r[c.name] for r in live], np.float64)), lengths, valid
                )
            )
    return pa.StructArray.from_arrays(
        arrays, fields=SEQ_FIELDS, mask=pa.array([not v for v in valid], pa.bool_())
    )


# ------------------------------------------------------------------------------------------- UDFs


def _vpin_points(row: Any) -> tuple[np.ndarray, np.ndarray] | None:
    if not row.is_valid:
        return None
    rows = row.values
    return aio.ts_us(pc.struct_field(rows, "ts")), aio.f64(pc.struct_field(rows, "vpin"))


def orderbook_seq_udf(book, trades, vpin_points, params) -> pa.StructArray:
    """Arrow entry point of `daedalus_orderbook_seq`: one result row per series row."""
    book_a, trades_a, points_a, params_a = (aio.flat(a) for a in (book, trades, vpin_points, params))
    results: list[dict[str, np.ndarray] | None] = []
    ts_parts: list[np.ndarray] = []
    seq_parts: list[np.ndarray] = []
    n_h = 0
    for i in range(len(book_a)):
        p = SeqParams(**params_a[i].as_py())
        n_h = len(p.horizons)
        if not book_a[i].is_valid:
            results.append(None)
            ts_parts.append(np.empty(0, np.int64))
            seq_parts.append(np.empty(0, np.int64))
            continue
        tr_row = trades_a[i]
        sr, t, seq = series_inputs(book_a[i].values, tr_row.values if tr_row.is_valid else None, p)
        results.append(series_sequential(sr, t, p, _vpin_points(points_a[i])))
        ts_parts.append(sr.ts)
        seq_parts.append(seq)
    return _seq_result(results, ts_parts, seq_parts, n_h)


def ofi_udf(bids, asks, prev_bids, prev_asks, levels, alpha) -> pa.StructArray:
    """Arrow entry point of `daedalus_ofi`: one (ofi, mlofi) per row, from the row alone."""
    cols = [aio.flat(a) for a in (bids, asks, prev_bids, prev_asks, levels, alpha)]
    n = len(cols[0])
    if n == 0:
        return pa.StructArray.from_arrays([pa.array([], F64), pa.array([], F64)], names=["ofi", "mlofi"])
    lv = pc.max(cols[4]).as_py()
    al = pc.max(cols[5]).as_py()
    if lv is None or al is None or pc.min(cols[4]).as_py() != lv or pc.min(cols[5]).as_py() != al:
        raise ValueError("daedalus_ofi: levels and alpha must be one non-NULL constant per query")
    sides = [aio.levels(c) for c in cols[:4]]
    ofi, mlofi = ofi_pairs(*sides[0], *sides[1], *sides[2], *sides[3], np.int64(lv), float(al))
    null = np.zeros(n, bool)
    for c in cols[:4]:
        null |= np.asarray(c.is_null().to_numpy(zero_copy_only=False), bool)
    ofi[null] = np.nan
    mlofi[null] = np.nan
    return pa.StructArray.from_arrays([aio.f64_array(ofi), aio.f64_array(mlofi)], names=["ofi", "mlofi"])


def vpin_buckets_udf(
    trades, state_f, state_i, recent_imbalance, recent_volume, recent_dp, partition_start, params
) -> pa.StructArray:
    """Arrow entry point of `daedalus_vpin_buckets`: rows 'open', one per completed bucket, 'state'."""
    cols = [
        aio.flat(a)
        for a in (
            trades,
            state_f,
            state_i,
            recent_imbalance,
            recent_volume,
            recent_dp,
            partition_start,
            params,
        )
    ]
    out: dict[str, list] = {f.name: [] for f in VPIN_FIELDS}
    lengths: list[int] = []
    valid: list[bool] = []
    for i in range(len(cols[0])):
        tr = cols[0][i]
        start_ts = cols[6][i]
        if not tr.is_valid or not start_ts.is_valid:
            valid.append(False)
            lengths.append(0)
            for k in ("state_f", "state_i", "recent_imbalance", "recent_volume", "recent_dp"):
                out[k].append(None)
            continue
        rows = tr.values
        ts = aio.ts_us(pc.struct_field(rows, "ts"))
        amount = np.nan_to_num(aio.f64(pc.struct_field(rows, "amount")))
        is_buy = aio.bools(pc.struct_field(rows, "is_buy"))
        price = aio.f64(pc.struct_field(rows, "price"))
        state = VpinState.from_lists(*(cols[k][i].as_py() for k in range(1, 6)))
        given = cols[7][i].as_py()
        bv = given["bucket_volume"]
        params = VpinParams(**{**given, "bucket_volume": None if bv is None or bv <= 0 else float(bv)})
        start = int(pc.cast(start_ts, TS).cast(pa.int64()).as_py())
        part = vpin_partition(ts, amount, is_buy, price, state, params, start)
        k = part.ts.shape[0]
        nan = np.full(1, np.nan)
        out["kind"] += ["open"] + ["bucket"] * k + ["state"]
        out["ts"].append(np.concatenate(([start], part.ts, [start])).astype(np.int64))
        out["bucket_index"].append(
            np.concatenate(([part.open_index], part.index, [part.state.n_completed - 1]))
        )
        out["bucket_volume"].append(np.concatenate((nan, part.volume, nan)))
        out["buy_volume"].append(np.concatenate((nan, part.buy, nan)))
        out["sell_volume"].append(np.concatenate((nan, part.sell, nan)))
        out["vpin"].append(np.concatenate(([part.open_vpin], part.vpin, nan)))
        out["state_f"].append(part.state.floats())
        out["state_i"].append(part.state.ints())
        out["recent_imbalance"].append(part.state.recent_imbalance.tolist())
        out["recent_volume"].append(part.state.recent_volume.tolist())
        out["recent_dp"].append(part.state.recent_dp.tolist())
        lengths.append(k + 2)
        valid.append(True)
    arrays = [
        aio.list_array(pa.array(out["kind"], pa.string()), lengths, valid),
        aio.list_array(pa.array(aio.concat(out["ts"], np.int64), pa.int64()).cast(TS), lengths, valid),
        aio.list_array(pa.array(aio.concat(out["bucket_index"], np.int64), pa.int64()), lengths, valid),
    ]
    for name in ("bucket_volume", "buy_volume", "sell_volume", "vpin"):
        arrays.append(aio.list_array(aio.f64_array(aio.concat(out[name], np.float64)), lengths, valid))
    arrays.append(pa.array(out["state_f"], pa.list_(F64)))
    arrays.append(pa.array(out["state_i"], pa.list_(pa.int64())))
    for name in ("recent_imbalance", "recent_volume", "recent_dp"):
        arrays.append(pa.array(out[name], pa.list_(F64)))
    return pa.StructArray.from_arrays(
        arrays, fields=VPIN_FIELDS, mask=pa.array([not v for v in valid], pa.bool_())
    )


# ----------------------------------------------------------------------------------- registration


def register_all(con: duckdb.DuckDBPyConnection, config: Config | None = None) -> None:
    """Register every Daedalus UDF on `con`; a second call on the same connection does nothing.

    Parameters travel as SQL arguments (the models render them from config), so `config` is not
    needed here; it is accepted to keep one signature for every registration hook.
    """
    import duckdb

    t = duckdb.sqltype
    # registers the relation kinds `book_rebuild`, `orderbook_seq` and `vpin_buckets`
    from daedalus.udfs import book_stream, seq_stream, vpin_stream  # noqa: F401
    from daedalus.udfs.register_book import register_book
    from daedalus.udfs.register_checks import register_checks

    register_book(con)
    register_checks(con)
    if not aio.registered(con, OFI):
        con.create_function(
            OFI,
            ofi_udf,
            [t(LEVEL_SQL), t(LEVEL_SQL), t(LEVEL_SQL), t(LEVEL_SQL), t("INTEGER"), t("DOUBLE")],
            t(OFI_RETURN_SQL),
            type="arrow",
            null_handling="special",
            side_effects=False,
        )
    for name, series_sql in ((ORDERBOOK_SEQ, SERIES_SQL), (ORDERBOOK_SEQ_BOOKS, SERIES_BOOKS_SQL)):
        if aio.registered(con, name):
            continue
        con.create_function(
            name,
            orderbook_seq_udf,
            [t(series_sql), t(FLOW_SQL), t(VPIN_POINTS_SQL), t(PARAMS_SQL)],
            t(SEQ_RETURN_SQL),
            type="arrow",
            null_handling="special",
            side_effects=False,
        )
    if not aio.registered(con, VPIN_BUCKETS):
        con.create_function(
            VPIN_BUCKETS,
            vpin_buckets_udf,
            [
                t(VPIN_TRADES_SQL),
                t("DOUBLE[]"),
                t("BIGINT[]"),
                t("DOUBLE[]"),
                t("DOUBLE[]"),
                t("DOUBLE[]"),
                t("TIMESTAMPTZ"),
                t(VPIN_PARAMS_SQL),
            ],
            t(VPIN_RETURN_SQL),
            type="arrow",
            null_handling="special",
            side_effects=False,
        )
