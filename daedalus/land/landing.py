"""`daedalus land`: closed raw segments → bronze hive partitions, idempotent under a crash at any step.

For each segment in `raw/ready/{source}/{channel}/` (channel ∈ collector/schemas.py):
1. claim  — atomic rename into `raw/processing/{source}/{channel}/` (a second lander cannot take it);
2. write  — one file per (exchange, date) at `bronze/{channel}/exchange=X/date=D/{source}_{segment}.parquet`,
            written to a temp name, fsynced and renamed into place. Named after the segment, so a
            re-run replaces its own output instead of adding a duplicate;
3. verify — the row counts in the written files' footers add up to the segment's rows;
4. retire — delete the segment, or move it to `raw/archive/` (`storage.raw_retirement`).
A crash anywhere leaves the segment in ready/ (before 1) or processing/ (after 1); processing/ is
re-landed first on the next run, overwriting whatever partial output it had left. So no segment is
landed twice and none is lost.

The date of a row is the UTC date of the exchange `timestamp`, or of `capture_ts` where that is
NULL (docs/contracts.md). Bronze files do not hold a `date` column; they keep every column of the
segment — a segment with an extra column (schema drift) lands as is and readers use union_by_name.
A damaged segment lands what is readable (row groups / lines, daedalus/land/salvage.py); each loss is a
`quarantine` events row naming its exchange, symbol, channel, row count and receive-time hole, and the
bad part goes to `raw/quarantine/`; the others go on. Segments are streamed batch by batch, so memory
stays flat whatever their size.

Only pyarrow, only local paths for now: every path is made by `LandLayout`, the one place an S3
backend will have to change.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from daedalus.collector.encoding import parquet_options, row_group_rows
from daedalus.collector.schemas import EVENTS, SCHEMAS, TS_NS_UTC
from daedalus.config import Config
from daedalus.errors import StorageError
from daedalus.fsio import fsync_dir, is_local_root, local_path
from daedalus.lake import exclusive_lock
from daedalus.land.salvage import Loss, Salvage, ndjson_batches, parquet_batches

STEPS = ("claimed", "wrote_file", "verified", "retired")
SEGMENT_SUFFIXES = (".parquet", ".ndjson")


@dataclass
class LandReport:
    segments: int = 0  # segments landed (retired) in this run
    recovered: int = 0  # of which were left in processing/ by an earlier run
    rows: int = 0
    files: list[str] = field(default_factory=list)  # bronze files written, relative to the root
    partitions: set[tuple[str, str, str]] = field(default_factory=set)  # (channel, exchange, date)
    quarantined: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        text = (
            f"landed {self.segments} segments ({self.rows} rows, {len(self.files)} files, "
            f"{len(self.partitions)} partitions) in {self.seconds:.2f}s"
        )
        if self.recovered:
            text += f"; {self.recovered} re-landed after an interrupted run"
        if self.quarantined:
            text += f"; {len(self.quarantined)} quarantined: {', '.join(self.quarantined)}"
        if self.errors:
            text += f"; {len(self.errors)} errors: {'; '.join(self.errors)}"
        return text


class LandLayout:
    """Every path `land` touches, relative to one local root."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def raw(self, state: str, source: str = "", channel: str = "") -> Path:
        p = self.root / "raw" / state
        return p / source / channel if source else p

    def segments(self, state: str) -> Iterator[tuple[str, str, Path]]:
        """(source, channel, path) of every segment under raw/{state}/, oldest name first."""
        base = self.raw(state)
        if not base.exists():
            return
        for chan_dir in sorted(p for p in base.glob("*/*") if p.is_dir()):
            if chan_dir.name not in SCHEMAS:
                continue  # e.g. raw/ready/{source}/quarantine/: rejected records stay for humans
            for seg in sorted(chan_dir.iterdir()):
                if seg.name.startswith("segment_") and seg.suffix in SEGMENT_SUFFIXES:
                    yield chan_dir.parent.name, chan_dir.name, seg

    def partition(self, channel: str, exchange: str, date: str) -> Path:
        return self.root / "bronze" / channel / f"exchange={exchange}" / f"date={date}"

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


