"""Raw segments: one open segment per (source, channel), closed into `raw/ready/` atomically.

Lifecycle of a segment (shared by the Parquet writer here and the NDJSON one):
  raw/active/{source}/{channel}/segment_<UTC time>_<uuid>.parquet   being written
  → close: footer written, file fsynced
  → published: hard-linked into raw/ready/{source}/{channel}/ (fails rather than overwrite), the
    active name unlinked, both directories fsynced.
Names carry the UTC open time and a uuid, so no restart can ever reuse one.

Each flush becomes one Parquet row group. Because a Parquet file without its footer is unreadable,
every flushed batch is ALSO appended to a small Arrow IPC stream beside it (`segment_X.arrow`, the
journal, lz4-compressed, fsynced per flush). A clean close deletes the journal; after a crash
`collector/repair.py` rebuilds the segment from the journal's complete batches.

Rotation: when the file's size on disk reaches `segment_max_mb`, or when the UTC hour changes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from daedalus.errors import StorageError
from daedalus.fsio import fsync_dir

JOURNAL_SUFFIX = ".arrow"
JOURNAL_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")


def segment_name(now: dt.datetime | None = None) -> str:
    """`segment_20240808T001500123456Z_<uuid12>`: sortable by open time, unique across restarts."""
    now = now or dt.datetime.now(dt.UTC)
    return f"segment_{now:%Y%m%dT%H%M%S%fZ}_{uuid.uuid4().hex[:12]}"


def publish(src: Path, dst: Path) -> None:
    """Move a closed segment to its final name without ever overwriting an existing file."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        raise StorageError(f"{dst}: a segment of this name already exists; refusing to overwrite it")
    try:
        os.link(src, dst)  # fails with EEXIST instead of silently replacing
        os.unlink(src)
    except FileExistsError:
        raise StorageError(
            f"{dst}: a segment of this name already exists; refusing to overwrite it"
        ) from None
    except OSError:
        os.rename(src, dst)  # filesystems without hard links (FAT/exFAT sticks on a Pi)
    fsync_dir(dst.parent)
    fsync_dir(src.parent)


def raw_dir(root: Path, state: str, source: str, channel: str) -> Path:
    return root / "raw" / state / source / channel


class RotatingSegments:
    """One open segment at a time for a (source, channel); subclasses implement the file format."""

    suffix = ".bin"

    def __init__(
        self,
        root: str | Path,
        source: str,
        channel: str,
        schema: pa.Schema,
        segment_max_mb: float,
        on_closed: Callable[[Path, int], None] | None = None,
    ) -> None:
        self.root = Path(root)
        self.source = source
        self.channel = channel
        self.schema = schema
        self.max_bytes = int(segment_max_mb * 1024 * 1024)
        self.on_closed = on_closed
        self.active_path: Path | None = None
        self.opened_hour: tuple[int, int, int, int] | None = None
        self.rows_in_segment = 0
        self.rows_written = 0
        self.bytes_closed = 0
        self.segments_closed = 0
        self.closed_paths: list[Path] = []

    # -- format hooks ---------------------------------------------------------------------------
    def _open_file(self, path: Path) -> None:
        raise NotImplementedError

    def _append(self, table: pa.Table) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        """Complete the file (footer etc.), flush and fsync it, release handles."""
        raise NotImplementedError

    def _size(self) -> int:
        raise NotImplementedError

    # -- lifecycle -------------------------------------------------------------------------------
    def write(self, table: pa.Table, now: dt.datetime | None = None) -> None:
        """Append one flushed batch; rotate on the hour boundary first and on size afterwards."""
        if table.num_rows == 0:
            return
        now = now or dt.datetime.now(dt.UTC)
        self.rotate_if_hour_changed(now)
        if self.active_path is None:
            self._open(now)
        self._append(table)
        self.rows_in_segment += table.num_rows
        self.rows_written += table.num_rows
        if self._size() >= self.max_bytes:
            self.close()

    def rotate_if_hour_changed(self, now: dt.datetime | None = None) -> None:
        now = now or dt.datetime.now(dt.UTC)
        if self.active_path is not None and self.opened_hour != _hour(now):
            self.close()

    def _open(self, now: dt.datetime) -> None:
        active = raw_dir(self.root, "active", self.source, self.channel)
        active.mkdir(parents=True, exist_ok=True)
        self.active_path = active / (segment_name(now) + self.suffix)
        self.opened_hour = _hour(now)
        self.rows_in_segment = 0
        self._open_file(self.active_path)
        fsync_dir(active)

    @property
    def open_bytes(self) -> int:
        """Size of the open segment; read from other threads (stats), so a concurrent close is fine."""
        try:
            return self._size() if self.active_path is not None else 0
        except (OSError, ValueError, AttributeError):
            return 0

    def close(self) -> Path | None:
        """Close the open segment into ready/; returns its ready path (None if nothing was open)."""
        if self.active_path is None:
            return None
        active = self.active_path
        self._finish()
        size = active.stat().st_size
        ready = raw_dir(self.root, "ready", self.source, self.channel) / active.name
        publish(active, ready)
        self._after_publish(active)
        self.active_path = None
        self.opened_hour = None
        self.bytes_closed += size
        self.segments_closed += 1
        self.closed_paths.append(ready)
        if self.on_closed is not None:
            self.on_closed(ready, self.rows_in_segment)
        return ready

    def _after_publish(self, active: Path) -> None:
        """Hook: remove sidecars once the segment is safely in ready/."""

    def abandon(self) -> Path | None:
        """Drop the open segment as a crash would (e.g. the disk is full: no footer can be written):
        handles closed, files left in active/ for repair.py. The next write opens a new segment."""
        active = self.active_path
        self._release()
        self.active_path = None
        self.opened_hour = None
        return active

    def _release(self) -> None:
        """Hook: close file handles without completing the file, ignoring errors."""


