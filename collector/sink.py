"""BronzeSink: consumes the bounded queue and writes durable raw segments.

Per (source, channel): rows are buffered and flushed as one batch (one Parquet row group) at
`batch_size` rows or every `flush_interval_seconds`; segments rotate on size on disk and on the hour
(segment.py). Before anything is written, segments left in raw/active/ by a crash are repaired and
the repair recorded in `events`. Records that cannot be converted go to quarantine with an `events`
row (quarantine.py). On stop the queue is drained (including pending overflow reports), every
buffer flushed and every segment closed into raw/ready/.

Flushes run in a worker thread (pyarrow and fsync release the GIL), so a slow SD card stalls the
writer, not the collectors' sockets: that is what the queue between them is for.

Upload to S3 happens iff `s3_root` is given: every closed segment is offered to the upload queue,
and on start every segment already in ready/ is offered again (already-verified objects are skipped).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daedalus.collector.diskfull import Stall, is_disk_full
from daedalus.collector.ndjson_segment import NdjsonSegmentWriter
from daedalus.collector.quarantine import (
    QUARANTINE,
    QUARANTINE_CHANNEL,
    Rejected,
    convert_rows,
    quarantine_table,
)
from daedalus.collector.queue import BoundedQueue, Record, StreamKey, stream_key, stream_name
from daedalus.collector.repair import RepairResult, repair_active, repair_event_rows, repair_segment
from daedalus.collector.schemas import SCHEMAS
from daedalus.collector.segment import RotatingSegments, StreamingParquetWriter
from daedalus.collector.sink_events import quarantine_event_rows, stall_event_row
from daedalus.config import IngestionConfig, S3Config

UPLOAD_DRAIN_SECONDS = 30.0
# Events that the health file counts per stream over the last hour: every disconnect is followed by
# a reconnect (the connection loop's backoff), so both count as one.
_HEALTH_EVENTS = {"gap": "gap", "reconnect": "reconnect", "disconnect": "reconnect"}


@dataclass
class _StreamStats:
    written: int = 0
    quarantined: int = 0
    last_written_wall: float = 0.0
    recent_events: deque[tuple[float, str]] = field(default_factory=deque)


class BronzeSink:
    def __init__(
        self,
        root: str | Path,
        ingestion: IngestionConfig,
        s3_root: str | None = None,
        s3: S3Config | None = None,
        s3_client: Any = None,
    ) -> None:
        self.root = Path(root)
        self.cfg = ingestion
        self.s3_root = s3_root
        self._buffers: dict[tuple[str, str], list[tuple[StreamKey, Any]]] = {}
        self._buffer_rows = 0
        self._writers: dict[tuple[str, str], RotatingSegments] = {}
        self._quarantine_writers: dict[str, StreamingParquetWriter] = {}
        self._streams: dict[StreamKey, _StreamStats] = {}
        self._quarantined: dict[tuple[str, str], int] = {}
        self._closed: deque[tuple[Path, int]] = deque()
        self._seq = 0
        self.repairs: list[RepairResult] = []
        self.flushes = 0
        self.stall = Stall()  # a full disk (diskfull.py)
        self._abandoned: list[tuple[str, str, Path]] = []  # segments to repair once space returns
        self._stalled_streams: set[tuple[str, str]] = set()  # (source, exchange) of held batches
        self.lost_on_stop = 0  # records still held when stopped on a full disk (health file, stderr)
        self.uploads = None
        if s3_root is not None:
            from daedalus.collector.upload import S3Uploader, UploadQueue
            from daedalus.fsio import make_s3_client

            client = s3_client
            if client is None:
                s3 = s3 or S3Config()
                client = make_s3_client(s3.endpoint, s3.region, s3.use_ssl, s3.url_style)
            self.uploads = UploadQueue(
                S3Uploader(s3_root, self.root, client, delete_after_upload=ingestion.delete_after_upload)
            )

    # -- writers ---------------------------------------------------------------------------------
    def _on_closed(self, path: Path, rows: int) -> None:
        # May run in the flush thread: only a deque append here, the loop offers it for upload.
        self._closed.append((path, rows))

    def _writer(self, source: str, channel: str) -> RotatingSegments:
        w = self._writers.get((source, channel))
        if w is None:
            schema = SCHEMAS[channel]
            if self.cfg.raw_format == "ndjson":
                w = NdjsonSegmentWriter(
                    self.root, source, channel, schema, self.cfg.segment_max_mb, self._on_closed
                )
            else:
                w = StreamingParquetWriter(
                    self.root,
                    source,
                    channel,
                    schema,
                    segment_max_mb=self.cfg.segment_max_mb,
                    compression=self.cfg.parquet_compression,
                    compression_level=self.cfg.parquet_compression_level,
                    on_closed=self._on_closed,
                )
            self._writers[(source, channel)] = w
        return w

    def _quarantine_writer(self, source: str) -> StreamingParquetWriter:
        w = self._quarantine_writers.get(source)
        if w is None:
            w = StreamingParquetWriter(
                self.root,
                source,
                QUARANTINE_CHANNEL,
                QUARANTINE,
                segment_max_mb=self.cfg.segment_max_mb,
                on_closed=self._on_closed,
            )
            self._quarantine_writers[source] = w
        return w

    # -- buffering -------------------------------------------------------------------------------
    def _stream(self, key: StreamKey) -> _StreamStats:
        s = self._streams.get(key)
        if s is None:
            s = self._streams[key] = _StreamStats()
        return s

    def _add(self, record: Record) -> bool:
        """Buffer one record; True when its stream's buffer reached batch_size."""
        key = record.key or stream_key(record)
        buf = self._buffers.setdefault((record.source, record.channel), [])
        buf.append((key, record.row))
        self._buffer_rows += 1
        if record.channel == "events" and isinstance(record.row, dict):
            event_type = _HEALTH_EVENTS.get(record.row.get("event_type"))
            if record.row.get("close_code") == 1000 and "collector stopping" in str(record.row.get("detail")):
                event_type = None  # our own shutdown is no reconnect
            if event_type is not None:
                target = (record.source, record.row.get("channel") or "-", key[2], key[3])
                recent = self._stream(target).recent_events
                now = time.time()
                recent.append((now, event_type))
                while recent and recent[0][0] < now - 3600:  # bounded: only the last hour is reported
                    recent.popleft()
        return len(buf) >= self.cfg.batch_size

    def _sink_event(self, source: str, rows: list[dict]) -> None:
        buf = self._buffers.setdefault((source, "events"), [])
        for row in rows:
            buf.append(((source, "events", row["exchange"], row["symbol"]), row))
            self._buffer_rows += 1

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    @staticmethod
    def _convert(channel: str, rows: list[Any]) -> tuple[Any, list[Rejected]]:
        """Rows → Arrow table + rejected records. Runs on the event loop: it is pure Python/Arrow
        work holding the GIL either way, and in a worker thread it would queue for the GIL behind
        the collectors at every release point (~5 ms switch interval each), slowing it several-fold."""
        if channel in SCHEMAS:
            conv = convert_rows(channel, rows, SCHEMAS[channel])
            return conv.table, conv.rejected
        allowed = ", ".join(SCHEMAS)
        return None, [Rejected(r, f"unknown channel '{channel}' (allowed: {allowed})") for r in rows]

    def _write_sync(
        self,
        channel: str,
        table: Any,
        rejected: list[Rejected],
        writer: RotatingSegments | None,
        quarantine: StreamingParquetWriter,
    ) -> None:
        """Write one converted batch (runs in the flush thread; touches only the two writers)."""
        if rejected:
            quarantine.write(quarantine_table(quarantine.source, channel, rejected))
        if table is not None and table.num_rows:
            assert writer is not None
            writer.write(table)

    def _count_flushed(
        self, source: str, channel: str, items: list[tuple[StreamKey, Any]], rejected: list[Rejected]
    ) -> None:
        """Bookkeeping of a flushed batch, on the event loop (stats() may run at any await)."""
        rejected_ids = {id(r.row) for r in rejected}
        if rejected:
            self._quarantined[(source, channel)] = self._quarantined.get((source, channel), 0) + len(rejected)
            self._record_quarantine_events(source, channel, rejected, items)
        now = time.time()
        for key, row in items:
            s = self._stream(key)
            if id(row) in rejected_ids:
                s.quarantined += 1
            else:
                s.written += 1
                s.last_written_wall = now

    def _record_quarantine_events(
        self, source: str, channel: str, rejected: list[Rejected], items: list[tuple[StreamKey, Any]]
    ) -> None:
        by_stream: dict[tuple[str | None, str | None], list[Rejected]] = {}
        key_of = {id(r): k for k, r in items}
        for rej in rejected:
            key = key_of.get(id(rej.row), (source, channel, None, None))
            by_stream.setdefault((key[2], key[3]), []).append(rej)
        rows = quarantine_event_rows(source, channel, by_stream, self._next_seq)
        self._sink_event(source, rows)

    async def _flush(self, stream: tuple[str, str]) -> None:
        items = self._buffers.get(stream)
        if not items:
            return
        self._buffers[stream] = []
        source, channel = stream
        # Writers are created here, on the loop, so stats() never sees a dict change size mid-read.
        writer = self._writer(source, channel) if channel in SCHEMAS else None
        quarantine = self._quarantine_writer(source)
        rows = [r for _, r in items]
        table, rejected = self._convert(channel, rows)
        # The batch counts as held (`_buffer_rows`) until it is written: stats() and the health file
        # may run while the write is in flight, and a stalled batch goes back to the buffer.
        try:
            await asyncio.to_thread(self._write_sync, channel, table, rejected, writer, quarantine)
        except OSError as e:
            if not is_disk_full(e):
                self._buffer_rows -= len(items)
                raise
            self._stalled(stream, items, e, [w for w in (writer, quarantine) if w is not None])
            return
        self._buffer_rows -= len(items)
        self._count_flushed(source, channel, items, rejected)
        self.flushes += 1
        self.flushed(stream, rows)
        self._offer_closed()

    def flushed(self, stream: tuple[str, str], rows: list[Any]) -> None:
        """Called after each written batch of `stream` (source, channel) with its rows; a no-op here,
        a hook for subclasses (the collector benchmark times receive → written with it)."""

    async def _flush_all(self) -> None:
        # Events last: flushing data may add quarantine events rows.
        for stream in sorted(self._buffers, key=lambda s: s[1] == "events"):
            if self.stall.active and self.stall.wait_seconds() > 0:
                return  # the disk just refused a batch: the others wait for the retry
            await self._flush(stream)

    # -- a full disk (diskfull.py) ---------------------------------------------------------------
    def _stalled(
        self,
        stream: tuple[str, str],
        items: list[tuple[StreamKey, Any]],
        exc: OSError,
        writers: list[RotatingSegments],
    ) -> None:
        """The batch goes back to the head of its buffer; the segments it touched are abandoned."""
        self._buffers[stream] = items + self._buffers.get(stream, [])  # still counted in _buffer_rows
        self._stalled_streams.update((stream[0], k[2] or stream[0]) for k, _ in items)
        for w in writers:
            path = w.abandon()
            if path is not None:
                self._abandoned.append((w.source, w.channel, path))
        self.stall.hit(exc)

    async def _retry_stalled(self, stop: asyncio.Event) -> None:
        """Wait out the backoff (the queue fills meanwhile, and counts what it drops), then retry."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), self.stall.wait_seconds())
        self.stall.next_try = 0.0
        await self._flush_all()
        if self.stall.active and self.stall.wait_seconds() == 0 and not self._buffer_rows:
            self._resumed()

    def _resumed(self) -> None:
        """Space is back: record the stall in `events`, repair the segments it abandoned."""
        held = self.stall.stats(self._buffer_rows)
        since, seconds, retries = self.stall.clear()
        now = time.time_ns()
        streams, self._stalled_streams = sorted(self._stalled_streams), set()
        for source, exchange in streams:  # one row per exchange whose batches were held
            row = stall_event_row(
                exchange, since, now, retries, seconds, held["last_error"], self._next_seq()
            )
            self._sink_event(source, [row])
        pending, self._abandoned = self._abandoned, []
        for source, channel, path in pending:
            try:
                result = repair_segment(self.root, source, channel, path)
            except OSError as e:
                if not is_disk_full(e):
                    raise
                self._abandoned.append((source, channel, path))  # still no room: next stall's end
                continue
            if result is not None:
                self._record_repair(result)

    def _record_repair(self, r: RepairResult) -> None:
        rows = repair_event_rows(r, seq_start=self._seq + 1)
        self._seq += len(rows)
        self._sink_event(r.source, rows)
        self.repairs.append(r)

    def _offer_closed(self) -> None:
        while self._closed:
            path, _ = self._closed.popleft()
            if self.uploads is not None:
                self.uploads.offer(path)

    # -- lifecycle -------------------------------------------------------------------------------
    def repair(self) -> list[RepairResult]:
        """Repair raw/active/ left by a crash; the repairs become `segment_repair` events rows."""
        results = repair_active(self.root, deferred=self._abandoned)  # a full disk defers, never kills
        for r in results:
            self._record_repair(r)
        return results

    def _offer_existing_ready(self) -> None:
        if self.uploads is None:
            return
        ready = self.root / "raw" / "ready"
        for p in sorted(ready.glob("*/*/segment_*")):
            if p.is_file():
                self.uploads.offer(p)

    async def run(self, queue: BoundedQueue, stop: asyncio.Event) -> None:
        """On start: repair segments left in raw/active by a crash. Then consume records, batch per
        (source, channel), flush at batch_size or flush_interval_seconds, rotate by on-disk size or
        the hour boundary; on stop: drain the queue, flush and close every segment into raw/ready."""
        self.repair()
        self._offer_existing_ready()
        upload_task = None
        upload_stop = asyncio.Event()
        if self.uploads is not None:
            upload_task = asyncio.create_task(self.uploads.run(upload_stop))
        interval = self.cfg.flush_interval_seconds
        next_flush = time.monotonic() + interval
        try:
            while not stop.is_set():
                if self.stall.active:  # a full disk: no draining (the queue bounds memory), retry
                    await self._retry_stalled(stop)
                    continue
                # Drain what is there without a task per record; await only when the queue is empty.
                drained = 0
                while drained < 10 * self.cfg.batch_size:
                    try:
                        record = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        break
                    drained += 1
                    if self._add(record):
                        await self._flush((record.source, record.channel))
                if drained == 0:
                    wait = max(0.0, min(next_flush - time.monotonic(), 0.25))
                    try:
                        record = await asyncio.wait_for(queue.get(), wait)
                        if self._add(record):
                            await self._flush((record.source, record.channel))
                    except TimeoutError:
                        pass
                else:
                    await asyncio.sleep(0)  # let the collectors run between bulk drains
                if time.monotonic() >= next_flush:
                    await self._flush_all()
                    for w in list(self._writers.values()) + list(self._quarantine_writers.values()):
                        await self._close_writer(w, w.rotate_if_hour_changed)
                    self._offer_closed()
                    next_flush = time.monotonic() + interval
            while True:  # stop: drain everything the collectors managed to enqueue
                try:
                    record = queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if self._add(record):
                    await self._flush((record.source, record.channel))
        finally:
            await self.close()
            if upload_task is not None and self.uploads is not None:
                upload_stop.set()
                await upload_task
                # One more try for what is pending, bounded so an unreachable S3 cannot hold up the
                # shutdown; whatever is left stays in ready/ and is offered again on the next start.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.uploads.drain(), UPLOAD_DRAIN_SECONDS)

    async def close(self) -> None:
        """Flush every buffer and close every open segment into raw/ready/."""
        if self.stall.active:
            self.stall.next_try = 0.0  # one last try, whatever the backoff says
        await self._flush_all()
        await self._flush_all()  # quarantine events rows produced by the first pass
        for w in list(self._writers.values()) + list(self._quarantine_writers.values()):
            await self._close_writer(w, w.close)
        self._offer_closed()
        if self.stall.active and self._buffer_rows:
            # Still no room: what is held cannot be written now. Counted here and in the last health
            # file; the abandoned segments' journals are repaired on the next start.
            self.lost_on_stop = self._buffer_rows
            print(
                f"daedalus collect: disk full at stop: {self._buffer_rows} buffered records could not "
                f"be written ({self.stall.last_error})",
                file=sys.stderr,
            )

    async def _close_writer(self, w: RotatingSegments, close: Any) -> None:
        """Close (or rotate) a segment; on a full disk abandon it to repair.py and stall."""
        try:
            await asyncio.to_thread(close)
        except OSError as e:
            if not is_disk_full(e):
                raise
            path = w.abandon()
            if path is not None:
                self._abandoned.append((w.source, w.channel, path))
            self.stall.hit(e)

    # -- reporting -------------------------------------------------------------------------------
    def stats(self) -> dict:
        """Per (source, channel): written rows, bytes, segments, quarantined, upload backlog; and per
        stream `source/channel/exchange/symbol`: written, quarantined, gaps/reconnects in the last hour."""
        hour_ago = time.time() - 3600
        per_channel: dict[str, dict] = {}
        writers = {
            **self._writers,
            **{(s, QUARANTINE_CHANNEL): q for s, q in self._quarantine_writers.items()},
        }
        for (source, channel), w in writers.items():
            open_path = w.active_path  # read once: a flush thread may close the segment meanwhile
            per_channel[f"{source}/{channel}"] = {
                "written": w.rows_written,
                "bytes": w.bytes_closed + w.open_bytes,
                "segments": w.segments_closed,
                "open_segment": open_path.name if open_path is not None else None,
                "quarantined": self._quarantined.get((source, channel), 0),
            }
        for (source, channel), n in self._quarantined.items():  # e.g. an unknown channel: no writer
            per_channel.setdefault(
                f"{source}/{channel}", {"written": 0, "bytes": 0, "segments": 0, "open_segment": None}
            )["quarantined"] = n
        backlog = self.uploads.backlog_by_stream() if self.uploads is not None else {}
        for name, entry in per_channel.items():
            entry["upload_backlog"] = backlog.get(name, 0)
        streams = {}
        for key, s in self._streams.items():
            while s.recent_events and s.recent_events[0][0] < hour_ago:
                s.recent_events.popleft()
            streams[stream_name(key)] = {
                "written": s.written,
                "quarantined": s.quarantined,
                "gaps_last_hour": sum(1 for _, t in s.recent_events if t == "gap"),
                "reconnects_last_hour": sum(1 for _, t in s.recent_events if t == "reconnect"),
            }
        return {
            "buffered": self._buffer_rows,
            "flushes": self.flushes,
            "repairs": len(self.repairs),
            "disk_full": {**self.stall.stats(self._buffer_rows), "lost_on_stop": self.lost_on_stop},
            "channels": per_channel,
            "streams": streams,
            "upload_backlog": self.uploads.backlog if self.uploads is not None else 0,
            "uploaded": self.uploads.uploaded if self.uploads is not None else 0,
            "upload_error": self.uploads.last_error if self.uploads is not None else None,
        }
