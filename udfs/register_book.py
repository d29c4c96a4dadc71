"""DuckDB registration of the full-depth book rebuild (udfs/kernels/book.py): one connection per row.

`daedalus_book_rebuild(rows, max_levels, bands, staleness_s, strict_deletes, start, unserved)`: `rows`
is one connection's bronze `book_updates` rows, `list(struct_pack(seq, ts, capture_ts, kind,
first_update_id, last_update_id, prev_update_id, bids, asks, n_breaks, sync_rule, invalid, hold) ORDER
BY seq)`, as silver.orderbook hands them over (`invalid`: silver refuses the row's levels; `hold`: the
same message came on another connection first; `sync_rule` NULL: inferred for the connection from its
ids, docs/contracts.md). The result holds, per served input row with ts ≥ `start` (the slice; earlier
rows only warm the book up) and in the same order, the pass-through keys, whether the row is served
(`emit`), whether the book restarts there (`restart`), `break_before` (docs/features.md "Time": a restart,
a break event received since the previous row that loaded or changed the book — `n_breaks` grew —,
more than `staleness_s` of exchange time since it, or none; what a checkpoint causes moves to the next
served row) and its reason (`reason`, '' when nothing happened), the top `max_levels` levels and the
whole-book band sums (NULL where not visible). With `unserved` true it holds instead the book messages
(snapshot / delta rows, ts ≥ `start`) NOT served, each with why (`reason`; no levels): what
silver.orderbook_unserved counts. The list's ORDER BY fixes the replay order, never DuckDB's vector
scheduling, so no state crosses calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from daedalus.udfs import arrow_io as aio
from daedalus.udfs import unserved_memo
from daedalus.udfs.arrow_io import LEVEL_SQL
from daedalus.udfs.kernels.book import (
    KIND_CHECKPOINT,
    KIND_DELTA,
    KIND_INVALID,
    KIND_INVALID_CHECKPOINT,
    NO_ID,
    REASONS,
    RULE_CONTIGUOUS,
    RULE_INCREASING,
    RULE_NONE,
    RULE_PREV_CHAIN,
    RULES,
    place_breaks,
    rebuild_books,
)

if TYPE_CHECKING:
    import duckdb

BOOK_REBUILD = "daedalus_book_rebuild"
ROWS_SQL = (
    f"STRUCT(seq BIGINT, ts TIMESTAMPTZ, capture_ts TIMESTAMPTZ, kind VARCHAR, first_update_id BIGINT, "
    f"last_update_id BIGINT, prev_update_id BIGINT, bids {LEVEL_SQL}, asks {LEVEL_SQL}, n_breaks BIGINT, "
    f"sync_rule VARCHAR, invalid BOOLEAN, hold BOOLEAN)[]"
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


def row_ids(rows: pa.StructArray, name: str) -> np.ndarray:
    return np.asarray(
        pc.fill_null(pc.struct_field(rows, name), NO_ID).to_numpy(zero_copy_only=False), np.int64
    )


def row_flags(rows: pa.StructArray, name: str) -> np.ndarray:
    if rows.type.get_field_index(name) < 0:
        return np.zeros(len(rows), bool)
    return np.asarray(pc.fill_null(pc.struct_field(rows, name), False).to_numpy(zero_copy_only=False), bool)


def row_kinds(rows: pa.StructArray) -> tuple[np.ndarray, np.ndarray]:
    """Kernel kind codes (a row silver refuses, `invalid`, breaks the book, a refused checkpoint too)
    and the codes of the kind names as they are."""
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
    raw = codes.copy()
    invalid = row_flags(rows, "invalid")
    codes[invalid & (codes == KIND_CHECKPOINT)] = KIND_INVALID_CHECKPOINT
    codes[invalid & (codes != KIND_INVALID_CHECKPOINT)] = KIND_INVALID
    return codes, raw


RULE_CODES = {name: code for code, name in enumerate(RULES)}


def infer_rule(prev_id: np.ndarray, first_id: np.ndarray, last_id: np.ndarray, kinds: np.ndarray) -> int:
    """The rule of a connection whose rows do not name one (a lake written before `sync_rule`), from
    the ids its deltas carry (docs/contracts.md)."""
    delta = kinds == KIND_DELTA
    if (prev_id[delta] != NO_ID).any():
        return RULE_PREV_CHAIN
    if (first_id[delta] != NO_ID).any():
        return RULE_CONTIGUOUS
    if (last_id[delta] != NO_ID).any():
        return RULE_INCREASING
    return RULE_NONE


def row_rules(
    rows: pa.StructArray, prev_id: np.ndarray, first_id: np.ndarray, last_id: np.ndarray, kinds: np.ndarray
) -> np.ndarray:
    if rows.type.get_field_index("sync_rule") < 0:
        return np.full(len(rows), infer_rule(prev_id, first_id, last_id, kinds), np.int8)
    names = pc.struct_field(rows, "sync_rule")
    out = np.full(len(names), -1, np.int8)
    for name, code in RULE_CODES.items():
        out[np.asarray(pc.fill_null(pc.equal(names, name), False).to_numpy(zero_copy_only=False), bool)] = (
            code
        )
    named = np.asarray(names.is_valid().to_numpy(zero_copy_only=False), bool)
    if (named & (out < 0)).any():
        bad = names.filter(pa.array(named & (out < 0))).to_pylist()[:3]
        raise ValueError(f"{BOOK_REBUILD}: unknown sync_rule {bad}; allowed: {', '.join(RULES)}")
    if (~named).any():
        out[~named] = infer_rule(prev_id, first_id, last_id, kinds)
    return out


def offset_lists(values: pa.Array, offsets: np.ndarray) -> pa.ListArray:
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32), pa.int32()), values)


def level_lists(px: np.ndarray, sz: np.ndarray, offsets: np.ndarray) -> pa.ListArray:
    """Level lists (price, size structs) from flat prices, sizes and offsets."""
    return offset_lists(pa.StructArray.from_arrays([pa.array(px), pa.array(sz)], fields=list(LEVEL)), offsets)


def rebuild_connection(
    rows: pa.StructArray,
    max_levels: int,
    bands: np.ndarray,
    staleness_s: float,
    strict_deletes: bool,
    start_us: int,
    unserved: bool = False,
) -> dict[str, pa.Array]:
    """One connection's rows (seq order) through the kernel: a column per output field, one row per
    served row with ts ≥ start_us (the earlier rows only warm the book up and place breaks); with
    `unserved`, one row per book message with ts ≥ start_us that is not served, with its reason.
    The served pass (here, or streamed: udfs/book_stream.py) files its unserved rows
    (udfs/unserved_memo.py), so the unserved call of the same rows returns them without a second
    kernel pass."""
    ts = aio.ts_us(pc.struct_field(rows, "ts"))
    kinds, raw_kinds = row_kinds(rows)
    first, last, prev = (row_ids(rows, k) for k in ("first_update_id", "last_update_id", "prev_update_id"))
    rules, hold = row_rules(rows, prev, first, last, kinds), row_flags(rows, "hold")
    sides = (pc.struct_field(rows, "bids"), pc.struct_field(rows, "asks"))
    key = unserved_memo.digest(
        memo_arrays(rows, ts, raw_kinds, kinds, first, last, prev, rules, hold, strict_deletes, sides),
        (int(start_us), int(bool(strict_deletes))),
    )
    if unserved:
        found = unserved_memo.take(key)
        if found is not None:
            return found
    bpx, bsz, boff = aio.levels(sides[0])
    apx, asz, aoff = aio.levels(sides[1])
    del sides
    wanted = (ts >= start_us) & (not unserved)
    anchored = bool(len(ts) and ts[0] < start_us)
    emit, restart, reason, applied, account, obp, obs, obo, oap, oas, oao, bb, ab = rebuild_books(
        kinds,
        row_ids(rows, "seq"),
        first,
        last,
        prev,
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
        rules,
        hold,
        anchored,
    )
    del bpx, bsz, boff, apx, asz, aoff
    not_served = unserved_rows(rows, kinds, emit, account, ts, start_us)
    if unserved:
        return not_served
    unserved_memo.put(key, not_served)
    nb = bands.shape[0] - 1
    n_breaks = np.asarray(
        pc.fill_null(pc.struct_field(rows, "n_breaks"), 0).to_numpy(zero_copy_only=False), np.int64
    )
    bb_flags, why = place_breaks(
        emit, applied, restart, reason, ts, n_breaks, np.int64(int(staleness_s * 1_000_000)), anchored
    )
    keep = np.flatnonzero(emit & wanted)
    mask = pa.array(emit & wanted)
    band_off = np.arange(keep.shape[0] + 1, dtype=np.int64) * nb
    # rows not kept hold no levels, so the kept rows' offsets (and the end) address the values as they are
    b_off, a_off = np.append(obo[keep], obo[-1]), np.append(oao[keep], oao[-1])
    out = {k: pc.struct_field(rows, k).filter(mask) for k in PASS}
    out.update(
        emit=pa.array(emit[keep]),
        restart=pa.array(restart[keep]),
        break_before=pa.array(bb_flags[keep]),
        reason=reason_strings(why[keep]),
        bids=level_lists(obp, obs, b_off),
        asks=level_lists(oap, oas, a_off),
        bid_bands=offset_lists(aio.f64_array(bb[keep].ravel()), band_off),
        ask_bands=offset_lists(aio.f64_array(ab[keep].ravel()), band_off),
    )
    return out


def memo_arrays(
    rows: pa.StructArray, ts, raw_kinds, kinds, first, last, prev, rules, hold, strict_deletes, sides
) -> list[np.ndarray]:
    """What decides the unserved rows and their values: keys, ids (and which are NULL), kinds, flags,
    and the levels (lengths, prices, sizes) only where deletes are strict (otherwise they never
    decide); the digest (udfs/unserved_memo.py) adds the slice start."""
    nulls = [
        np.asarray(pc.is_null(pc.struct_field(rows, k)).to_numpy(zero_copy_only=False), bool)
        for k in ("ts", "last_update_id")
    ]
    arrays = [
        row_ids(rows, "seq"),
        ts,
        aio.ts_us(pc.struct_field(rows, "capture_ts")),
        raw_kinds,
        kinds,
        first,
        last,
        prev,
        rules,
        hold,
        *nulls,
    ]
    if strict_deletes:
        for side in sides:
            px, sz, off = aio.levels(side)
            arrays.extend((px, sz, np.diff(off)))  # lengths, not offsets: the same in any chunking
    return arrays


def unserved_rows(
    rows: pa.StructArray,
    kinds: np.ndarray,
    emit: np.ndarray,
    account: np.ndarray,
    ts: np.ndarray,
    start_us: int,
) -> dict[str, pa.Array]:
    """The book messages (no checkpoints) with ts ≥ start_us the kernel did not serve, with why."""
    message = (kinds != KIND_CHECKPOINT) & (kinds != KIND_INVALID_CHECKPOINT)
    keep = np.flatnonzero(message & ~emit & (ts >= start_us))
    out = {k: pc.struct_field(rows, k).take(pa.array(keep)) for k in PASS}
    empty = np.zeros(keep.shape[0] + 1, np.int64)
    out.update(
        emit=pa.array(np.zeros(keep.shape[0], bool)),
        restart=pa.array(np.zeros(keep.shape[0], bool)),
        break_before=pa.array(np.zeros(keep.shape[0], bool)),
        reason=reason_strings(account[keep]),
        bids=offset_lists(pa.array([], LEVEL), empty),
        asks=offset_lists(pa.array([], LEVEL), empty),
        bid_bands=offset_lists(pa.array([], pa.float64()), empty),
        ask_bands=offset_lists(pa.array([], pa.float64()), empty),
    )
    return out


def reason_strings(codes: np.ndarray) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int8()), pa.array(REASONS)).cast(pa.string())


def book_rebuild_udf(rows, max_levels, bands, staleness, strict_deletes, start, unserved) -> pa.StructArray:
    """Arrow entry point of `daedalus_book_rebuild`: one result row (lists) per connection row."""
    # The previous call's result was freed once DuckDB copied it: hand those pages back to the OS
    # (pyarrow's pool keeps them mapped otherwise, and every later model of the build starts higher).
    pa.default_memory_pool().release_unused()
    rows_a, lv_a, bands_a, stale_a, strict_a, start_a, unserved_a = (
        aio.flat(a) for a in (rows, max_levels, bands, staleness, strict_deletes, start, unserved)
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
            bool(unserved_a[i].as_py()),
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
        [t(ROWS_SQL), t("INTEGER"), t("DOUBLE[]"), t("DOUBLE"), t("BOOLEAN"), t("TIMESTAMPTZ"), t("BOOLEAN")],
        t(RETURN_SQL),
        type="arrow",
        null_handling="special",
        side_effects=False,
    )