def _local_root(config: Config) -> Path:
    root = config.storage.root
    if not is_local_root(root):
        raise StorageError(
            f"storage.root: landing into an s3:// lake ({root}) is not supported by this version of "
            "`land`; land into a local root and `daedalus sync push`"
        )
    return local_path(root)


def _move(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dst)
    fsync_dir(dst.parent)
    fsync_dir(src.parent)


def _safe_part(value: str) -> str:
    """A partition value safe in a path (exchanges are ids like `binanceus`; be defensive anyway)."""
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in value) or "unknown"


def _batches(path: Path, channel: str, salvage: Salvage) -> Iterator[pa.RecordBatch]:
    if path.suffix == ".ndjson":
        return ndjson_batches(path, SCHEMAS[channel], salvage)
    return parquet_batches(path, salvage, SCHEMAS.get(channel))


def _partition_keys(batch: pa.RecordBatch) -> tuple[pa.Array, pa.Array]:
    """(exchange, date as YYYY-MM-DD) per row: UTC date of `timestamp`, else of `capture_ts`."""
    names = batch.schema.names
    capture = batch.column(names.index("capture_ts")).cast(TS_NS_UTC)
    when = capture
    if "timestamp" in names:
        when = pc.coalesce(batch.column(names.index("timestamp")).cast(TS_NS_UTC), capture)
    dates = pc.cast(when, pa.date32()).cast(pa.string())
    exchange = pc.fill_null(batch.column(names.index("exchange")).cast(pa.string()), "unknown")
    return exchange, dates


class _PartitionWriters:
    """One temp Parquet file per (exchange, date) of a segment, renamed into place at the end."""

    def __init__(self, layout: LandLayout, channel: str, file_name: str, schema: pa.Schema) -> None:
        self.layout = layout
        self.channel = channel
        self.file_name = file_name
        self.schema = schema
        self.open: dict[tuple[str, str], tuple[pq.ParquetWriter, Path, Path]] = {}
        self.rows: dict[tuple[str, str], int] = {}
        self.options = parquet_options(channel)  # the channel's physical encoding (collector/encoding.py)
        self.group_rows = row_group_rows(channel)
        self.pending: dict[tuple[str, str], list[pa.RecordBatch]] = {}  # batches gathered into one row group

    def write(self, key: tuple[str, str], batch: pa.RecordBatch) -> None:
        if key not in self.open:
            part = self.layout.partition(self.channel, _safe_part(key[0]), key[1])
            part.mkdir(parents=True, exist_ok=True)
            tmp = part / f".land-{self.file_name}.tmp"
            writer = pq.ParquetWriter(tmp, self.schema, **self.options)
            self.open[key] = (writer, tmp, part / self.file_name)
            self.rows[key] = 0
            self.pending[key] = []
        self.rows[key] += batch.num_rows
        if self.group_rows is None:
            self.open[key][0].write_batch(batch)
            return
        pending = self.pending[key]
        pending.append(batch)
        if sum(b.num_rows for b in pending) >= self.group_rows:
            self._write_pending(key)

    def _write_pending(self, key: tuple[str, str]) -> None:
        pending = self.pending.get(key)
        if pending:
            table = pa.Table.from_batches(pending, schema=self.schema)
            self.open[key][0].write_table(table, row_group_size=max(table.num_rows, 1))
            self.pending[key] = []

    def abort(self) -> None:
        for writer, tmp, _ in self.open.values():
            with contextlib.suppress(pa.ArrowException, OSError):
                writer.close()
            tmp.unlink(missing_ok=True)
        self.open.clear()
        self.pending.clear()

    def commit(self, on_step: Callable[[str, str], None], segment: str) -> list[tuple[tuple[str, str], Path]]:
        done = []
        for key, (writer, tmp, final) in sorted(self.open.items()):
            self._write_pending(key)
            writer.close()
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, final)  # replaces this segment's own output of an interrupted run
            fsync_dir(final.parent)
            done.append((key, final))
            on_step("wrote_file", segment)
        return done


