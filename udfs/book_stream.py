"""The full-depth book rebuild as a stream (udfs/relations.py kind `book_rebuild`): silver.orderbook's
served books, produced batch by batch.

The input is bronze `book_updates` rows sorted by (exchange, symbol, conn_id, seq, capture_ts), with the
columns `daedalus_book_rebuild` takes per row (udfs/register_book.py) plus the connection keys, `strict`
(deletes are strict on this exchange) and `sync_rule` already named (a connection without one carries the
rule inferred from its rows, macros/book_updates.sql). Each connection's rows replay through the
resumable kernel (udfs/kernels/book.py `rebuild_chunk`, `place_breaks_chunk`): its state is carried
from batch to batch, so the rows out equal what one call over the connection's whole rows gives, while
only a batch of rows and books is held at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from daedalus.udfs import arrow_io as aio
from daedalus.udfs import relations, unserved_memo
from daedalus.udfs.kernels.book import new_breaks, new_state, place_breaks_chunk, rebuild_chunk
from daedalus.udfs.register_book import (
    LEVEL,
    level_lists,
    memo_arrays,
    offset_lists,
    reason_strings,
    row_flags,
    row_ids,
    row_kinds,
    row_rules,
    unserved_rows,
)

KIND = "book_rebuild"
KEYS = ("exchange", "symbol", "conn_id")
MESSAGE_FIELDS = [
    ("exchange", pa.string()),
    ("symbol", pa.string()),
    ("conn_id", pa.string()),
    ("seq", pa.int64()),
    ("ts", pa.timestamp("us", tz="UTC")),
    ("capture_ts", pa.timestamp("us", tz="UTC")),
    ("kind", pa.string()),
    ("last_update_id", pa.int64()),
]
"""The columns naming one book message, served (SCHEMA) or not (UNSERVED_SCHEMA)."""
SCHEMA = pa.schema(
    [
        *MESSAGE_FIELDS,
        ("break_before", pa.bool_()),
        ("reason", pa.string()),
        ("bids", pa.list_(LEVEL)),
        ("asks", pa.list_(LEVEL)),
        ("bid_bands", pa.list_(pa.float64())),
        ("ask_bands", pa.list_(pa.float64())),
    ]
)


UNSERVED_KIND = "book_unserved"
UNSERVED_SCHEMA = pa.schema([*MESSAGE_FIELDS, ("reason", pa.string())])


class _Connection:
    """One connection's replay state between batches, and its unserved rows so far (filed for
    silver.orderbook_unserved when the connection ends, udfs/unserved_memo.py)."""

    def __init__(self, key: tuple[Any, ...], start_us: int, anchored: bool, strict: bool) -> None:
        self.key = key
        self.start_us, self.anchored, self.strict = start_us, anchored, strict
        self.base = 0
        self.state, self.front = new_state()
        self.sides = [np.empty(64) for _ in range(4)]
        self.breaks = new_breaks()
        self.memo_key = unserved_memo.Digest((start_us, int(strict)))
        self.unserved: list[dict[str, pa.Array]] = []
        self.named = self.unnamed = False  # rows with / without their own sync_rule (`unnamed`)

    def finish(self) -> tuple[bytes, pa.Table]:
        """File the connection's unserved rows; returns their key and the rows as the unserved
        model's (UNSERVED_SCHEMA)."""
        cols = {k: pa.concat_arrays([u[k] for u in self.unserved]) for k in self.unserved[0]}
        digest = self.memo_key.digest()
        unserved_memo.put(digest, cols)
        n = len(cols["seq"])
        keys = [pa.array([v] * n, pa.string()) for v in self.key]
        table = pa.Table.from_arrays(
            [*keys, *(cols[k] for k in UNSERVED_SCHEMA.names[3:])], names=UNSERVED_SCHEMA.names
        )
        if table.schema != UNSERVED_SCHEMA:
            table = table.cast(UNSERVED_SCHEMA)
        return digest, table


def slice_key(params: dict[str, Any]) -> str | None:
    """The whole-slice memo key of a stream (udfs/unserved_memo.py `put_slice`): its relation's name and
    the stamp of the bronze files it reads; None when the files are not local."""
    sources = params.get(relations.SOURCES)
    return None if sources is None else f"{params[relations.RELATION]}/{sources}"


def rebuild_stream(batches: Iterator[pa.RecordBatch], params: dict[str, Any]) -> Iterator[pa.RecordBatch]:
    """The served rows (ts ≥ the slice start) of every connection in `batches`, in input order. Run to
    its end, it files the slice's unserved rows (every connection's) for silver.orderbook_unserved
    (unless a connection has rows with and without their own sync_rule: `unnamed`)."""
    conn: _Connection | None = None
    key: tuple[Any, ...] | None = None
    filed: list[bytes] = []
    tables: list[pa.Table] = []

    mixed = False

    def finish(c: _Connection) -> None:
        nonlocal mixed
        # A connection with rows with and without a sync_rule: here the unnamed ones take the rule SQL
        # inferred from them alone, in the unserved model's replay the rule register_book.infer_rule
        # finds in all its rows. Its slice is not filed whole: the replay decides, as before.
        mixed |= c.named and c.unnamed
        digest, table = c.finish()
        filed.append(digest)
        tables.append(table)

    for run_key, rows in relations.key_runs(batches, KEYS):
        if run_key != key:
            if conn is not None:
                finish(conn)
            key = run_key
            # the slice start (`slice_start`, the same on every row): earlier rows only warm up
            first_ts, start_us = (int(aio.ts_us(rows.column(c)[:1])[0]) for c in ("ts", "slice_start"))
            strict = bool(rows.column("strict")[0].as_py())  # per exchange: the same on every row
            conn = _Connection(run_key, start_us, first_ts < start_us, strict)
        assert conn is not None
        if "unnamed" in rows.schema.names:
            unnamed = rows.column("unnamed")
            conn.unnamed |= bool(pc.any(unnamed).as_py())
            conn.named |= not bool(pc.all(unnamed).as_py())
        yield _chunk(rows, conn, params)
    if conn is not None:
        finish(conn)
    whole = slice_key(params)
    if whole is not None and not mixed:
        unserved_memo.put_slice(whole, pa.concat_tables([UNSERVED_SCHEMA.empty_table(), *tables]), filed)


