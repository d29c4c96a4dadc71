"""Crash repair of segments left in `raw/active/` (run by the sink before it writes anything).

Rules: never a footer-less (or torn) file in `ready/`, never a deleted one, nothing readable lost,
every repair recorded in `events` (event_type `segment_repair`).

Per segment found in active/:
- Parquet that opens and reads completely: the crash hit between close and publish → publish it.
- Parquet without a valid footer: rebuild it from its journal (`segment_X.arrow`, an Arrow IPC
  stream holding every flushed batch; see segment.py). Its complete batches are written as a valid
  segment `segment_X_repaired.parquet` in ready/; the torn original and its journal are kept under
  `raw/quarantine/{source}/{channel}/` for inspection.
- A journal whose Parquet is already in ready/: the crash hit after publish → drop the journal.
- NDJSON: complete lines that parse are kept (`_repaired.ndjson` in ready/); the torn tail is counted.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from daedalus.collector.diskfull import is_disk_full
from daedalus.collector.ndjson_segment import ndjson_to_table, table_to_ndjson
from daedalus.collector.schemas import SCHEMAS
from daedalus.collector.segment import JOURNAL_SUFFIX, publish, raw_dir
from daedalus.errors import StorageError
from daedalus.fsio import fsync_dir


@dataclass(slots=True)
class RepairResult:
    source: str
    channel: str
    original: Path
    ready: Path | None  # the valid segment now in ready/ (None if nothing was recoverable)
    rows: int  # rows readable in ready/ afterwards
    unreadable_bytes: int
    quarantined: list[Path]
    detail: str
    exchanges: list[str]


def _read_journal(path: Path) -> tuple[list[pa.RecordBatch], pa.Schema | None, int]:
    """Complete batches of an IPC stream journal, its schema, and how many bytes could not be read."""
    data = path.read_bytes()
    batches: list[pa.RecordBatch] = []
    src = pa.BufferReader(data)
    try:
        reader = pa.ipc.open_stream(src)
    except (pa.ArrowException, OSError):
        return [], None, len(data)
    schema = reader.schema
    consumed = src.tell()
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            consumed = len(data)
            break
        except (pa.ArrowException, OSError):
            break
        batches.append(batch)
        consumed = src.tell()
    return batches, schema, len(data) - consumed


def _parquet_rows(path: Path) -> int | None:
    """Row count if the Parquet file is complete and every row group decodes, else None."""
    try:
        pf = pq.ParquetFile(path)
        n = 0
        for i in range(pf.num_row_groups):
            n += pf.read_row_group(i).num_rows
        return n
    except (pa.ArrowException, OSError):
        return None


def _write_tmp(dst: Path, work_dir: Path, write: Callable[[BinaryIO], None]) -> None:
    # Written under active/ (same filesystem), published into ready/ only once complete and fsynced.
    # On any failure (a full disk above all) the temp file goes: the original is still in active/
    # and the next repair starts over, so a failed repair leaves nothing behind.
    tmp = work_dir / f".repair-{dst.name}.tmp"
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        publish(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_parquet(table: pa.Table, dst: Path, work_dir: Path) -> None:
    _write_tmp(dst, work_dir, lambda f: pq.write_table(table, f, compression="zstd"))


def _write_ndjson(table: pa.Table, dst: Path, work_dir: Path) -> None:
    _write_tmp(dst, work_dir, lambda f: f.write(table_to_ndjson(table)))


def _quarantine(root: Path, source: str, channel: str, paths: list[Path]) -> list[Path]:
    qdir = raw_dir(root, "quarantine", source, channel)
    qdir.mkdir(parents=True, exist_ok=True)
    moved = []
    for p in paths:
        if p.exists():
            dst = qdir / p.name
            if dst.exists():
                dst = qdir / f"{p.stem}_{time.time_ns()}{p.suffix}"
            os.rename(p, dst)
            moved.append(dst)
    fsync_dir(qdir)
    return moved


def _exchanges(table: pa.Table | None) -> list[str]:
    if table is None or "exchange" not in table.column_names or table.num_rows == 0:
        return []
    return sorted(x for x in set(table.column("exchange").to_pylist()) if isinstance(x, str))


def _repair_parquet(root: Path, source: str, channel: str, seg: Path) -> RepairResult | None:
    journal = seg.with_suffix(JOURNAL_SUFFIX)
    ready_dir = raw_dir(root, "ready", source, channel)
    ready_same = ready_dir / seg.name
    if not seg.exists():
        # Only the journal is left: the segment was published, the crash came before the cleanup.
        if ready_same.exists() and _parquet_rows(ready_same) is not None:
            journal.unlink()
            fsync_dir(journal.parent)
            return None
    else:
        rows = _parquet_rows(seg)
        if rows is not None:
            if ready_same.exists() and (
                ready_same.stat().st_ino == seg.stat().st_ino or ready_same.read_bytes() == seg.read_bytes()
            ):
                seg.unlink()  # already in ready/ (hard link or copy); the crash came before the unlink
            else:
                if ready_same.exists():  # never overwrite: keep both under distinct names
                    ready_same = ready_dir / f"{seg.stem}_recovered{seg.suffix}"
                publish(seg, ready_same)
            if journal.exists():
                journal.unlink()
            fsync_dir(seg.parent)
            return RepairResult(
                source,
                channel,
                seg,
                ready_same,
                rows,
                0,
                [],
                f"segment {seg.name} was closed but not published; published it with {rows} rows",
                _exchanges(pq.read_table(ready_same, columns=["exchange"]) if rows else None),
            )
    batches, schema, torn = _read_journal(journal) if journal.exists() else ([], None, 0)
    schema = schema or SCHEMAS.get(channel)
    table = pa.Table.from_batches(batches, schema=schema) if batches and schema is not None else None
    ready = None
    if table is not None and table.num_rows:
        ready = ready_dir / f"{seg.stem}_repaired.parquet"
        _write_parquet(table, ready, seg.parent)
    seg_bytes = seg.stat().st_size if seg.exists() else 0
    quarantined = _quarantine(root, source, channel, [seg, journal])
    n = table.num_rows if table is not None else 0
    detail = (
        f"segment {seg.name} had no valid Parquet footer (crash while open, {seg_bytes} bytes); "
        f"recovered {n} rows in {len(batches)} flushed batches from its journal"
        + (f" into {ready.name}" if ready else "")
        + f"; unreadable journal tail {torn} bytes; originals kept in raw/quarantine/{source}/{channel}/"
    )
    return RepairResult(
        source, channel, seg, ready, n, torn + seg_bytes, quarantined, detail, _exchanges(table)
    )


def _repair_ndjson(root: Path, source: str, channel: str, seg: Path) -> RepairResult:
    data = seg.read_bytes()
    cut = data.rfind(b"\n") + 1
    good: list[bytes] = []
    bad_lines = 0
    for line in data[:cut].splitlines():
        if not line.strip():
            continue
        try:
            json.loads(line)
            good.append(line)
        except ValueError:
            bad_lines += 1
    torn = len(data) - cut
    schema = SCHEMAS.get(channel)
    table = ndjson_to_table(good, schema) if good and schema is not None else None
    ready = None
    if table is not None and table.num_rows:
        ready = raw_dir(root, "ready", source, channel) / f"{seg.stem}_repaired.ndjson"
        _write_ndjson(table, ready, seg.parent)
    quarantined = _quarantine(root, source, channel, [seg])
    n = table.num_rows if table is not None else 0
    detail = (
        f"ndjson segment {seg.name} left open by a crash: kept {n} complete lines"
        + (f" in {ready.name}" if ready else "")
        + f"; {bad_lines} unparsable lines, torn tail {torn} bytes; original kept in raw/quarantine/"
    )
    return RepairResult(source, channel, seg, ready, n, torn, quarantined, detail, _exchanges(table))


def repair_segment(root: str | Path, source: str, channel: str, seg: Path) -> RepairResult | None:
    """Repair one segment of raw/active/ (a Parquet segment, its journal, or an NDJSON segment)."""
    root = Path(root)
    if seg.suffix == ".ndjson":
        return _repair_ndjson(root, source, channel, seg) if seg.exists() else None
    return _repair_parquet(root, source, channel, seg.with_suffix(".parquet"))


def repair_active(
    root: str | Path, deferred: list[tuple[str, str, Path]] | None = None
) -> list[RepairResult]:
    """Repair every segment under raw/active/; returns what was done (for the events rows).

    On a full disk a segment's repair fails cleanly (no temp file left, the original untouched):
    it is appended to `deferred` (source, channel, path) for a later try, or, without `deferred`,
    the repair stops with a StorageError naming the segment."""
    root = Path(root)
    active = root / "raw" / "active"
    results: list[RepairResult] = []
    if not active.exists():
        return results
    for chan_dir in sorted(p for p in active.glob("*/*") if p.is_dir()):
        source, channel = chan_dir.parent.name, chan_dir.name
        for tmp in chan_dir.glob(".repair-*.tmp"):
            tmp.unlink()  # an interrupted earlier repair; its original is still here
        stems = sorted(
            {p.stem for p in chan_dir.glob("segment_*") if p.suffix in (".parquet", JOURNAL_SUFFIX)}
        )
        segs = [chan_dir / f"{stem}.parquet" for stem in stems] + sorted(chan_dir.glob("segment_*.ndjson"))
        for seg in segs:
            try:
                result = repair_segment(root, source, channel, seg)
            except OSError as e:
                if not is_disk_full(e):
                    raise
                if deferred is None:
                    raise StorageError(
                        f"{seg}: disk full while repairing this segment ({e.strerror or e}); "
                        "it is untouched in raw/active/ - free space and start again"
                    ) from None
                deferred.append((source, channel, seg))
                continue
            if result is not None:
                results.append(result)
    return results


def repair_event_rows(result: RepairResult, seq_start: int = 1) -> list[dict]:
    """`segment_repair` events rows for a repair: one per exchange found in the segment."""
    now = time.time_ns()
    return [
        {
            "collected_at": now // 1_000_000,
            "capture_ts": now,
            "exchange": exchange,
            "symbol": None,
            "conn_id": "sink",
            "seq": seq_start + i,
            "event_type": "segment_repair",
            "channel": result.channel,
            "close_code": None,
            "count": result.rows,
            "interval_start": None,
            "interval_end": None,
            "detail": result.detail,
        }
        for i, exchange in enumerate(result.exchanges or [result.source])
    ]
