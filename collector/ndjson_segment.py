"""Legacy NDJSON segments (`ingestion.raw_format: ndjson`) with the Parquet segments' lifecycle.

One JSON object per line; timestamps as int ns since the epoch (exact, unlike floats or ISO text
with a timezone parser in between). Every flush appends whole lines, flushes and fsyncs, so after a
crash everything up to the last newline is intact; `collector/repair.py` keeps those lines and
quarantines the torn tail. Close → fsync → publish into ready/ exactly as for Parquet.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from daedalus.collector.segment import RotatingSegments


def _plain(table: pa.Table) -> pa.Table:
    """Timestamps → int64 ns so rows serialize as exact integers."""
    cols = []
    for field, col in zip(table.schema, table.columns, strict=True):
        if pa.types.is_timestamp(field.type):
            col = col.cast(pa.timestamp("ns", tz=field.type.tz)).cast(pa.int64())
        cols.append(col)
    return pa.Table.from_arrays(cols, names=table.column_names)


def table_to_ndjson(table: pa.Table) -> bytes:
    rows = _plain(table).to_pylist()
    return "".join(json.dumps(r, separators=(",", ":"), allow_nan=True) + "\n" for r in rows).encode()


def ndjson_to_table(lines: list[bytes] | bytes, schema: pa.Schema) -> pa.Table:
    """Parse NDJSON back into the typed bronze schema (keys beyond the schema are kept as extra columns)."""
    if isinstance(lines, bytes):
        lines = [ln for ln in lines.splitlines() if ln.strip()]
    rows = [json.loads(ln) for ln in lines]
    extra = sorted({k for r in rows for k in r} - set(schema.names))
    table = pa.Table.from_pylist(rows, schema=schema)
    for name in extra:
        table = table.append_column(name, pa.array([r.get(name) for r in rows]))
    return table


class NdjsonSegmentWriter(RotatingSegments):
    suffix = ".ndjson"

    def __init__(
        self,
        root: str | Path,
        source: str,
        channel: str,
        schema: pa.Schema,
        segment_max_mb: float = 50.0,
        on_closed: Callable[[Path, int], None] | None = None,
    ) -> None:
        super().__init__(root, source, channel, schema, segment_max_mb, on_closed)
        self._file = None

    def _open_file(self, path: Path) -> None:
        self._file = open(path, "ab")  # noqa: SIM115 — held open across flushes

    def _append(self, table: pa.Table) -> None:
        assert self._file is not None
        self._file.write(table_to_ndjson(table))
        self._file.flush()
        os.fsync(self._file.fileno())

    def _size(self) -> int:
        return os.fstat(self._file.fileno()).st_size if self._file is not None else 0

    def _release(self) -> None:
        if self._file is not None:
            # a full disk: the unflushed tail is lost, repair.py keeps the complete lines
            with contextlib.suppress(OSError, ValueError):
                self._file.close()
        self._file = None

    def _finish(self) -> None:
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
