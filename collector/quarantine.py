"""Rows → typed Arrow tables, with records that cannot be converted set aside, never fatal.

The fast path converts a whole batch at once. Only if that fails (a bad type) or a required
(non-nullable) column comes out null is the batch converted row by row, so one malformed record
costs its batch a slower conversion, never its other rows. Rejected records go to the quarantine
segment `raw/ready/{source}/quarantine/` with the error text and the record as JSON, and the sink
reports them in `events` (event_type `quarantine`), so the loss is visible to ETL.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from daedalus.collector.schemas import TS_NS_UTC

QUARANTINE_CHANNEL = "quarantine"
QUARANTINE = pa.schema(
    [
        pa.field("collected_at", pa.int64(), nullable=False),
        pa.field("capture_ts", TS_NS_UTC, nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("channel", pa.string(), nullable=False),
        pa.field("error", pa.string(), nullable=False),
        pa.field("record_json", pa.string()),
    ]
)


@dataclass(slots=True)
class Rejected:
    row: Any
    error: str


@dataclass(slots=True)
class Conversion:
    table: pa.Table
    rejected: list[Rejected] = field(default_factory=list)


def _levels_as_structs(levels: Any) -> Any:
    """ccxt gives book levels as [price, size] pairs; bronze stores {price, size} structs."""
    if isinstance(levels, list) and levels and isinstance(levels[0], list | tuple):
        return [{"price": lv[0], "size": lv[1]} for lv in levels]
    return levels


def _normalize(channel: str, row: dict) -> dict:
    if channel == "orderbook":
        bids, asks = row.get("bids"), row.get("asks")
        if bids is not None or asks is not None:
            row = dict(row)
            row["bids"] = _levels_as_structs(bids)
            row["asks"] = _levels_as_structs(asks)
    return row


def _check_required(table: pa.Table, schema: pa.Schema) -> str | None:
    for f in schema:
        if not f.nullable and table.column(f.name).null_count:
            return f"missing required field '{f.name}'"
    return None


def convert_rows(channel: str, rows: list[Any], schema: pa.Schema) -> Conversion:
    """Convert rows (dicts of bronze columns) to `schema`; unconvertible rows are returned as rejected."""
    if not rows:
        return Conversion(schema.empty_table())
    normal = [_normalize(channel, r) if isinstance(r, dict) else r for r in rows]
    if all(isinstance(r, dict) for r in normal):
        try:
            table = pa.Table.from_pylist(normal, schema=schema)
            if _check_required(table, schema) is None:
                return Conversion(table)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            pass
    good: list[pa.Table] = []
    rejected: list[Rejected] = []
    for original, row in zip(rows, normal, strict=True):
        if not isinstance(row, dict):
            rejected.append(Rejected(original, f"record is a {type(row).__name__}, not a dict of columns"))
            continue
        try:
            one = pa.Table.from_pylist([row], schema=schema)
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as e:
            rejected.append(Rejected(original, f"{type(e).__name__}: {e}"))
            continue
        problem = _check_required(one, schema)
        if problem is not None:
            rejected.append(Rejected(original, problem))
            continue
        good.append(one)
    table = pa.concat_tables(good) if good else schema.empty_table()
    return Conversion(table, rejected)


def quarantine_table(source: str, channel: str, rejected: list[Rejected]) -> pa.Table:
    now = time.time_ns()
    return pa.Table.from_pylist(
        [
            {
                "collected_at": now // 1_000_000,
                "capture_ts": now,
                "source": source,
                "channel": channel,
                "error": r.error,
                "record_json": json.dumps(r.row, default=repr, separators=(",", ":")),
            }
            for r in rejected
        ],
        schema=QUARANTINE,
    )
