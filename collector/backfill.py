"""`daedalus backfill`: a venue's trade history over REST into the collector's raw segments.

Pages come through ccxt's `fetch_trades` with the venue's paging (collector/venue_<id>.py
`trade_history`), one pager per rule:
- forward by trade id from the first trade at `start` (Binance `historicalTrades?fromId`, with an
  API key);
- forward by a time cursor (Kraken `since`);
- backward by trade id from `end` (OKX `history-trades`: the first page by time, `type=2&after=<end
  ms>`, then `type=1&after=<oldest id>`);
- backward by a time window (Coinbase Advanced Trade `ticker?start&end`: the newest 1000 of a window
  in whole seconds, so `end` moves down to the oldest trade's second and the trades of that second
  already written are dropped by id);
- the most recent N only (Bybit `recent-trade`, 60 spot): what falls in the range is written, the
  rest of the range is reported unavailable.
Each page is written as a closed raw segment (raw/ready/ccxt/trades/segment_<first trade
time>_bf<hash>.parquet, rows marked `source = 'rest'`), fsynced and renamed into place, and only then
is the cursor in `_state/backfill/` advanced: a kill -9 at any point resumes from the last durable
page, and a page written again has the same name and the same rows (named by its first trade), so it
replaces itself instead of adding rows. `daedalus land` moves the segments into bronze as it does the
collector's. A finished job is recorded as done: running it again writes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daedalus.collector.ccxt_rows import SOURCE, trade_row
from daedalus.collector.connection import envelope
from daedalus.collector.heal import fetch_page
from daedalus.collector.schemas import SCHEMAS
from daedalus.collector.venues import ccxt_exchange_class, ccxt_venue, check_symbols
from daedalus.errors import ExchangeError
from daedalus.fsio import fsync_dir

# Venues collected by a native client (no ccxt venue module) whose REST history ccxt still pages:
# exchange id -> (mode, page limit). Coinbase Advanced Trade's market trades: 1000 newest a window.
NATIVE_HISTORY = {"coinbase": ("window", 1000)}


@dataclass
class Progress:
    start_ms: int
    end_ms: int
    at_ms: int  # how far the pages reached: up from start (forward) or down from end (backward)
    rows: int
    pages: int
    done: bool = False
    backward: bool = False
    unavailable: str | None = None  # the part of the range the venue does not serve, when known

    @property
    def covered_ms(self) -> int:
        return (self.end_ms - self.at_ms) if self.backward else (self.at_ms - self.start_ms)


def state_file(root: Path, exchange: str, symbol: str, start_ms: int, end_ms: int) -> Path:
    safe = symbol.replace("/", "-").replace(":", "_")
    return root / "_state" / "backfill" / exchange / f"{safe}_{start_ms}_{end_ms}.json"


def write_json_durably(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_segment(
    root: Path, exchange: str, symbol: str, rows: list[dict], channel: str = "trades", key: str = ""
) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    first = rows[0]
    key = f"{exchange}|{symbol}|{key or first['trade_id']}|{first['timestamp']}"
    when = dt.datetime.fromtimestamp(first["timestamp"] / 1e9, tz=dt.UTC)
    name = f"segment_{when:%Y%m%dT%H%M%S%fZ}_bf{hashlib.sha256(key.encode()).hexdigest()[:12]}.parquet"
    out = root / "raw" / "ready" / SOURCE / channel
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{name}.tmp"
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMAS[channel]), tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, out / name)  # the same page again replaces itself: no duplicate rows
    fsync_dir(out)
    return out / name


class _Pager:
    """One venue's paging over [start_ms, end_ms): `page()` fetches the next page, returns its trades
    not written yet (oldest first) and moves the cursor; `state` is what resumes it."""

    backward = False

    def __init__(self, ex: Any, venue: Any, symbol: str, span: tuple[int, int], limit: int, state: dict):
        self.ex, self.venue, self.symbol, self.limit = ex, venue, symbol, limit
        self.start_ms, self.end_ms = span
        self.state = state
        self.at_ms = state.get("at_ms", self.end_ms if self.backward else self.start_ms)
        self.done = bool(state.get("done"))
        self.unavailable: str | None = state.get("unavailable")
        self.deadline_s = 600.0

    async def prepare(self) -> None:
        """Anything the first page needs (a first trade id)."""

    async def fetch(self, since: int | None, params: dict) -> list:
        return await fetch_page(
            self.ex, self.symbol, since, self.limit, params, time.monotonic() + self.deadline_s
        )

    async def page(self) -> list:
        raise NotImplementedError


class _IdForward(_Pager):
    """Trades with id >= next_id (Binance historicalTrades?fromId), from the first at start_ms."""

    async def prepare(self) -> None:
        if self.state.get("next_id") is None and not self.done:
            self.state["next_id"] = await self.venue.first_trade_id_at(self.ex, self.symbol, self.start_ms)
            self.done = self.state["next_id"] is None

    async def page(self) -> list:
        next_id = self.state["next_id"]
        page = await self.fetch(None, self.venue.trade_history_params("id", next_id))
        trades = sorted((t for t in page if _num(t.get("id")) >= next_id), key=_order)
        if not trades:
            self.done = True
            return []
        self.state["next_id"] = _num(trades[-1].get("id")) + 1
        self.at_ms = min(self.end_ms, _ts(trades[-1]))
        self.done = _ts(trades[-1]) >= self.end_ms
        return trades


class _TimeForward(_Pager):
    """Trades at or after a time cursor (Kraken since): a page may end inside a millisecond many
    trades share, so the next starts at that millisecond again and drops the ids written."""

    async def page(self) -> list:
        since = self.state.get("since_ms", self.start_ms)
        seen = set(self.state.get("seen_at_since", []))
        page = await self.fetch(since, self.venue.trade_history_params("time", None, since - 1))
        trades = sorted((t for t in page if _ts(t) >= since and str(t.get("id")) not in seen), key=_order)
        if not trades:
            self.done = True
            return []
        newest = _ts(trades[-1])
        at_newest = {str(t.get("id")) for t in trades if _ts(t) == newest}
        self.state["seen_at_since"] = sorted((seen | at_newest) if newest == since else at_newest)
        self.state["since_ms"] = newest
        self.at_ms = min(self.end_ms, newest)
        self.done = newest >= self.end_ms
        return trades


class _IdBackward(_Pager):
    """OKX history-trades: newest first, 100 a page. The first page is the trades before end_ms
    (type 2: `after` a timestamp), then each page those older than the oldest id so far (type 1)."""

    backward = True

    async def page(self) -> list:
        before = self.state.get("before_id")
        params = self.venue.trade_history_params("id", before)
        if before is None:
            params = {**params, "type": "2", "after": str(self.end_ms)}
        page = await self.fetch(None, params)
        trades = sorted((t for t in page if before is None or _num(t.get("id")) < before), key=_order)
        if not trades:
            self.done = True
            if self.at_ms > self.start_ms:  # the venue's history ends here (OKX: the last 3 months)
                self.unavailable = f"no trades served before {_iso(self.at_ms)} (from {_iso(self.start_ms)})"
            return []
        self.state["before_id"] = min(_num(t.get("id")) for t in trades)
        oldest = _ts(trades[0])
        self.at_ms = max(self.start_ms, oldest)
        self.done = oldest < self.start_ms
        return trades


class _WindowBackward(_Pager):
    """Coinbase market trades: the newest `limit` trades with start <= time < end (whole seconds).
    A full page moves `end` down to its oldest trade's second; that second's trades already written
    are dropped by id on the next page."""

    backward = True

    async def page(self) -> list:
        start_s = self.start_ms // 1000
        end_s = self.state.get("end_s", math.ceil(self.end_ms / 1000))
        seen = set(self.state.get("seen_at_end", []))
        page = await self.fetch(start_s * 1000, {"until": end_s * 1000})
        trades = sorted((t for t in page if str(t.get("id")) not in seen), key=_order)
        if len(page) < self.limit or not trades:
            self.done = True  # the whole window [start_s, end_s) was served
            self.at_ms = self.start_ms
            return trades
        nxt = _ts(trades[0]) // 1000 + 1
        if nxt >= end_s:  # a full page inside one second: the window cannot reach what is older
            nxt = end_s - 1
            note = f"more than {self.limit} trades in the second before {_iso(end_s * 1000)}: some missing"
            self.unavailable = note if self.unavailable is None else self.unavailable
        self.state["seen_at_end"] = sorted(str(t.get("id")) for t in page if _ts(t) // 1000 == nxt - 1)
        self.state["end_s"] = nxt
        self.at_ms = max(self.start_ms, nxt * 1000)
        self.done = nxt <= start_s
        return trades


class _LastN(_Pager):
    """Bybit recent-trade: the most recent `limit` trades, no paging. What falls in the range is
    written; the part of the range older than the oldest trade served is unavailable (its count is
    unknown: nothing tells the id of the first trade at start_ms)."""

    async def page(self) -> list:
        page = sorted(await self.fetch(None, self.venue.trade_history_params("last_n", None)), key=_order)
        self.done, self.at_ms = True, self.end_ms
        oldest = _ts(page[0]) if page else None
        if oldest is None or oldest > self.start_ms:
            upto = self.end_ms if oldest is None else min(self.end_ms, oldest)
            self.unavailable = (
                f"trades from {_iso(self.start_ms)} to {_iso(upto)} are not served (only the last "
                f"{self.limit} trades are; rows missing unknown)"
            )
        return page


PAGERS: dict[str, type[_Pager]] = {
    "id": _IdForward,
    "id_backward": _IdBackward,
    "time": _TimeForward,
    "window": _WindowBackward,
    "last_n": _LastN,
}


def _pager_kind(exchange_id: str, venue: Any, ex: Any) -> tuple[str, int]:
    if exchange_id in NATIVE_HISTORY:
        return NATIVE_HISTORY[exchange_id]
    mode, limit = venue.trade_history_plan(ex)
    if mode == "id" and venue.trade_id_paging == "backward":
        return "id_backward", limit
    # a venue that serves only the last N without credentials pages with them (Binance): ask for those
    if mode in ("id", "time") or (mode == "last_n" and venue.trade_history == "last_n"):
        return mode, limit
    raise ExchangeError(
        f"backfill: {exchange_id} serves no trade history for a time range "
        f"(trade_history={mode!r}{'; set BINANCE_API_KEY' if exchange_id == 'binance' else ''}); "
        "see docs/exchanges.md 'Healing and backfill'"
    )


def open_exchange(exchange_id: str, start_ms: int, end_ms: int) -> Any:
    """The ccxt exchange a backfill pages with, once the range is checked: ccxt's rate limiter on, and a
    read-only key from <ID>_API_KEY where the venue pages its history only with one (Binance
    historicalTrades)."""
    if end_ms <= start_ms:
        raise ExchangeError(f"backfill: --end ({end_ms}) must be after --start ({start_ms})")
    ex = ccxt_exchange_class(exchange_id)({"enableRateLimit": True})
    ex.apiKey = os.environ.get(f"{exchange_id.upper()}_API_KEY") or ex.apiKey
    return ex


async def load_markets_for(ex: Any, exchange_id: str, symbol: str) -> None:
    """Load the venue's markets unless a test or caller set them, then check the symbol is one."""
    if not ex.markets:
        try:
            await ex.load_markets()
        except Exception as e:  # noqa: BLE001
            raise ExchangeError(f"{exchange_id}: cannot load markets ({type(e).__name__}: {e})") from None
    check_symbols(ex, exchange_id, [symbol])


