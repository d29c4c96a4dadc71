"""Heal a break of a trades series from the venue's REST history (ccxt `fetch_trades`).

When a trades feed's session ends (disconnect, stale stream), the last trade the socket delivered
per symbol is kept; the first trade of the next session closes the gap, and a task of its own fetches
the trades in between: by trade id where the venue's ids are contiguous (`trade_history` 'id'), by
time otherwise ('time'), by time windows moved down in whole seconds (Coinbase, 'window'), or the
most recent page where that is all the venue serves ('last_n'). What
the socket already delivered is dropped by trade id; the rest go to bronze `trades` with
`source = 'rest'`, and one `backfill` event says the range, the rows written and whether the gap is
closed ("complete") or not ("partial", with the rows missing when the ids tell). The task respects
ccxt's rate limiter and the venue's 429/418 Retry-After, stops at `ingestion.heal_seconds`, and
stages its rows only while the live feed's staging deque and the queue are mostly empty: it never
delays the feed. Trades an overflow dropped (the emitter's `drop_listeners`) are healed the same way
once no trade has been dropped for a second: the range they span is fetched like a gap's.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from daedalus.collector.backoff import Backoff, retry_after_from_headers
from daedalus.collector.ccxt_rows import SOURCE, trade_row
from daedalus.collector.clock import receive_ns
from daedalus.collector.connection import Record, envelope, event_row, new_conn_id

_SEEN_IDS = 20_000  # socket trade ids remembered per symbol (to drop REST rows it delivered)


@dataclass(frozen=True)
class Edge:
    """A trade the socket delivered at one side of a gap."""

    trade_id: str | None
    ts_ms: int | None
    capture_ts: int

    @property
    def number(self) -> int | None:
        try:
            return int(self.trade_id) if self.trade_id is not None else None
        except ValueError:
            return None


@dataclass
class Dropped:
    """The trades of one symbol an overflow dropped, in constant memory: the range they span and the
    most recent ids (to take back from the delivered set, which is as bounded)."""

    first_capture: int
    lo_id: int | None = None
    hi_id: int | None = None
    lo_ms: int | None = None
    hi_ms: int | None = None
    all_numbered: bool = True
    ids: deque[str] = field(default_factory=lambda: deque(maxlen=_SEEN_IDS))

    def add(self, tid: str | None, ms: int | None) -> None:
        if tid is not None:
            self.ids.append(tid)
        if tid is not None and tid.isdigit():
            n = int(tid)
            self.lo_id = n if self.lo_id is None else min(self.lo_id, n)
            self.hi_id = n if self.hi_id is None else max(self.hi_id, n)
        else:
            self.all_numbered = False
        if ms is not None:
            self.lo_ms = ms if self.lo_ms is None else min(self.lo_ms, ms)
            self.hi_ms = ms if self.hi_ms is None else max(self.hi_ms, ms)


@dataclass
class Outcome:
    rows: int
    complete: bool
    missing: int | None
    detail: str


class TradeHealer:
    """`collector` gives `venue`, `exchange` (a ccxt client for REST), `exchange_id`, `emitter` and
    `emit_event`; a native collector passes its own `source` and `make_row` (bronze row of a ccxt
    trade), so healed rows sit beside its socket rows in the same shape."""

    def __init__(
        self,
        collector: Any,
        heal_seconds: float,
        source: str = SOURCE,
        make_row: Callable[[Any, dict], dict] = trade_row,
    ) -> None:
        self.c = collector
        self.source, self.make_row = source, make_row
        self.venue = collector.venue
        self.heal_seconds = heal_seconds
        self.last: dict[str, Edge] = {}
        self.open_gaps: dict[str, Edge] = {}  # symbol -> last socket trade before an unhealed break
        self.seen: dict[str, deque[str]] = {}
        self._seen_set: dict[str, set[str]] = {}
        self.tasks: set[asyncio.Task] = set()
        self.outcomes: list[Outcome] = []
        self.enabled = self.venue.trade_history is not None and self.heal_seconds > 0
        # trades the socket delivered but an overflow dropped (staging deque or queue full), per
        # symbol; healed once the pressure is over
        self.dropped: dict[str, Dropped] = {}
        self._last_drop = 0.0
        if self.enabled:
            collector.emitter.drop_listeners.append(self.lost)

    # ---- called from the capture hook (synchronously) ----
    def saw(self, symbol: str | None, trade: Any, capture_ts: int) -> None:
        if symbol is None or not self.enabled:
            return
        tid = None if trade.get("id") is None else str(trade["id"])
        edge = Edge(tid, trade.get("timestamp"), capture_ts)
        if tid is not None:
            ids, ids_set = self.seen.setdefault(symbol, deque()), self._seen_set.setdefault(symbol, set())
            ids.append(tid)
            ids_set.add(tid)
            if len(ids) > _SEEN_IDS:
                ids_set.discard(ids.popleft())
        before = self.open_gaps.pop(symbol, None)
        if before is not None and not _newer(edge, before):
            # a venue that replays recent trades on subscribe (Kraken's snapshot): the gap closes at
            # the first trade newer than the last one before it
            self.open_gaps[symbol] = before
            return
        self.last[symbol] = edge
        if before is not None:
            task = asyncio.ensure_future(self._heal(symbol, before, edge))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    # ---- called by the emitter for every record an overflow drops ----
    def lost(self, record: Any) -> None:
        row = record.row
        if record.channel != "trades" or record.source != self.source or row.get("source") == "rest":
            return  # not a socket trade of ours (a healed row dropped again is not chased again)
        symbol = row.get("symbol")
        if symbol is None or row.get("exchange") != self.c.exchange_id:
            return
        drops = self.dropped.get(symbol)
        if drops is None:
            drops = self.dropped[symbol] = Dropped(row["capture_ts"])
            task = asyncio.ensure_future(self._heal_dropped(symbol))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        ts = row.get("timestamp")
        drops.add(row.get("trade_id"), None if ts is None else ts // 1_000_000)
        self._last_drop = time.monotonic()

    async def _heal_dropped(self, symbol: str) -> None:
        """Once no trade has been dropped for a second (the overflow is over and reported) and there
        is room, fetch the range the dropped trades span like a gap's."""
        deadline = time.monotonic() + self.heal_seconds
        while time.monotonic() < deadline and time.monotonic() - self._last_drop < 1.0:
            await asyncio.sleep(0.1)
        await self._room()
        d = self.dropped.pop(symbol)
        seen = self._seen_set.get(symbol, set())
        for tid in d.ids:
            seen.discard(tid)  # the socket delivered it, but it was never written: fetch it
        lo = hi = None
        if d.all_numbered and d.lo_id is not None and d.hi_id is not None:
            lo, hi = str(d.lo_id - 1), str(d.hi_id + 1)
        # the edges just outside the dropped range; the interval runs from the first drop to now,
        # after the overflow events were written, so it covers them (what the build reads)
        before = Edge(lo, d.lo_ms, d.first_capture)
        after = Edge(hi, d.hi_ms, receive_ns())
        await self._heal(symbol, before, after)

    # ---- called when a trades session ends ----
    def broke(self, symbols: list[str]) -> None:
        if not self.enabled:
            return
        for s in symbols:
            if s in self.last and s not in self.open_gaps:
                self.open_gaps[s] = self.last[s]

    async def finish(self, timeout: float) -> None:
        """At shutdown: let running heals finish for at most `timeout` seconds, then cancel them."""
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=min(timeout, self.heal_seconds))
        for task in list(self.tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self.tasks, return_exceptions=True)

    # ---- the heal task ----
    async def _heal(self, symbol: str, before: Edge, after: Edge) -> None:
        deadline = time.monotonic() + self.heal_seconds
        conn_id = new_conn_id("rest", f"trades:{symbol}")
        fetched: dict[str, Any] = {}
        error, covered = None, False
        try:
            covered = await self._fetch_gap(symbol, before, after, deadline, fetched)
        except Exception as e:  # noqa: BLE001 - a failed heal is a partial one, never a dead collector
            error = f"{type(e).__name__}: {e}"[:300]
        seen = self._seen_set.get(symbol, set())
        # only the gap: a page may run past its end, into trades the new socket is delivering now
        a, b = before.number, after.number
        lo, hi = before.ts_ms or 0, after.ts_ms or 0

        def in_gap(tid: str, t: Any) -> bool:
            if a is not None and b is not None and tid.isdigit():
                return a < int(tid) < b
            return lo <= _ts(t) <= hi

        ordered = sorted(fetched.items(), key=lambda kv: _order(kv[1]))
        new = [t for tid, t in ordered if tid not in seen and in_gap(tid, t)]
        seq = 0
        for trade in new:
            await self._room()
            seq += 1
            row = self.make_row(trade, envelope(receive_ns(), self.c.exchange_id, symbol, conn_id, seq))
            row["source"] = "rest"
            self.c.emitter.emit_nowait(Record(self.source, "trades", row))
        timed_out = time.monotonic() > deadline
        outcome = self._judge(before, after, fetched, len(new), error, timed_out, covered)
        self.outcomes.append(outcome)
        await self._room()
        self.c.emitter.emit_nowait(
            Record(
                self.source,
                "events",
                event_row(
                    "backfill",
                    exchange=self.c.exchange_id,
                    conn_id=conn_id,
                    seq=seq,
                    symbol=symbol,
                    channel="trades",
                    count=len(new),
                    interval_start=before.capture_ts,
                    interval_end=after.capture_ts,
                    detail=outcome.detail,
                    # stamped at the gap's end, not when the heal finished: the event then lands in
                    # the date partition of the break it heals (a heal that ends past midnight would
                    # otherwise sit in the next day's events, which that day's build never reads)
                    capture_ts=after.capture_ts,
                ),
            )
        )

    async def _room(self) -> None:
        """The live feed first: stage a healed row only while the staging deque is under a quarter
        full and the queue under half (a row the queue refused would be lost again)."""
        emitter = self.c.emitter
        queue = emitter.queue
        while emitter.staged > emitter.staging_limit // 4 or queue.qsize() > queue.maxsize // 2:
            await asyncio.sleep(0.01)

    def _judge(
        self,
        before: Edge,
        after: Edge,
        fetched: dict,
        rows: int,
        error: str | None,
        timed_out: bool,
        covered: bool = False,
    ) -> Outcome:
        span = f"trades after id {before.trade_id} to before id {after.trade_id}"
        a, b = before.number, after.number
        mode = self.venue.trade_history_plan(self.c.exchange)[0]
        missing = None
        if a is not None and b is not None:  # the venues with numeric ids number them contiguously
            between = {int(t) for t in fetched if t.isdigit() and a < int(t) < b}
            missing = (b - a - 1) - len(between)
            complete = missing == 0
        elif mode == "time":
            # time coverage: the pages reached the trade after the gap
            complete = (
                error is None
                and not timed_out
                and any(_ts(t) >= (after.ts_ms or 0) for t in fetched.values())
            )
        elif mode == "window":  # every window down to the gap's first second was served whole
            complete = error is None and not timed_out and covered
        else:
            complete = False
        why = f"; {error}" if error else ("; time bound reached" if timed_out else "")
        if complete:
            return Outcome(rows, True, 0, f"complete: {span} over REST ({mode}), {rows} rows{why}")
        lost = f"{missing} rows missing" if missing is not None else "rows missing unknown"
        return Outcome(rows, False, missing, f"partial: {lost}; {span} over REST ({mode}), {rows} rows{why}")

    async def _fetch_gap(self, symbol: str, before: Edge, after: Edge, deadline: float, out: dict) -> bool:
        """Fetch the gap's trades into `out` (by id); True where a time-window pager covered it."""
        v = self.venue
        mode, limit = v.trade_history_plan(self.c.exchange)
        if mode == "window":
            return await self._windows_back(symbol, before, after, limit, deadline, out)
        if mode == "last_n":
            for t in await self._fetch(symbol, None, limit, v.trade_history_params(mode, None), deadline):
                out[str(t["id"])] = t
            return False
        if mode == "id" and before.number is not None and after.number is not None:
            if v.trade_id_paging == "backward":
                await self._pages_back(symbol, before.number, after.number, limit, deadline, out)
                return False
            cursor = before.number + 1
            while cursor < after.number and time.monotonic() < deadline:
                page = await self._fetch(symbol, None, limit, v.trade_history_params(mode, cursor), deadline)
                ids = [int(t["id"]) for t in page if str(t.get("id", "")).isdigit()]
                for t in page:
                    out[str(t["id"])] = t
                if not ids or max(ids) < cursor:
                    return False  # the venue has nothing newer: what is left stays missing
                cursor = max(ids) + 1
            return False
        # by time: from the last trade before the gap until past the first trade after it. The cursor
        # is exclusive (Kraken: trades after `since`): ask from a millisecond before, or the trades
        # sharing a millisecond with the gap's edge or a page's end are skipped; repeats drop by id
        since, newest_before = before.ts_ms, None
        while since is not None and time.monotonic() < deadline:
            page = await self._fetch(
                symbol, since, limit, v.trade_history_params(mode, None, since - 1), deadline
            )
            for t in page:
                out[str(t.get("id"))] = t
            newest = max((_ts(t) for t in page), default=None)
            if newest is None or newest == newest_before or newest >= (after.ts_ms or 0):
                return False
            since, newest_before = newest, newest
        return False

    async def _windows_back(
        self, symbol: str, before: Edge, after: Edge, limit: int, deadline: float, out: dict
    ) -> bool:
        """Coinbase market trades: the newest `limit` trades with start <= time < end, in whole
        seconds, no cursor (collector/backfill.py's window pager). From the second after the gap's
        last trade down to the second of its first: a full page moves `end` down to its oldest
        trade's second, asked again whole (its trades repeat, dropped by id). True when every window
        came back less than full: the gap's time is covered."""
        start_s = (before.ts_ms or 0) // 1000
        end_s = (after.ts_ms or 0) // 1000 + 1
        while end_s > start_s and time.monotonic() < deadline:
            page = await self._fetch(symbol, start_s * 1000, limit, {"until": end_s * 1000}, deadline)
            for t in page:
                out[str(t.get("id"))] = t
            if len(page) < limit:
                return True
            nxt = min(_ts(t) for t in page) // 1000 + 1
            if nxt >= end_s:
                return False  # more than `limit` trades in one second: the window cannot go older
            end_s = nxt
        return False

    async def _pages_back(
        self, symbol: str, first: int, last: int, limit: int, deadline: float, out: dict
    ) -> None:
        """Page from id `last` back to id `first` (venues whose cursor returns older trades)."""
        cursor = last
        while cursor > first + 1 and time.monotonic() < deadline:
            params = self.venue.trade_history_params("id", cursor)
            page = await self._fetch(symbol, None, limit, params, deadline)
            ids = [int(t["id"]) for t in page if str(t.get("id", "")).isdigit()]
            for t in page:
                out[str(t["id"])] = t
            if not ids or min(ids) >= cursor:
                return  # nothing older: the venue's history ends here
            cursor = min(ids)

    async def _fetch(self, symbol: str, since: int | None, limit: int, params: dict, deadline: float) -> list:
        def waiting(status: int, delay: float) -> None:
            self.c.emit_event(
                "rate_limited",
                symbol=symbol,
                channel="trades",
                detail=f"REST trade history refused ({status}); waiting {delay:.1f}s",
            )

        return await fetch_page(self.c.exchange, symbol, since, limit, params, deadline, waiting)


