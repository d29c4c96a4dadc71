"""Bronze bytes per symbol-day: the old default channels (ticker, trades, orderbook, book_updates)
against the new default (ticker, trades, book_updates: one book channel; issue 28).

Both shared real captures are replayed through the real collector (ccxt.pro against the fake Binance
servers) once per channel set and landed:
- tests/data/binance-spot-btcusdt-20240808.jsonl.gz as `binance` BTC/USDT,
- tests/data/binance-coinm-btcusdperp-20240808.jsonl.gz as `binancecoinm` BTC/USD:BTC.
Landed bytes are extrapolated to a day by the span of exchange time the delta rows cover:
  channel/day = landed bytes × (24 h / span), except book_updates, whose load and checkpoints are not
  per-message: delta rows' bytes × (24 h / span) + 24 × one checkpoint's bytes (the day's hourly
  checkpoints; benchmarks/book_bytes.py does the same for book_updates alone).

    .venv/bin/python benchmarks/book_channels_bytes.py
"""

from __future__ import annotations

import asyncio
import io
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from daedalus.collector.encoding import parquet_options

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
CAPTURES = {
    "binance spot BTC/USDT": (DATA / "binance-spot-btcusdt-20240808.jsonl.gz", "binance", "BTC/USDT"),
    "binance COIN-M BTC/USD:BTC": (
        DATA / "binance-coinm-btcusdperp-20240808.jsonl.gz",
        "binancecoinm",
        "BTC/USD:BTC",
    ),
}
OLD_DEFAULT = ["ticker", "trades", "orderbook", "book_updates"]
DAY_NS = 86_400 * 10**9


def collect(capture_path: Path, exchange: str, symbol: str, channels: list[str], root: Path) -> None:
    """Replay the capture through the real collector with `channels` and land it."""
    from daedalus.collector.pipeline import run_collect
    from daedalus.config import load_config
    from daedalus.devkit.simulator.binance import FakeBinance
    from daedalus.devkit.simulator.binance_futures import FakeBinanceFutures
    from daedalus.devkit.simulator.replay import load_capture
    from daedalus.land.landing import land

    capture = load_capture(capture_path)
    config = load_config(
        None,
        {
            "storage.root": str(root),
            "ingestion.exchanges": [exchange],
            "ingestion.symbols": [symbol],
            "ingestion.channels": channels,
            "ingestion.stale_after_seconds": 120.0,
        },
        environ={},
    )
    snap = capture.snapshot
    futures = ":" in symbol
    applied = sum(
        1
        for d in capture.depth_updates()
        if (d["u"] >= snap["lastUpdateId"] if futures else d["u"] > snap["lastUpdateId"])
    )

    async def main() -> None:
        server = await (FakeBinanceFutures("inverse") if futures else FakeBinance()).start()
        server.books[capture.symbol_id] = server.new_book(snap)
        stop = asyncio.Event()
        started: asyncio.Future = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(
            run_collect(
                config,
                stop,
                configure={exchange: lambda ex: server.configure(ex, [symbol])},
                on_started=started.set_result,
            )
        )
        emitter = await started
        try:
            await server.wait_subscribed([f"{capture.symbol_id.lower()}@depth@100ms"])
            while emitter.counters.get(("ccxt", "book_updates")) is None:
                await asyncio.sleep(0.05)
            await server.replay(capture, speed=0)
            while emitter.counters[("ccxt", "book_updates")].received < applied + 3:  # + load, checkpoints
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
        finally:
            stop.set()
            await task
            await server.stop()

    asyncio.run(main())
    report = land(config)
    if report.errors:
        raise SystemExit(f"land failed: {report.errors}")


def _written(table: pa.Table) -> int:
    buf = io.BytesIO()
    pq.write_table(table, buf, **parquet_options("book_updates"))
    return buf.tell()


def per_day(root: Path) -> dict[str, float]:
    """Bytes per symbol-day of each landed bronze channel (events left out: a handful of rows)."""
    files = {c: sorted((root / "bronze" / c).glob("exchange=*/date=*/*.parquet")) for c in OLD_DEFAULT}
    updates = pa.concat_tables([pq.read_table(f) for f in files["book_updates"]])
    deltas = updates.filter(pc.equal(updates.column("kind"), "delta"))
    checkpoints = updates.filter(pc.equal(updates.column("kind"), "checkpoint"))
    ts = deltas.column("timestamp").cast(pa.int64())
    scale = DAY_NS / (pc.max(ts).as_py() - pc.min(ts).as_py())
    checkpoint = max(_written(checkpoints.slice(i, 1)) for i in range(checkpoints.num_rows))
    out = {c: sum(f.stat().st_size for f in fs) * scale for c, fs in files.items() if c != "book_updates"}
    out["book_updates"] = _written(deltas) * scale + 24 * checkpoint
    return out


def main() -> None:
    from daedalus.config import IngestionConfig

    new_default = IngestionConfig().channels
    print(f"old default: {', '.join(OLD_DEFAULT)}\nnew default: {', '.join(new_default)}\n")
    print(f"{'capture':28} {'channels':12} " + " ".join(f"{c:>13}" for c in OLD_DEFAULT) + f" {'total':>10}")
    for name, (path, exchange, symbol) in CAPTURES.items():
        for label, channels in (("old default", OLD_DEFAULT), ("new default", new_default)):
            with tempfile.TemporaryDirectory() as tmp:
                collect(path, exchange, symbol, channels, Path(tmp))
                day = per_day(Path(tmp))
            cells = " ".join(f"{day.get(c, 0) / 1e6:10.2f} MB" for c in OLD_DEFAULT)
            print(f"{name:28} {label:12} {cells} {sum(day.values()) / 1e6:7.2f} MB", flush=True)


if __name__ == "__main__":
    main()
