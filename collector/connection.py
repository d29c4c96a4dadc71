"""The one place for connection lifecycle: reconnect loop, stale-stream watchdog, proactive reconnect,
event rows, and the hand-off of stamped records to the bounded queue.

cryptofeed keeps reconnect, backoff and the watchdog in one module so every venue behaves alike; so
do we. A venue supplies a *session*: a coroutine that connects, subscribes and reads until something
goes wrong, raising a `ReconnectReason` (or any exception). `supervise` runs it forever: records the
disconnect in `events`, sleeps the backoff, runs it again. While a session runs, a watchdog checks
that every subscription has delivered data within `stale_after` seconds and a timer forces a
reconnect before the exchange's own cut (Binance drops every connection at 24 h).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from daedalus.collector.backoff import Backoff
from daedalus.collector.clock import receive_ns
from daedalus.collector.queue import Record


class RecordQueue(Protocol):
    async def put(self, record: Record) -> bool: ...


_conn_counter = itertools.count(1)
_PROCESS_TAG = f"{os.getpid():x}-{time.time_ns() // 1_000_000_000:x}"


def new_conn_id(source: str, name: str) -> str:
    """Unique per connection attempt and across restarts (pid + start time + counter)."""
    return f"{source}:{name}:{_PROCESS_TAG}:{next(_conn_counter)}"


def envelope(capture_ts: int, exchange: str, symbol: str | None, conn_id: str, seq: int) -> dict[str, Any]:
    """The columns every bronze row carries (collector/schemas.py ENVELOPE)."""
    return {
        "collected_at": capture_ts // 1_000_000,
        "capture_ts": capture_ts,
        "exchange": exchange,
        "symbol": symbol,
        "conn_id": conn_id,
        "seq": seq,
    }


def event_row(
    event_type: str,
    *,
    exchange: str,
    conn_id: str,
    seq: int = 0,
    symbol: str | None = None,
    channel: str | None = None,
    close_code: int | None = None,
    count: int | None = None,
    interval_start: int | None = None,
    interval_end: int | None = None,
    detail: str | None = None,
    capture_ts: int | None = None,
) -> dict[str, Any]:
    """One `events` row (schemas.EVENTS); timestamps are int ns since epoch."""
    ts = capture_ts if capture_ts is not None else receive_ns()
    row = envelope(ts, exchange, symbol, conn_id, seq)
    row.update(
        event_type=event_type,
        channel=channel,
        close_code=close_code,
        count=count,
        interval_start=interval_start,
        interval_end=interval_end,
        detail=detail,
    )
    return row


# ---- why a session ended ----------------------------------------------------------------------


class ReconnectReason(Exception):  # noqa: N818 - a reason, not an error: the loop reconnects on it
    """A session ended and should be restarted; carries what the `events` row records."""

    event_type = "disconnect"

    def __init__(
        self,
        detail: str,
        *,
        close_code: int | None = None,
        retry_after: float | None = None,
        status: int | None = None,
        symbol: str | None = None,
        channel: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.close_code = close_code
        self.retry_after = retry_after
        self.status = status
        self.symbol = symbol
        self.channel = channel


class Disconnected(ReconnectReason):
    event_type = "disconnect"


class StaleStream(ReconnectReason):
    event_type = "stale"


class ServerShutdown(ReconnectReason):
    """Binance's `serverShutdown` event: the server is going away; reconnect now, no backoff."""

    event_type = "reconnect"


class ProactiveReconnect(ReconnectReason):
    event_type = "reconnect"


class RateLimited(ReconnectReason):
    event_type = "rate_limited"


# ---- counting and hand-off ---------------------------------------------------------------------


@dataclass
class StreamCounters:
    received: int = 0
    accepted: int = 0
    dropped: int = 0
    last_capture_ts: int | None = None