async def run_backfill(
    root: Path,
    exchange_id: str,
    symbol: str,
    start_ms: int,
    end_ms: int,
    *,
    configure: Callable[[Any], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    page_deadline_s: float = 600.0,
) -> Progress:
    """Fetch trades with start_ms <= time < end_ms into raw segments; resumable and idempotent."""
    ex = open_exchange(exchange_id, start_ms, end_ms)
    venue = ccxt_venue(exchange_id)
    try:
        if configure is not None:
            configure(ex)
        kind, limit = _pager_kind(exchange_id, venue, ex)
        await load_markets_for(ex, exchange_id, symbol)
        state_path = state_file(root, exchange_id, symbol, start_ms, end_ms)
        state = json.loads(state_path.read_text()) if state_path.exists() else {}
        pager = PAGERS[kind](ex, venue, symbol, (start_ms, end_ms), limit, state)
        pager.deadline_s = page_deadline_s
        prog = Progress(start_ms, end_ms, pager.at_ms, state.get("rows", 0), state.get("pages", 0))
        prog.done, prog.backward, prog.unavailable = pager.done, pager.backward, pager.unavailable
        if on_progress:
            on_progress(prog)
        await pager.prepare()
        prog.done = pager.done
        conn_id = f"rest:backfill:{exchange_id}:{symbol}"
        while not prog.done:
            trades = await pager.page()
            inside = [t for t in trades if start_ms <= _ts(t) < end_ms]
            if inside:
                now = time.time_ns()
                rows = []
                for i, t in enumerate(inside):
                    # seq: the trade id where it is a number that fits (Bybit's execIds may not)
                    seq = n if 0 < (n := _num(t.get("id"))) < 2**63 else i
                    row = trade_row(t, envelope(now, exchange_id, symbol, conn_id, seq))
                    row["source"] = "rest"
                    rows.append(row)
                write_segment(root, exchange_id, symbol, rows)
                prog.rows += len(rows)
            prog.pages += 1
            prog.at_ms, prog.done, prog.unavailable = pager.at_ms, pager.done, pager.unavailable
            # the page's segment is durable before the cursor moves past it
            doc = {**pager.state, "at_ms": prog.at_ms, "rows": prog.rows, "pages": prog.pages}
            write_json_durably(state_path, {**doc, "done": prog.done, "unavailable": prog.unavailable})
            if on_progress:
                on_progress(prog)
        return prog
    finally:
        await ex.close()


def _ts(trade: Any) -> int:
    return int(trade.get("timestamp") or 0)


def _num(v: Any) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def _order(trade: Any) -> tuple[int, int]:
    return (_ts(trade), _num(trade.get("id")))


def _iso(ms: int) -> str:
    return (
        dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )
