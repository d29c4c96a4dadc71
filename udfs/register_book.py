"""DuckDB registration of the full-depth book rebuild (udfs/kernels/book.py): one connection per row.

`daedalus_book_rebuild(rows, max_levels, bands, staleness_s, strict_deletes, start)`: `rows` is one
connection's bronze `book_updates` rows, `list(struct_pack(seq, ts, capture_ts, kind, first_update_id,
last_update_id, prev_update_id, bids, asks, n_breaks) ORDER BY seq)`, as silver.orderbook hands them
over; the result holds, per served input row with ts ≥ `start` (the slice; earlier rows only warm the
book up) and in the same order, the pass-through keys, whether the row is served
(`emit`), whether the book restarts there (`restart`) and why (`reason`, '' when nothing happened),
`break_before` (FEATURES.md "Time": a restart, a break event received since the previous served row —
`n_breaks` grew —, more than `staleness_s` of exchange time since it, or no previous served row), the
top `max_levels` levels and the whole-book band sums (NULL where not visible). The list's ORDER BY
fixes the replay order, never DuckDB's vector scheduling, so no state crosses calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from daedalus.udfs import arrow_io as aio
from daedalus.udfs.arrow_io import LEVEL_SQL
from daedalus.udfs.kernels.book import NO_ID, REASONS, rebuild_books

if TYPE_CHECKING:
    import duckdb

BOOK_REBUILD = "daedalus_book_rebuild"
ROWS_SQL = (
    f"STRUCT(seq BIGINT, ts TIMESTAMPTZ, capture_ts TIMESTAMPTZ, kind VARCHAR, first_update_id BIGINT, "
    f"last_update_id BIGINT, prev_update_id BIGINT, bids {LEVEL_SQL}, asks {LEVEL_SQL}, n_breaks BIGINT)[]"
)
RETURN_SQL = (
    f"STRUCT(seq BIGINT[], ts TIMESTAMPTZ[], capture_ts TIMESTAMPTZ[], kind VARCHAR[], "
    f"last_update_id BIGINT[], emit BOOLEAN[], restart BOOLEAN[], break_before BOOLEAN[], reason VARCHAR[], "
    f"bids {LEVEL_SQL}[], asks {LEVEL_SQL}[], "
    f"bid_bands DOUBLE[][], ask_bands DOUBLE[][])"
)
KIND_CODES = {"snapshot": 0, "delta": 1, "checkpoint": 2, "invalid": 3}
"""'invalid' is what silver.orderbook calls a row whose levels it refuses (macros/quality.sql)."""
LEVEL = pa.struct([("price", pa.float64()), ("size", pa.float64())])
PASS = ("seq", "ts", "capture_ts", "kind", "last_update_id")


def _ids(rows: pa.StructArray, name: str) -> np.ndarray:
    return np.asarray(
        pc.fill_null(pc.struct_field(rows, name), NO_ID).to_numpy(zero_copy_only=False), np.int64
    )


def _kinds(rows: pa.StructArray) -> np.ndarray:
    kind = pc.struct_field(rows, "kind")
    codes = np.full(len(kind), -1, np.int8)
    for name, code in KIND_CODES.items():
        codes[np.asarray(pc.fill_null(pc.equal(kind, name), False).to_numpy(zero_copy_only=False), bool)] = (
            code
        )
    if (codes < 0).any():
        bad = kind.filter(pa.array(codes < 0)).to_pylist()[:3]
        raise ValueError(
            f"{BOOK_REBUILD}: unknown book_updates kind {bad}; "
            "allowed: snapshot, delta, checkpoint (invalid from silver)"
        )
    return codes


def _lists(values: pa.Array, offsets: np.ndarray) -> pa.ListArray:
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32), pa.int32()), values)


def breaks_before(
    emit: np.ndarray, restart: np.ndarray, ts_us: np.ndarray, n_breaks: np.ndarray, staleness_us: int
) -> np.ndarray:
    """break_before of the served rows (False elsewhere): the series rule on served rows only."""
    out = np.zeros(emit.shape[0], np.bool_)
    idx = np.flatnonzero(emit)
    if idx.shape[0]:
        flag = restart[idx].copy()
        flag[0] = True
        flag[1:] |= (n_breaks[idx[1:]] > n_breaks[idx[:-1]]) | (
            ts_us[idx[1:]] - ts_us[idx[:-1]] > staleness_us
        )
        out[idx] = flag
    return out


def rebuild_connection(
    rows: pa.StructArray,
    max_levels: int,
    bands: np.ndarray,
    staleness_s: float,
    strict_deletes: bool,
    start_us: int,
) -> dict[str, pa.Array]:
    """One connection's rows (seq order) through the kernel: a column per output field, one row per
    served row with ts ≥ start_us (the earlier rows only warm the book up and place breaks)."""
    bpx, bsz, boff = aio.levels(pc.struct_field(rows, "bids"))
    apx, asz, aoff = aio.levels(pc.struct_field(rows, "asks"))
    ts = aio.ts_us(pc.struct_field(rows, "ts"))
    wanted = ts >= start_us
    emit, restart, reason, obp, obs, obo, oap, oas, oao, bb, ab = rebuild_books(
        _kinds(rows),
        _ids(rows, "seq"),
        _ids(rows, "first_update_id"),
        _ids(rows, "last_update_id"),
        _ids(rows, "prev_update_id"),
        bpx,
        bsz,
        boff,
        apx,
        asz,
        aoff,
        np.int64(max_levels),
        bands,
        strict_deletes,
        wanted,
    )
    del bpx, bsz, boff, apx, asz, aoff
    n_breaks = np.asarray(
        pc.fill_null(pc.struct_field(rows, "n_breaks"), 0).to_numpy(zero_copy_only=False), np.int64
    )
    bb_flags = breaks_before(emit, restart, ts, n_breaks, int(staleness_s * 1_000_000))
    keep = np.flatnonzero(emit & wanted)
    mask = pa.array(emit & wanted)
    nb = bands.shape[0] - 1
    band_off = np.arange(keep.shape[0] + 1, dtype=np.int64) * nb
    # rows not kept hold no levels, so the kept rows' offsets (and the end) address the values as they are
    b_off, a_off = np.append(obo[keep], obo[-1]), np.append(oao[keep], oao[-1])
    out = {k: pc.struct_field(rows, k).filter(mask) for k in PASS}
    out.update(
        emit=pa.array(emit[keep]),
        restart=pa.array(restart[keep]),
        break_before=pa.array(bb_flags[keep]),
        reason=pa.DictionaryArray.from_arrays(pa.array(reason[keep], pa.int8()), pa.array(REASONS)).cast(
            pa.string()
        ),
        bids=_lists(pa.StructArray.from_arrays([pa.array(obp), pa.array(obs)], fields=list(LEVEL)), b_off),
        asks=_lists(pa.StructArray.from_arrays([pa.array(oap), pa.array(oas)], fields=list(LEVEL)), a_off),
        bid_bands=_lists(aio.f64_array(bb[keep].ravel()), band_off),
        ask_bands=_lists(aio.f64_array(ab[keep].ravel()), band_off),
    )
    return out


def book_rebuild_udf(rows, max_levels, bands, staleness, strict_deletes, start) -> pa.StructArray:
    """Arrow entry point of `daedalus_book_rebuild`: one result row (lists) per connection row."""
    # The previous call's result was freed once DuckDB copied it: hand those pages back to the OS
    # (pyarrow's pool keeps them mapped otherwise, and every later model of the build starts higher).
    pa.default_memory_pool().release_unused()
    rows_a, lv_a, bands_a, stale_a, strict_a, start_a = (
        aio.flat(a) for a in (rows, max_levels, bands, staleness, strict_deletes, start)
    )
    start_us = aio.ts_us(start_a)
    names = [*PASS, "emit", "restart", "break_before", "reason", "bids", "asks", "bid_bands", "ask_bands"]
    parts: dict[str, list[pa.Array]] = {k: [] for k in names}
    lengths, valid = [], []
    for i in range(len(rows_a)):
        if not rows_a[i].is_valid:
            lengths.append(0)
            valid.append(False)
            continue
        edges = np.asarray(bands_a[i].as_py(), np.float64)
        cols = rebuild_connection(
            rows_a[i].values,
            int(lv_a[i].as_py()),
            edges,
            float(stale_a[i].as_py()),
            bool(strict_a[i].as_py()),
            int(start_us[i]),
        )
        for k in names:
            parts[k].append(cols[k])
        lengths.append(len(cols["seq"]))
        valid.append(True)
    off = pa.array(np.concatenate(([0], np.cumsum(lengths))).astype(np.int32), pa.int32())
    mask = pa.array([not v for v in valid], pa.bool_())
    arrays = []
    for k in names:
        got = [p.combine_chunks() if isinstance(p, pa.ChunkedArray) else p for p in parts.pop(k)]
        # one connection (the usual call): its columns as they are; concat_arrays would copy every
        # level once more while the kernel's buffers are still held
        flat = got[0] if len(got) == 1 else pa.concat_arrays(got) if got else _empty(k)
        del got
        arrays.append(pa.ListArray.from_arrays(off, flat, mask=mask))
    return pa.StructArray.from_arrays(arrays, names=names, mask=mask)


def _empty(name: str) -> pa.Array:
    types = {
        "seq": pa.int64(),
        "ts": pa.timestamp("us", tz="UTC"),
        "capture_ts": pa.timestamp("us", tz="UTC"),
        "kind": pa.string(),
        "last_update_id": pa.int64(),
        "emit": pa.bool_(),
        "restart": pa.bool_(),
        "break_before": pa.bool_(),
        "reason": pa.string(),
        "bids": pa.list_(LEVEL),
        "asks": pa.list_(LEVEL),
        "bid_bands": pa.list_(pa.float64()),
        "ask_bands": pa.list_(pa.float64()),
    }
    return pa.array([], types[name])


def register_book(con: duckdb.DuckDBPyConnection) -> None:
    """Register `daedalus_book_rebuild` on `con` (idempotent)."""
    import duckdb

    if aio.registered(con, BOOK_REBUILD):
        return
    t = duckdb.sqltype
    con.create_function(
        BOOK_REBUILD,
        book_rebuild_udf,
        [t(ROWS_SQL), t("INTEGER"), t("DOUBLE[]"), t("DOUBLE"), t("BOOLEAN"), t("TIMESTAMPTZ")],
        t(RETURN_SQL),
        type="arrow",
        null_handling="special",
        side_effects=False,
    )