def _no_hook(step: str, segment: str) -> None:
    return None


def _land_segment(
    layout: LandLayout,
    source: str,
    channel: str,
    seg: Path,
    report: LandReport,
    on_step: Callable[[str, str], None],
    retirement: str,
) -> None:
    file_name = f"{source}_{seg.stem}.parquet"
    writers: _PartitionWriters | None = None
    total = 0
    salvage = Salvage()
    try:
        for batch in _batches(seg, channel, salvage):
            if writers is None:
                writers = _PartitionWriters(layout, channel, file_name, batch.schema)
            if batch.num_rows == 0:
                continue
            total += batch.num_rows
            exchange, dates = _partition_keys(batch)
            pairs = pa.Table.from_arrays([exchange, dates], names=["e", "d"])
            for e, d in sorted(
                set(zip(pairs.column("e").to_pylist(), pairs.column("d").to_pylist(), strict=True))
            ):
                mask = pc.and_(pc.equal(exchange, e), pc.equal(dates, d))
                writers.write((e, d), batch.filter(mask))
    except (pa.ArrowException, OSError, ValueError, KeyError) as e:
        if writers is not None:
            writers.abort()
        _quarantine(
            layout,
            source,
            channel,
            seg,
            [Loss(None, None, None, "segment", f"{type(e).__name__}: {e}")],
            report,
        )
        return
    salvage.finish()
    written = writers.commit(on_step, seg.name) if writers is not None else []
    # Verify: the footers of what is now in bronze hold exactly the segment's rows.
    landed = sum(pq.ParquetFile(path).metadata.num_rows for _, path in written)
    if landed != total:
        raise StorageError(
            f"{seg}: verification failed, bronze files hold {landed} rows but the segment has {total}; "
            "the segment stays in raw/processing/ and is re-landed on the next run"
        )
    on_step("verified", seg.name)
    if salvage.losses:  # the readable rows are in bronze; the rest is recorded and set aside
        _quarantine(layout, source, channel, seg, salvage.losses, report)
    elif retirement == "archive":
        _move(seg, layout.raw("archive", source, channel) / seg.name)
    else:
        seg.unlink()
        fsync_dir(seg.parent)
    on_step("retired", seg.name)
    if total == 0 and salvage.losses:
        return  # nothing was readable: quarantined, not landed
    report.segments += 1
    report.rows += total
    for (e, d), path in written:
        report.files.append(layout.rel(path))
        report.partitions.add((channel, _safe_part(e), d))


def _loss_row(source: str, channel: str, loss: Loss, detail: dict, now: int) -> dict:
    # On the receive clock right after the last readable row before the hole (else just before the
    # first one after it): an event at c breaks its series before the first row with capture_ts > c.
    at = loss.after if loss.after is not None else (loss.before - 1 if loss.before is not None else now)
    return {
        "collected_at": at // 1_000_000,
        "capture_ts": at,
        # the source stands in only when no readable row names the exchange (a segment without footer)
        "exchange": loss.exchange or source,
        "symbol": loss.symbol,  # None: unknown, i.e. every series of that exchange and channel
        "conn_id": "land",
        "seq": 0,
        "event_type": "quarantine",
        "channel": channel,
        "close_code": None,
        "count": loss.count,
        "interval_start": loss.after,
        "interval_end": loss.before,
        "detail": json.dumps({**detail, "part": loss.part, "error": loss.error[:2000]}),
    }