class Emitter:
    """Moves stamped records to the bounded queue and counts every one.

    ccxt calls our hook synchronously from its socket callback, where we cannot await the queue; such
    records wait in a small staging deque that `pump` drains with `await queue.put` (which applies the
    queue's backpressure). If the staging deque itself fills (writer stalled for longer than the
    queue's backpressure bound), records are dropped here, counted, and one `overflow` event per
    stream says how many and over which interval: nothing disappears without a row.
    """

    def __init__(self, queue: RecordQueue, staging_limit: int = 50_000) -> None:
        self.queue = queue
        self.staging_limit = staging_limit
        self._staging: deque[Record] = deque()
        self._ready = asyncio.Event()
        self.counters: dict[tuple[str, str], StreamCounters] = {}
        # (source, channel, exchange, symbol) -> [count, first_ns, last_ns]
        self._local_drops: dict[tuple[str, str, str, str | None], list[int]] = {}
        self.latencies_ns: list[int] | None = None  # set to a list to sample receive→queued latency
        # called with each record dropped (staging or queue full): the trade healer refetches them
        self.drop_listeners: list[Any] = []

    @property
    def staged(self) -> int:
        """Records waiting in the staging deque (the ccxt reader holds off while it is half full)."""
        return len(self._staging)

    def _count(self, record: Record) -> StreamCounters:
        key = (record.source, record.channel)
        c = self.counters.get(key)
        if c is None:
            c = self.counters[key] = StreamCounters()
        return c

    def emit_nowait(self, record: Record) -> None:
        """Stage a record from synchronous code (the ccxt message hook)."""
        c = self.counters.get((record.source, record.channel)) or self._count(record)
        c.received += 1
        c.last_capture_ts = record.row.get("capture_ts")
        if len(self._staging) >= self.staging_limit and record.channel != "events":
            c.dropped += 1
            self._tell_dropped(record)
            row = record.row
            key = (record.source, record.channel, row.get("exchange", ""), row.get("symbol"))
            ts = row.get("capture_ts") or receive_ns()
            slot = self._local_drops.get(key)
            if slot is None:
                self._local_drops[key] = [1, ts, ts]
            else:
                slot[0] += 1
                slot[2] = ts
            return
        self._staging.append(record)
        self._ready.set()

    async def emit(self, record: Record) -> bool:
        """Put a record from async code, after anything already staged (keeps arrival order)."""
        c = self._count(record)
        c.received += 1
        c.last_capture_ts = record.row.get("capture_ts")
        if self._staging:
            await self.flush()
        ok = await self.queue.put(record)
        if ok:
            c.accepted += 1
        else:
            c.dropped += 1
            self._tell_dropped(record)
        return ok

    def _tell_dropped(self, record: Record) -> None:
        for listener in self.drop_listeners:
            listener(record)

    async def flush(self) -> None:
        """Drain the staging deque into the queue (with the queue's backpressure)."""
        while self._staging:
            record = self._staging.popleft()
            ok = await self.queue.put(record)
            c = self._count(record)
            if ok:
                c.accepted += 1
            else:
                c.dropped += 1
                self._tell_dropped(record)
        if self._local_drops:
            drops, self._local_drops = self._local_drops, {}
            for (source, channel, exchange, symbol), (count, first, last) in drops.items():
                row = event_row(
                    "overflow",
                    exchange=exchange,
                    conn_id="collector",
                    symbol=symbol,
                    channel=channel,
                    count=count,
                    interval_start=first,
                    interval_end=last,
                    detail=f"staging buffer full ({self.staging_limit}); {count} {channel} messages dropped",
                )
                # this row is the only trace of those drops: retry until the queue takes it (a
                # refused attempt is itself counted by the queue as a dropped `events` record)
                while not await self.queue.put(Record(source, "events", row)):
                    await asyncio.sleep(0.01)

    async def pump(self, stop: asyncio.Event) -> None:
        """Run until `stop`: move staged records to the queue as they come."""
        while not stop.is_set():
            if not self._staging and not self._local_drops:
                self._ready.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._ready.wait(), 0.5)
            await self.flush()
        await self.flush()

    def totals(self) -> dict[str, int]:
        return {
            "received": sum(c.received for c in self.counters.values()),
            "accepted": sum(c.accepted for c in self.counters.values()),
            "dropped": sum(c.dropped for c in self.counters.values()),
        }


# ---- a session and its supervisor --------------------------------------------------------------


@dataclass
class Connection:
    """State of one connection attempt: its id, message counter and per-subscription freshness."""

    source: str
    exchange: str
    name: str
    conn_id: str = ""
    seq: int = 0
    delivered: bool = False
    last_data: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    carried: dict[tuple[str, str], None] = field(default_factory=dict)
    """The (bronze channel, symbol) series this connection carries, in subscription order: an event
    of the whole connection names each of them (docs/features.md "Time": an event breaks only what it
    names)."""
    series_of: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Stale-deadline key -> the series whose data resets it."""

    def __post_init__(self) -> None:
        if not self.conn_id:
            self.conn_id = new_conn_id(self.source, self.name)

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def watch(self, subscription: str, series: tuple[str, str] | None = None) -> None:
        """Start the stale deadline of a subscription (at subscribe time); `series` is the (channel,
        symbol) it feeds, which then counts as carried by this connection."""
        self.last_data.setdefault(subscription, time.monotonic())
        if series is not None:
            self.series_of[subscription] = series
            self.carries(*series)

    def carries(self, channel: str, symbol: str) -> None:
        """Record that this connection delivers the series (channel, symbol), watched or not."""
        self.carried.setdefault((channel, symbol), None)

    def touch(self, subscription: str) -> None:
        """A subscription delivered data: reset its stale deadline."""
        self.last_data[subscription] = time.monotonic()
        self.delivered = True

    def extend(self, subscription: str) -> None:
        """Push a subscription's stale deadline out without counting it as data (a deliberate wait)."""
        self.last_data[subscription] = time.monotonic()

    def stalest(self) -> tuple[str, float] | None:
        if not self.last_data:
            return None
        key = min(self.last_data, key=self.last_data.__getitem__)
        return key, time.monotonic() - self.last_data[key]