async def fetch_page(
    ex: Any,
    symbol: str,
    since: int | None,
    limit: int,
    params: dict,
    deadline: float,
    on_wait: Any = None,
) -> list:
    """One page of ccxt's `fetch_trades` (its rate limiter applies); a 429/418 waits as the venue
    says (Retry-After), within `deadline` (monotonic), else raises."""
    return await polite(ex, lambda: ex.fetch_trades(symbol, since, limit, dict(params)), deadline, on_wait)


async def polite(ex: Any, call: Any, deadline: float, on_wait: Any = None) -> list:
    """`await call()` (a ccxt REST method), waiting out 429/418 as the venue says within `deadline`."""
    import ccxt

    backoff = Backoff(1.0, 60.0)
    while True:
        try:
            return list(await call())
        except (ccxt.DDoSProtection, ccxt.RateLimitExceeded) as e:
            retry = retry_after_from_headers(getattr(ex, "last_response_headers", None))
            status = 418 if "418" in str(e) else 429
            delay = backoff.next_delay(retry_after=retry, status=status)
            if time.monotonic() + delay > deadline:
                raise
            if on_wait is not None:
                on_wait(status, delay)
            await asyncio.sleep(delay)


def _newer(edge: Edge, than: Edge) -> bool:
    if edge.number is not None and than.number is not None:
        return edge.number > than.number
    return (edge.ts_ms or 0) > (than.ts_ms or 0)


def _ts(trade: Any) -> int:
    return int(trade.get("timestamp") or 0)


def _order(trade: Any) -> tuple:
    tid = str(trade.get("id"))
    return (_ts(trade), int(tid) if tid.isdigit() else 0, tid)
