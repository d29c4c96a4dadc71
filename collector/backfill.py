"""`daedalus backfill`: a venue's trade history over REST into the collector's raw segments.

Pages come through ccxt's `fetch_trades` with the venue's paging (collector/venue_<id>.py
`trade_history`): by trade id from the first trade at `start` ('id', e.g. Binance with an API key),
or by time ('time', e.g. Kraken). Each page is written as a closed raw segment
(raw/ready/ccxt/trades/segment_<first trade time>_bf<hash>.parquet, rows marked `source = 'rest'`),
fsynced and renamed into place, and only then is the cursor in `_state/backfill/` advanced: a kill -9
at any point resumes from the last durable page, and a page written again has the same name and the
same rows (named by its first trade), so it replaces itself instead of adding rows. `daedalus land`
moves the segments into bronze as it does the collector's. A finished job is recorded as done:
running it again writes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daedalus.collector.ccxt_rows import SOURCE, trade_row
from daedalus.collector.connection import envelope
from daedalus.collector.heal import fetch_page
from daedalus.collector.schemas import TRADES
from daedalus.collector.venues import ccxt_exchange_class, ccxt_venue, check_symbols
from daedalus.errors import ExchangeError
from daedalus.fsio import fsync_dir


@dataclass
class Progress:
    start_ms: int
    end_ms: int
    at_ms: int
    rows: int
    pages: int
    done: bool = False


def state_file(root: Path, exchange: str, symbol: str, start_ms: int, end_ms: int) -> Path:
    safe = symbol.replace("/", "-").replace(":", "_")
    return root / "_state" / "backfill" / exchange / f"{safe}_{start_ms}_{end_ms}.json"


def _write_json_durably(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _write_segment(root: Path, exchange: str, symbol: str, rows: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    first = rows[0]
    key = f"{exchange}|{symbol}|{first['trade_id']}|{first['timestamp']}".encode()
    when = dt.datetime.fromtimestamp(first["timestamp"] / 1e9, tz=dt.UTC)
    name = f"segment_{when:%Y%m%dT%H%M%S%fZ}_bf{hashlib.sha256(key).hexdigest()[:12]}.parquet"
    out = root / "raw" / "ready" / SOURCE / "trades"
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{name}.tmp"
    pq.write_table(pa.Table.from_pylist(rows, schema=TRADES), tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, out / name)  # the same page again replaces itself: no duplicate rows
    fsync_dir(out)
    return out / name


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
    if end_ms <= start_ms:
        raise ExchangeError(f"backfill: --end ({end_ms}) must be after --start ({start_ms})")
    venue = ccxt_venue(exchange_id)
    ex = ccxt_exchange_class(exchange_id)({"enableRateLimit": True})
    # a read-only key where the venue pages its history only with one (Binance historicalTrades)
    ex.apiKey = os.environ.get(f"{exchange_id.upper()}_API_KEY") or ex.apiKey
    try:
        if configure is not None:
            configure(ex)
        mode, limit = venue.trade_history_plan(ex)
        if mode not in ("id", "time") or (mode == "id" and venue.trade_id_paging != "forward"):
            raise ExchangeError(
                f"backfill: {exchange_id} serves no trade history paged forward from a time "
                f"(trade_history={mode!r}{'; set BINANCE_API_KEY' if exchange_id == 'binance' else ''}); "
                "see docs/contracts.md 'Healing trade gaps'"
            )
        if not ex.markets:
            try:
                await ex.load_markets()
            except Exception as e:  # noqa: BLE001
                raise ExchangeError(f"{exchange_id}: cannot load markets ({type(e).__name__}: {e})") from None
        check_symbols(ex, exchange_id, [symbol])
        state_path = state_file(root, exchange_id, symbol, start_ms, end_ms)
        state = json.loads(state_path.read_text()) if state_path.exists() else {}
        prog = Progress(
            start_ms, end_ms, state.get("at_ms", start_ms), state.get("rows", 0), state.get("pages", 0)
        )
        prog.done = bool(state.get("done"))
        if on_progress:
            on_progress(prog)
        next_id = state.get("next_id")
        since = state.get("since_ms", start_ms)  # 'time': the next page holds trades at or after it ...
        seen = set(state.get("seen_at_since", []))  # ... except these, written already
        if mode == "id" and next_id is None and not prog.done:
            next_id = await venue.first_trade_id_at(ex, symbol, start_ms)
            prog.done = next_id is None
        conn_id = f"rest:backfill:{exchange_id}:{symbol}"
        while not prog.done:
            deadline = time.monotonic() + page_deadline_s
            if mode == "id":
                params = venue.trade_history_params(mode, next_id)
                page = await fetch_page(ex, symbol, None, limit, params, deadline)
                trades = [t for t in page if _num(t.get("id")) >= next_id]
            else:
                params = venue.trade_history_params(mode, None, since - 1)
                page = await fetch_page(ex, symbol, since, limit, params, deadline)
                trades = [t for t in page if _ts(t) >= since and str(t.get("id")) not in seen]
            trades.sort(key=lambda t: (_ts(t), _num(t.get("id"))))
            if not trades:
                prog.done = True
            else:
                inside = [t for t in trades if start_ms <= _ts(t) < end_ms]
                if inside:
                    now = time.time_ns()
                    rows = []
                    for t in inside:
                        row = trade_row(t, envelope(now, exchange_id, symbol, conn_id, _num(t.get("id"))))
                        row["source"] = "rest"
                        rows.append(row)
                    _write_segment(root, exchange_id, symbol, rows)
                    prog.rows += len(rows)
                newest = _ts(trades[-1])
                if mode == "id":
                    next_id = _num(trades[-1].get("id")) + 1
                else:
                    at_newest = {str(t.get("id")) for t in trades if _ts(t) == newest}
                    seen = (seen | at_newest) if newest == since else at_newest
                    since = newest
                prog.at_ms = min(end_ms, newest)
                prog.done = newest >= end_ms
            prog.pages += 1
            doc = {"next_id": next_id, "since_ms": since, "seen_at_since": sorted(seen), "at_ms": prog.at_ms}
            # the page's segment is durable before the cursor moves past it
            _write_json_durably(
                state_path, {**doc, "rows": prog.rows, "pages": prog.pages, "done": prog.done}
            )
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