def write_loss_events(
    layout: LandLayout,
    source: str,
    channel: str,
    name: str,
    losses: list[Loss],
    detail: dict,
    report: LandReport,
) -> None:
    """One `quarantine` events row per loss, in `bronze/events/exchange=X/date=D/quarantine_{name}.parquet`
    (idempotent by name: a re-run replaces its own rows)."""
    now = time.time_ns()
    rows = [_loss_row(source, channel, loss, detail, now) for loss in losses]
    by_part: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        date = dt.datetime.fromtimestamp(row["capture_ts"] / 1e9, dt.UTC).strftime("%Y-%m-%d")
        by_part.setdefault((_safe_part(row["exchange"]), date), []).append(row)
    for (exchange, date), part_rows in sorted(by_part.items()):
        part = layout.partition("events", exchange, date)
        part.mkdir(parents=True, exist_ok=True)
        final = part / f"quarantine_{name}.parquet"
        tmp = part / f".land-{final.name}.tmp"
        for i, row in enumerate(part_rows):
            row["seq"] = i
        pq.write_table(pa.Table.from_pylist(part_rows, schema=EVENTS), tmp, compression="zstd")
        os.replace(tmp, final)
        fsync_dir(part)
        report.files.append(layout.rel(final))
        report.partitions.add(("events", exchange, date))


def _quarantine(
    layout: LandLayout, source: str, channel: str, seg: Path, losses: list[Loss], report: LandReport
) -> None:
    """What could not be read: `quarantine` events rows (one per loss, with its series and count,
    idempotent by name), then the bad part under raw/quarantine/ — the bad NDJSON lines alone, or
    the Parquet original (its damaged row groups cannot be cut out of it)."""
    dst = layout.raw("quarantine", source, channel) / seg.name
    detail = {"segment": layout.rel(seg), "moved_to": layout.rel(dst)}
    write_loss_events(layout, source, channel, f"{source}_{seg.stem}", losses, detail, report)
    bad_lines = [ln for loss in losses for ln in loss.lines]
    if bad_lines and len(bad_lines) == len(losses):  # NDJSON: keep only the bad lines
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.parent / f".land-{dst.name}.tmp"
        with open(tmp, "wb") as f:
            f.write(b"\n".join(bad_lines) + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dst)
        fsync_dir(dst.parent)
        seg.unlink()
        fsync_dir(seg.parent)
    else:
        _move(seg, dst)
    report.quarantined.append(layout.rel(dst))


@contextlib.contextmanager
def land_lock(root: str | Path) -> Iterator[None]:
    """`<root>/_state/land.lock`: one lander per root. Two at once raced for the same segments (the
    loser died on a FileNotFoundError, and took `watch` with it); now the second stops at once with
    one line naming the holder."""
    with exclusive_lock(
        Path(root).expanduser() / "_state" / "land.lock",
        "{path}: another `daedalus land` (pid {pid}) is landing into this root; wait for it "
        "to finish (watch retries on its next cycle)",
    ):
        yield


def land(config: Config, on_step: Callable[[str, str], None] | None = None, lock: bool = True) -> LandReport:
    """Land every closed raw segment into bronze. `on_step(step, segment_name)` is called after each
    step of STEPS (tests raise from it to simulate a crash there). `lock=False`: the caller holds
    land_lock (land_any on S3 holds it across the upload too)."""
    if lock:
        with land_lock(_local_root(config)):
            return land(config, on_step, lock=False)
    started = time.monotonic()
    hook = on_step or _no_hook
    layout = LandLayout(_local_root(config))
    report = LandReport()
    retirement = config.storage.raw_retirement
    # First what an interrupted run left claimed, then everything newly closed.
    for source, channel, seg in list(layout.segments("processing")):
        before = report.segments
        _land_one(layout, source, channel, seg, report, hook, retirement)
        report.recovered += report.segments - before
    for source, channel, seg in list(layout.segments("ready")):
        claimed = layout.raw("processing", source, channel) / seg.name
        claimed.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(seg, claimed)  # atomic: exactly one lander owns the segment from here
        except FileNotFoundError:
            continue  # another lander claimed it first
        fsync_dir(claimed.parent)
        fsync_dir(seg.parent)
        hook("claimed", seg.name)
        _land_one(layout, source, channel, claimed, report, hook, retirement)
    report.seconds = time.monotonic() - started
    return report


def _land_one(
    layout: LandLayout,
    source: str,
    channel: str,
    seg: Path,
    report: LandReport,
    hook: Callable[[str, str], None],
    retirement: str,
) -> None:
    try:
        _land_segment(layout, source, channel, seg, report, hook, retirement)
    except StorageError as e:
        report.errors.append(str(e))