def _hour(now: dt.datetime) -> tuple[int, int, int, int]:
    now = now.astimezone(dt.UTC)
    return (now.year, now.month, now.day, now.hour)


class StreamingParquetWriter(RotatingSegments):
    """Typed Parquet segments (schemas of collector/schemas.py), one row group per flush."""

    suffix = ".parquet"

    def __init__(
        self,
        root: str | Path,
        source: str,
        channel: str,
        schema: pa.Schema,
        segment_max_mb: float = 50.0,
        compression: str = "zstd",
        compression_level: int | None = 3,
        on_closed: Callable[[Path, int], None] | None = None,
        journal: bool = True,
    ) -> None:
        super().__init__(root, source, channel, schema, segment_max_mb, on_closed)
        self.compression = compression
        # Only zstd takes the configured level across its whole 1-22 range; gzip only up to 9.
        if compression == "zstd" or (
            compression == "gzip" and compression_level is not None and compression_level <= 9
        ):
            self.compression_level = compression_level
        else:
            self.compression_level = None
        self.journal = journal
        self._file = None
        self._writer: pq.ParquetWriter | None = None
        self._journal_file = None
        self._journal_writer: pa.ipc.RecordBatchStreamWriter | None = None

    def _open_file(self, path: Path) -> None:
        if self.journal:
            # The journal exists before the Parquet file so a repair always finds the recovery copy.
            self._journal_file = open(path.with_suffix(JOURNAL_SUFFIX), "wb")  # noqa: SIM115
            self._journal_writer = pa.ipc.new_stream(self._journal_file, self.schema, options=JOURNAL_OPTIONS)
            self._journal_file.flush()
        self._file = open(path, "wb")  # noqa: SIM115 — held open across flushes, closed in _finish
        self._writer = pq.ParquetWriter(
            self._file,
            self.schema,
            compression=self.compression,
            compression_level=self.compression_level,
        )

    def _append(self, table: pa.Table) -> None:
        assert self._writer is not None and self._file is not None
        table = table.select(self.schema.names).cast(self.schema) if table.schema != self.schema else table
        if self._journal_writer is not None and self._journal_file is not None:
            # Journal first and fsynced: once write() returns, a SIGKILL or power cut loses no row.
            self._journal_writer.write_table(table)
            self._journal_file.flush()
            os.fsync(self._journal_file.fileno())
        self._writer.write_table(table, row_group_size=max(table.num_rows, 1))
        self._file.flush()

    def _size(self) -> int:
        return os.fstat(self._file.fileno()).st_size if self._file is not None else 0

    def _finish(self) -> None:
        assert self._writer is not None and self._file is not None
        self._writer.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._writer = None
        self._file = None
        if self._journal_writer is not None and self._journal_file is not None:
            self._journal_writer.close()
            self._journal_file.close()
        self._journal_writer = None
        self._journal_file = None

    def _release(self) -> None:
        if self._writer is not None:
            self._writer.is_open = False  # its __del__ would write a footer into the closed file
        for f in (self._journal_file, self._file):
            if f is not None:
                # may raise again on a full disk: the buffered bytes are lost, the journal's flushed
                # batches are not
                with contextlib.suppress(OSError, ValueError):
                    f.close()
        self._writer = self._file = self._journal_writer = self._journal_file = None

    def _after_publish(self, active: Path) -> None:
        journal = active.with_suffix(JOURNAL_SUFFIX)
        if journal.exists():
            journal.unlink()
            fsync_dir(active.parent)
