"""The bounded queue between the collectors and the bronze writer.

A full queue first pushes back on the collectors (they wait up to `backpressure_timeout`); past
that bound the record is dropped — but never silently: every drop is counted per stream
(source, channel, exchange, symbol) and reported as an `overflow` events Record that the writer
receives like any other record. The overflow reports sit in a side buffer that does not count
against `maxsize`, so they can never themselves be dropped, and `get()` hands them out first, i.e.
as soon as the writer frees a slot.

The queue is bounded in bytes as well as records (`max_bytes`, ingestion.queue_max_mb): a record's
size is estimated once when it is put (`approx_bytes`), so 50,000 full-depth books (~12 KB each as
Python objects) can no longer take 600 MB of a Pi's memory; a full byte budget pushes back and drops
exactly like a full record count. A single record larger than the budget still enters an empty queue.

Invariant (tested): received = written + sum(count of overflow events), exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from daedalus.collector.clock import receive_ns

StreamKey = tuple[str, str, str | None, str | None]  # source, channel, exchange, symbol


@dataclass(slots=True)
class Record:
    source: str  # 'ccxt' | 'coinbase'
    channel: str  # 'ticker' | 'trades' | 'orderbook' | 'events'
    row: dict  # bronze columns of collector/schemas.py (capture_ts as int ns since epoch or datetime)
    nbytes: int = 0  # approx_bytes(row), set by BoundedQueue.put while the record is queued
    key: StreamKey | None = None  # stream_key(self), set by BoundedQueue.put (the sink reuses it)


def _nested_bytes(value: object) -> int:
    """Python size of a book level ({price, size} dict or [price, size] list) or similar small item."""
    getsizeof = sys.getsizeof
    n = getsizeof(value)
    if isinstance(value, dict):
        value = value.values()
    elif not isinstance(value, list | tuple):
        return n
    for v in value:  # a plain loop: two items, a generator would cost more than the sum
        n += getsizeof(v)
    return n


# Values counted as a flat 32 bytes; exact types, so the hot loop below tests them with one set lookup
_SCALARS = frozenset({int, float, bool, type(None)})


def approx_bytes(row: object) -> int:
    """The memory a queued row holds, estimated from its shape (a list's first item stands for all its
    items: book levels are alike): cheap enough for every record, within ~20 % for books and trades.
    (Runs once per record: exact-type tests first, the general isinstance path for anything else.)"""
    if not isinstance(row, dict):
        return sys.getsizeof(row) + 64
    getsizeof = sys.getsizeof
    n = getsizeof(row)
    for v in row.values():
        t = type(v)
        if t in _SCALARS:
            n += 32
        elif t is str:
            n += getsizeof(v)
        elif t is list:
            n += getsizeof(v) + (len(v) * _nested_bytes(v[0]) if v else 0)
        elif isinstance(v, str | bytes):
            n += getsizeof(v)
        elif isinstance(v, list | tuple):
            n += getsizeof(v) + (len(v) * _nested_bytes(v[0]) if v else 0)
        elif isinstance(v, dict):
            n += _nested_bytes(v)
        else:
            n += 32  # int, float, datetime, None (shared)
    return n


def now_ns() -> int:
    return receive_ns()


def capture_ns(value: Any) -> int | None:
    """capture_ts of a row as int ns, whether the collector gave ns or a datetime; None if unusable."""
    if isinstance(value, int):
        return value
    ts = getattr(value, "timestamp", None)
    if callable(ts):
        try:
            return int(ts() * 1_000_000_000)
        except (TypeError, ValueError, OverflowError):
            return None
    return None


def stream_key(record: Record) -> StreamKey:
    row = record.row if isinstance(record.row, dict) else {}
    exchange = row.get("exchange")
    symbol = row.get("symbol")
    return (
        record.source,
        record.channel,
        exchange if isinstance(exchange, str) else None,
        symbol if isinstance(symbol, str) else None,
    )


def stream_name(key: StreamKey) -> str:
    """`source/channel/exchange/symbol` — the stream id used in stats and the health file."""
    return "/".join(part if part is not None else "-" for part in key)


@dataclass(slots=True)
class _Drops:
    count: int = 0
    first_ns: int = 0
    last_ns: int = 0


@dataclass(slots=True)
class _StreamCounters:
    received: int = 0
    dropped: int = 0
    last_received_wall: float = 0.0


@dataclass
class BoundedQueue:
    """asyncio queue with bounded backpressure and counted, reported drops."""

    maxsize: int
    backpressure_timeout: float
    max_bytes: int = 0  # 0: records only
    _queue: asyncio.Queue[Record] = field(init=False)
    _room: asyncio.Event = field(init=False)  # set whenever a get() frees records and bytes
    bytes: int = field(init=False, default=0)
    peak_bytes: int = field(init=False, default=0)
    _overflow: deque[Record] = field(init=False, default_factory=deque)
    _pending: dict[StreamKey, _Drops] = field(init=False, default_factory=dict)
    _streams: dict[StreamKey, _StreamCounters] = field(init=False, default_factory=dict)
    _overflow_seq: int = field(init=False, default=0)
    received: int = field(init=False, default=0)
    dropped: int = field(init=False, default=0)
    overflow_events: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if self.maxsize < 1:
            raise ValueError("maxsize must be ≥ 1")
        self._queue = asyncio.Queue(self.maxsize)
        self._room = asyncio.Event()

    async def put(self, record: Record) -> bool:
        """Wait up to backpressure_timeout for room; past it drop the record, count it per
        (source, channel, exchange, symbol) and return False. Drops are reported as an `overflow`
        events Record (count, interval_start/end of the drops, which stream) as soon as room frees up
        — never lost, never silent."""
        key = record.key = stream_key(record)
        counters = self._streams.get(key)
        if counters is None:
            counters = self._streams[key] = _StreamCounters()
        counters.received += 1
        counters.last_received_wall = time.time()
        self.received += 1
        record.nbytes = approx_bytes(record.row) if self.max_bytes else 0
        if self._try_put(record):
            return True
        if self.backpressure_timeout <= 0:
            self._count_drop(key, record, counters)
            return False
        # Wait for room (records and bytes). The only await is on the event, and the put itself is
        # synchronous, so a timeout or a cancellation leaves the record either queued or not at all
        # and the accounting stays exact.
        deadline = time.monotonic() + self.backpressure_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._count_drop(key, record, counters)
                return False
            self._room.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room.wait(), remaining)
            if self._try_put(record):
                return True

    def _try_put(self, record: Record) -> bool:
        if self._queue.full() or (
            self.max_bytes and self.bytes + record.nbytes > self.max_bytes and not self._queue.empty()
        ):
            return False
        self._queue.put_nowait(record)
        self.bytes += record.nbytes
        self.peak_bytes = max(self.peak_bytes, self.bytes)
        return True

    def _taken(self, record: Record) -> Record:
        self.bytes -= record.nbytes
        self._room.set()
        return record

    def _count_drop(self, key: StreamKey, record: Record, counters: _StreamCounters) -> None:
        counters.dropped += 1
        self.dropped += 1
        row = record.row if isinstance(record.row, dict) else {}
        ts = capture_ns(row.get("capture_ts")) or now_ns()
        drops = self._pending.get(key)
        if drops is None:
            self._pending[key] = _Drops(1, ts, ts)
        else:
            drops.count += 1
            drops.first_ns = min(drops.first_ns, ts)
            drops.last_ns = max(drops.last_ns, ts)

    def _report_drops(self) -> None:
        """Turn the drops counted so far into overflow events records, one per stream."""
        for key, drops in self._pending.items():
            source, channel, exchange, symbol = key
            self._overflow_seq += 1
            now = now_ns()
            row = {
                "collected_at": now // 1_000_000,
                "capture_ts": now,
                "exchange": exchange or "unknown",
                "symbol": symbol,
                "conn_id": "queue",
                "seq": self._overflow_seq,
                "event_type": "overflow",
                "channel": channel,
                "close_code": None,
                "count": drops.count,
                "interval_start": drops.first_ns,
                "interval_end": drops.last_ns,
                "detail": f"queue full for {self.backpressure_timeout}s: dropped {drops.count} "
                f"{channel} records of {stream_name(key)}",
            }
            self._overflow.append(Record(source, "events", row))
            self.overflow_events += 1
        self._pending.clear()

    async def get(self) -> Record:
        if self._pending and not self._queue.full():
            self._report_drops()
        if self._overflow:
            return self._overflow.popleft()
        record = self._taken(await self._queue.get())
        # A slot just freed: report drops now rather than waiting for the next get().
        if self._pending:
            self._report_drops()
        return record

    def get_nowait(self) -> Record:
        """Next record without waiting; raises asyncio.QueueEmpty. Pending drops are reported first."""
        if self._pending:
            self._report_drops()
        if self._overflow:
            return self._overflow.popleft()
        return self._taken(self._queue.get_nowait())

    def qsize(self) -> int:
        return self._queue.qsize() + len(self._overflow)

    def empty(self) -> bool:
        return self._queue.empty() and not self._overflow and not self._pending

    def stats(self) -> dict:
        """depth, totals, and per stream `source/channel/exchange/symbol`: received, dropped, last message."""
        now = time.time()
        return {
            "depth": self._queue.qsize(),
            "maxsize": self.maxsize,
            "bytes": self.bytes,
            "max_bytes": self.max_bytes,
            "peak_bytes": self.peak_bytes,
            "pending_overflow_events": len(self._overflow) + len(self._pending),
            "received": self.received,
            "dropped": self.dropped,
            "overflow_events": self.overflow_events,
            "streams": {
                stream_name(key): {
                    "received": c.received,
                    "dropped": c.dropped,
                    "seconds_since_last_message": round(now - c.last_received_wall, 3),
                }
                for key, c in self._streams.items()
            },
        }
