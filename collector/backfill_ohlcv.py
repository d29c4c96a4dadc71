"""`daedalus backfill --ohlcv TIMEFRAME`: a venue's candles over REST into the raw `ohlcv` channel.

For a venue that serves no trade history that far back (Bybit: only its last 60 trades) the bars are
what can be had. Pages come through ccxt's `fetch_ohlcv` forward from `--start` by `since` (each venue's
own paging: Bybit `v5/market/kline?start`, Binance `klines?startTime`, ...), each written as a closed
raw segment (raw/ready/ccxt/ohlcv/segment_<first bar time>_bf<hash>.parquet, collector/schemas.py
OHLCV, `source = 'rest'`) before the cursor in `_state/backfill/` moves past it: resumable after
kill -9, idempotent, as the trades backfill (collector/backfill.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daedalus.collector.backfill import (
    Progress,
    load_markets_for,
    open_exchange,
    state_file,
    write_json_durably,
    write_segment,
)
from daedalus.collector.connection import envelope
from daedalus.collector.heal import polite
from daedalus.errors import ExchangeError

# bars a page may hold (each venue's documented maximum; 100 elsewhere)
PAGE_BARS = {"bybit": 1000, "binance": 1000, "okx": 100, "kraken": 720}


async def run_ohlcv_backfill(
    root: Path,
    exchange_id: str,
    symbol: str,
    timeframe: str,
    start_ms: int,
    end_ms: int,
    *,
    configure: Callable[[Any], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    page_deadline_s: float = 600.0,
) -> Progress:
    """Fetch the bars opening at start_ms <= time < end_ms into raw `ohlcv` segments."""
    ex = open_exchange(exchange_id, start_ms, end_ms)
    try:
        if configure is not None:
            configure(ex)
        if not ex.has.get("fetchOHLCV"):
            raise ExchangeError(f"backfill: {exchange_id} serves no OHLCV over REST (ccxt fetchOHLCV)")
        if timeframe not in (ex.timeframes or {}):
            known = ", ".join(list(ex.timeframes or {})[:12])
            raise ExchangeError(f"backfill: --ohlcv '{timeframe}' is not a {exchange_id} timeframe ({known})")
        step = ex.parse_timeframe(timeframe) * 1000
        limit = PAGE_BARS.get(exchange_id, 100)
        await load_markets_for(ex, exchange_id, symbol)
        path = state_file(root, exchange_id, f"{symbol}_{timeframe}_ohlcv", start_ms, end_ms)
        state = json.loads(path.read_text()) if path.exists() else {}
        since = state.get("since_ms", -(-start_ms // step) * step)  # the first bar opening at or after start
        prog = Progress(
            start_ms, end_ms, since, state.get("rows", 0), state.get("pages", 0), bool(state.get("done"))
        )
        if on_progress:
            on_progress(prog)
        conn_id = f"rest:backfill:{exchange_id}:{symbol}:ohlcv"
        while not prog.done:
            # a closed window [since, since + limit bars): a venue that answers newest first (Bybit)
            # then gives this window's bars, not the newest ones after `since`
            until = since + limit * step - 1
            page = await polite(
                ex,
                lambda since=since, until=until: ex.fetch_ohlcv(
                    symbol, timeframe, since, limit, {"until": until}
                ),
                time.monotonic() + page_deadline_s,
            )
            bars = sorted(b for b in page if b and b[0] is not None and since <= b[0] <= until)
            inside = [b for b in bars if b[0] < end_ms]
            if inside:
                now = time.time_ns()
                rows = [
                    {
                        **envelope(now, exchange_id, symbol, conn_id, int(b[0])),
                        "timestamp": int(b[0]) * 1_000_000,
                        "timeframe": timeframe,
                        "open": b[1],
                        "high": b[2],
                        "low": b[3],
                        "close": b[4],
                        "volume": b[5],
                        "source": "rest",
                    }
                    for b in inside
                ]
                write_segment(root, exchange_id, symbol, rows, channel="ohlcv", key=timeframe)
                prog.rows += len(rows)
            prog.pages += 1
            # after the last bar served; past the window when it had none (no trades in it, or
            # before the venue's history)
            since = int(bars[-1][0]) + step if bars else until + 1
            prog.at_ms = min(end_ms, since)
            prog.done = since >= end_ms
            doc = {"since_ms": since, "at_ms": prog.at_ms, "rows": prog.rows, "pages": prog.pages}
            write_json_durably(path, {**doc, "done": prog.done})
            if on_progress:
                on_progress(prog)
        return prog
    finally:
        await ex.close()
