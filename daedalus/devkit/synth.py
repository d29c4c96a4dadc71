"""Deterministic synthetic market data, written as bronze exactly as `daedalus land` writes it.

Used by tests (incremental = full, structural features at scale) and by the build benchmark
(issue 4: a symbol-day of 864,000 snapshots at 100 ms, 20 levels a side). Everything is generated
with numpy in hourly chunks and written with pyarrow, so a symbol-day takes seconds and memory stays
bounded by one hour of one symbol.

The market: a random-walk best bid in exchange ticks, a spread of mostly one tick, levels spaced
mostly one tick apart (sometimes two: a price level absent), positive sizes, and now and then a side
shorter than `levels`. Trades hit the touch of the current book with an aggressor side and strictly
increasing ids. At each of `gaps_per_day` gaps the connection drops: no snapshots, trades or ticker
rows for the stretch, a `disconnect` row in `events` at its start and a `connect` row at its end,
and a new `conn_id` (whose `seq` restarts) afterwards. Some gaps last longer than the default
staleness limit (300 s), so both kinds of break of docs/features.md occur.

With `book_updates=True` the book is a deep one (daedalus/devkit/synth_book.py, `book_depth` levels a side)
that evolves by 10–40 changed levels per snapshot instant, and bronze also gets `book_updates` the way
the collector writes them: a `snapshot` (the whole book) as the first row of each connection, a
`delta` (the changed levels) per later instant, and a `checkpoint` (the whole book) at every UTC hour
boundary the connection is up, stamped with the exchange time of the last update it includes (so it
lands in that update's date partition). The `orderbook` rows are then the top `levels` of that same
book, so a lake built from either channel serves the same top levels. Book-update `seq` is twice the
message's seq (a checkpoint takes the odd number after its last update: it is no message of its own).
Update ids count the series' updates (first = last per delta).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from daedalus.collector.schemas import SCHEMAS
from daedalus.devkit.synth_day import SeriesState, SymbolDay, start_price_ticks

NS = 1_000_000_000
MS = 1_000_000
TICK_DECIMALS = 2  # prices are multiples of 0.01, built as integer ticks / 100 like a decimal parse


@dataclass
class SynthSummary:
    root: str
    exchange: str
    symbols: list[str]
    dates: list[str]
    rows: dict[str, int]
    files: list[str]
    gaps: list[tuple[str, str, str]]
    """(symbol, gap start ISO, gap end ISO) for every gap generated."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "exchange": self.exchange,
            "symbols": self.symbols,
            "dates": self.dates,
            "rows": self.rows,
            "files": len(self.files),
            "gaps": self.gaps,
        }


class _Generator:
    def __init__(
        self,
        root: Path,
        exchange: str,
        snapshot_ms: int,
        levels: int,
        trades_per_sec: float,
        gaps_per_day: int,
        hours: float,
        ticker_ms: int = 1000,
        book_updates: bool = False,
        book_depth: int = 1000,
    ) -> None:
        self.root = root
        self.book_updates = book_updates
        self.book_depth = book_depth
        self.ticker_ms = ticker_ms
        self.exchange = exchange
        self.snapshot_ms = snapshot_ms
        self.levels = levels
        self.trades_per_sec = trades_per_sec
        self.gaps_per_day = gaps_per_day
        self.hours = hours
        self.rows: dict[str, int] = {c: 0 for c in SCHEMAS}
        self.files: list[str] = []
        self.gaps: list[tuple[str, str, str]] = []

    def write(self, channel: str, day: dt.date, name: str, cols: dict[str, pa.Array]) -> None:
        schema = SCHEMAS[channel]
        n = len(next(iter(cols.values())))
        arrays = [cols[f.name] if f.name in cols else pa.nulls(n, f.type) for f in schema]
        table = pa.Table.from_arrays(
            [a.cast(f.type) for a, f in zip(arrays, schema, strict=True)], schema=schema
        )
        d = self.root / "bronze" / channel / f"exchange={self.exchange}" / f"date={day.isoformat()}"
        d.mkdir(parents=True, exist_ok=True)
        path = d / name
        pq.write_table(table, path, compression="zstd")
        self.rows[channel] += n
        self.files.append(str(path))


def generate(
    root: str | Path,
    symbols: list[str] | None = None,
    start: str = "2024-01-01",
    days: int = 1,
    snapshot_ms: int = 100,
    levels: int = 20,
    trades_per_sec: float = 10.0,
    gaps_per_day: int = 3,
    hours: float | None = None,
    exchange: str = "binance",
    seed: int = 7,
    ticker_ms: int = 1000,
    book_updates: bool = False,
    book_depth: int = 1000,
) -> SynthSummary:
    """Write `days` UTC days (each `hours` long, default 24) of bronze for `symbols` under `root`;
    with `book_updates`, also the `book_updates` channel of a `book_depth`-level book (module doc).

    Deterministic: the same arguments write the same rows. Returns what was written.
    """
    symbols = list(symbols or ["BTC/USDT"])
    if snapshot_ms <= 0 or levels <= 0 or days <= 0 or ticker_ms <= 0:
        raise ValueError("snapshot_ms, ticker_ms, levels and days must be positive")
    span = 24.0 if hours is None else float(hours)
    if not 0 < span <= 24:
        raise ValueError("hours must be in (0, 24]")
    gen = _Generator(
        Path(root),
        exchange,
        snapshot_ms,
        levels,
        trades_per_sec,
        gaps_per_day,
        span,
        ticker_ms,
        book_updates,
        book_depth,
    )
    first = dt.date.fromisoformat(start)
    dates = [first + dt.timedelta(days=i) for i in range(days)]
    for si, symbol in enumerate(symbols):
        rng = np.random.default_rng([seed, si])
        book_rng = np.random.default_rng(
            [seed, si, 1]
        )  # its own stream: the other channels stay as without it
        state = SeriesState(bid_ticks=start_price_ticks(symbol))
        conn_base = 0
        for day in dates:
            sd = SymbolDay(gen, symbol, day, state, rng, conn_base, book_rng)
            sd.run()
            # Each day starts on a fresh connection (a real collector reconnects within 24 h).
            conn_base += len(sd.gaps) + 1
    return SynthSummary(
        str(root), exchange, symbols, [d.isoformat() for d in dates], gen.rows, gen.files, gen.gaps
    )


if __name__ == "__main__":  # pragma: no cover - manual use: python -m daedalus.devkit.synth ROOT
    import sys

    print(json.dumps(generate(sys.argv[1]).as_dict(), indent=1))