Session = Callable[[Connection], Awaitable[None]]


@dataclass
class SupervisorSettings:
    stale_after: float
    max_age: float
    backoff_initial: float
    backoff_max: float


async def _watchdog(conn: Connection, stale_after: float, max_age: float) -> ReconnectReason:
    """Return (not raise) the reason the session must end: a stale subscription or its age."""
    tick = min(1.0, stale_after / 4)
    while True:
        await asyncio.sleep(tick)
        stalest = conn.stalest()
        if stalest is not None and stalest[1] >= stale_after:
            key, age = stalest
            channel, symbol = conn.series_of.get(key, (None, None))
            return StaleStream(
                f"no data on {key} for {age:.1f}s (stale_after={stale_after}s)",
                symbol=symbol,
                channel=channel,
            )
        if time.monotonic() - conn.started >= max_age:
            return ProactiveReconnect(
                f"connection age {max_age:.0f}s reached: reconnecting before the exchange's cut"
            )


def _named_series(
    conn: Connection, symbol: str | None, channel: str | None
) -> list[tuple[str | None, str | None]]:
    """The (symbol, channel) pairs an event of this session names: the one the reason names, or, for a
    reason of the whole connection (or of one channel of it), every series it carried (on that channel)
    (never a NULL symbol that silver would read as "every series of the exchange"). A session that
    failed before subscribing carried nothing: its event keeps symbol and channel NULL."""
    if symbol is not None:
        return [(symbol, channel)]
    pairs = [(s, c) for c, s in conn.carried if channel is None or c == channel]
    return pairs or [(None, channel)]


async def supervise(
    session: Session,
    *,
    source: str,
    exchange: str,
    name: str,
    emitter: Emitter,
    settings: SupervisorSettings,
    stop: asyncio.Event,
    backoff: Backoff | None = None,
    fatal: tuple[type[BaseException], ...] = (),
) -> None:
    """Run `session` until `stop`, reconnecting on every failure with backoff and an events row.

    Exceptions in `fatal` (configuration errors) propagate: retrying a bad symbol forever helps no one.
    """
    backoff = backoff or Backoff(settings.backoff_initial, settings.backoff_max)
    while not stop.is_set():
        conn = Connection(source, exchange, name)
        task = asyncio.ensure_future(session(conn))
        dog = asyncio.ensure_future(_watchdog(conn, settings.stale_after, settings.max_age))
        stopper = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait({task, dog, stopper}, return_when=asyncio.FIRST_COMPLETED)
        reason: BaseException | None
        if task in done:
            reason = task.exception() if not task.cancelled() else None
            if reason is None:
                reason = Disconnected("session ended")
        elif dog in done:
            reason = dog.result()
        else:
            reason = None  # stop requested
        for t in (task, dog, stopper):
            if not t.done():
                t.cancel()
        # the session's own finally blocks close its sockets; wait for them
        await asyncio.gather(task, dog, stopper, return_exceptions=True)
        if conn.delivered:
            backoff.reset()
        if reason is None or stop.is_set():
            for symbol, channel in _named_series(conn, None, None):
                await emitter.emit(
                    Record(
                        source,
                        "events",
                        event_row(
                            "disconnect",
                            exchange=exchange,
                            conn_id=conn.conn_id,
                            seq=conn.seq,
                            symbol=symbol,
                            channel=channel,
                            detail="collector stopping",
                            close_code=1000,
                        ),
                    )
                )
            return
        if isinstance(reason, fatal):
            raise reason
        if isinstance(reason, ReconnectReason):
            event_type, detail = reason.event_type, reason.detail
            close_code, symbol, channel = reason.close_code, reason.symbol, reason.channel
            retry_after, status = reason.retry_after, reason.status
        else:
            event_type, detail = "disconnect", f"{type(reason).__name__}: {reason}"
            close_code = symbol = channel = None
            retry_after = status = None
            close_code = getattr(reason, "close_code", None)
        for sym, chan in _named_series(conn, symbol, channel):
            await emitter.emit(
                Record(
                    source,
                    "events",
                    event_row(
                        event_type,
                        exchange=exchange,
                        conn_id=conn.conn_id,
                        seq=conn.seq,
                        symbol=sym,
                        channel=chan,
                        close_code=close_code,
                        detail=f"{name}: {detail}"[:2000],
                    ),
                )
            )
        if isinstance(reason, ServerShutdown | ProactiveReconnect):
            delay = 0.0
        else:
            delay = backoff.next_delay(retry_after=retry_after, status=status)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