def _chunk(batch: pa.RecordBatch, conn: _Connection, params: dict[str, Any]) -> pa.RecordBatch:
    rows = pa.StructArray.from_arrays(batch.columns, names=batch.schema.names)
    ts = aio.ts_us(pc.struct_field(rows, "ts"))
    kinds, raw_kinds = row_kinds(rows)
    first, last, prev = (row_ids(rows, k) for k in ("first_update_id", "last_update_id", "prev_update_id"))
    rules, hold = row_rules(rows, prev, first, last, kinds), row_flags(rows, "hold")
    strict = conn.strict
    sides = (pc.struct_field(rows, "bids"), pc.struct_field(rows, "asks"))
    conn.memo_key.update(
        memo_arrays(rows, ts, raw_kinds, kinds, first, last, prev, rules, hold, strict, sides)
    )
    bpx, bsz, boff = aio.levels(sides[0])
    apx, asz, aoff = aio.levels(sides[1])
    start_us, bands = conn.start_us, np.asarray(params["bands"], np.float64)
    wanted = ts >= start_us
    got = rebuild_chunk(
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
        np.int64(params["max_levels"]),
        bands,
        strict,
        wanted,
        rules,
        hold,
        conn.anchored,
        np.int64(conn.base),
        conn.state,
        conn.front,
        *conn.sides,
    )
    emit, restart, reason, applied, account, obp, obs, obo, oap, oas, oao, bb, ab = got[:13]
    conn.sides = list(got[13:])
    del bpx, bsz, boff, apx, asz, aoff
    n_breaks = np.asarray(
        pc.fill_null(pc.struct_field(rows, "n_breaks"), 0).to_numpy(zero_copy_only=False), np.int64
    )
    staleness = np.int64(int(params["staleness_s"] * 1_000_000))
    base = np.int64(conn.base)
    flags, why = place_breaks_chunk(
        emit, applied, restart, reason, ts, n_breaks, staleness, conn.anchored, base, conn.breaks
    )
    conn.base += len(ts)
    conn.unserved.append(unserved_rows(rows, kinds, emit, account, ts, conn.start_us))
    keep = np.flatnonzero(emit & wanted)
    mask = pa.array(emit & wanted)
    nb = bands.shape[0] - 1
    band_off = np.arange(keep.shape[0] + 1, dtype=np.int64) * nb
    # rows not kept hold no levels, so the kept rows' offsets (and the end) address the values as they are
    b_off, a_off = np.append(obo[keep], obo[-1]), np.append(oao[keep], oao[-1])
    out = [batch.column(k).filter(mask) for k in (*KEYS, "seq", "ts", "capture_ts", "kind", "last_update_id")]
    out += [
        pa.array(flags[keep]),
        reason_strings(why[keep]),
        level_lists(obp, obs, b_off),
        level_lists(oap, oas, a_off),
        offset_lists(aio.f64_array(bb[keep].ravel()), band_off),
        offset_lists(aio.f64_array(ab[keep].ravel()), band_off),
    ]
    return pa.RecordBatch.from_arrays(out, schema=SCHEMA)


# The input query joins the bronze rows (level lists) to their narrow keys (macros/book_updates.sql
# `upd_rows`); DuckDB's estimates put the bronze side on the hash table, which then held every list of
# the window read (~160 MB of a 1 h slice). Without the build-side swap, every join of that query
# builds on its right side as written: the narrow keys, so the lists only stream through.
INPUT_SETTINGS = {"disabled_optimizers": "build_side_probe_side"}
# The unserved model's replay (sql/silver/orderbook_unserved.sql), the same rows: the same reason.
UNSERVED_SETTINGS = INPUT_SETTINGS


def unserved_stream(batches: Iterator[pa.RecordBatch], params: dict[str, Any]) -> Iterator[pa.RecordBatch]:
    """silver.orderbook_unserved's replayed rows of a slice (UNSERVED_SCHEMA): what the served stream
    named `params["served"]` filed when it ran to its end over the same bronze files (its input query
    is never run then), else the input query's rows (the replay, macros/book_updates.sql)."""
    sources = params.get(relations.SOURCES)
    found = None if sources is None else unserved_memo.take_slice(f"{params['served']}/{sources}")
    if found is not None:
        yield from found.to_batches()
        return
    yield from batches


# Input rows per batch: a book message in (a delta: a dozen levels) is a served book out (max_levels per
# side, bands, the kernel's arrays beside them), so a batch costs several times its input. At 4,096
# rows silver.orderbook alone (Pi profile, 24 h updates day) peaks ~15-20 MB lower than at the
# relations' 16,384, at the same CPU; 2,048 cost +4 % CPU for no further gain (docs/benchmarks.md).
INPUT_BATCH_ROWS = 4096

_ROWS = INPUT_BATCH_ROWS
relations.register_kind(KIND, SCHEMA, rebuild_stream, INPUT_SETTINGS, identify=True, batch_rows=_ROWS)
relations.register_kind(
    UNSERVED_KIND, UNSERVED_SCHEMA, unserved_stream, UNSERVED_SETTINGS, identify=True, batch_rows=_ROWS
)
