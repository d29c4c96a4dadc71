"""Physical Parquet encoding of bronze files per channel, used by `land` (daedalus/land/landing.py) when it
writes bronze partitions. The logical schema (collector/schemas.py) says what the columns are; this
module only how they are stored. Raw segments keep ingestion.parquet_compression: they are transient,
and a Pi's collector should not spend zstd-19 CPU on every flush.

`book_updates` (measured by benchmarks/book_bytes.py on the real Binance capture, 3,449 delta rows
of 33 changed levels on average; delta rows alone):
  zstd 3 + dictionary (pyarrow's default encodings)   645 KB
  zstd 3, no dictionary                               590 KB
  zstd 9, no dictionary                               536 KB
  zstd 19, no dictionary                              492 KB   <- chosen (0.7 s write per 5.8 min)
  brotli 11, no dictionary                            439 KB   (5.2 s write: ~22 CPU-min a symbol-day)
  byte_stream_split on price/size (zstd 19)         1,015 KB   (the bytes of 2-decimal prices are noise)
  row groups of 1,000 rows instead of 16,384          +10 %
Dictionaries lose because a delta's levels rarely repeat a recent value exactly; level order within a
row (best first or ascending) changes nothing measurable.
"""

from __future__ import annotations

from typing import Any

_OPTIONS: dict[str, dict[str, Any]] = {
    "book_updates": {"compression": "zstd", "compression_level": 19, "use_dictionary": False},
}
# Rows per row group in a bronze file: land gathers a segment's batches (one per collector flush) up
# to this many rows, since small row groups compress worse. None = one row group per batch.
_ROW_GROUP_ROWS: dict[str, int] = {"book_updates": 16_384}
DEFAULT_OPTIONS: dict[str, Any] = {"compression": "zstd"}


def parquet_options(channel: str) -> dict[str, Any]:
    """pyarrow.parquet writer options for a channel's bronze files."""
    return dict(_OPTIONS.get(channel, DEFAULT_OPTIONS))


def row_group_rows(channel: str) -> int | None:
    return _ROW_GROUP_ROWS.get(channel)
