"""Throughput of BoundedQueue + BronzeSink alone (no exchange): rows/s from put() to closed segments.

    python benchmarks/bench_sink.py [--rows 200000] [--channel orderbook|trades] [--levels 20]
        [--queue-maxsize N]

Prints rows/s, peak RSS and the exact accounting (received = written + dropped-in-events).
Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
from pathlib import Path

import pyarrow.dataset as ds

from daedalus.collector.queue import BoundedQueue, Record
from daedalus.collector.sink import BronzeSink
from daedalus.config import IngestionConfig

T0 = 1_723_075_200_000_000_000


def row(channel: str, i: int, levels: int) -> dict:
    base = {
        "collected_at": T0 // 10**6 + i,
        "capture_ts": T0 + i * 1000,
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "conn_id": "c1",
        "seq": i,
        "timestamp": T0 + i * 1000,
    }
    if channel == "orderbook":
        mid = 60_000.0 + (i % 100)
        base["nonce"] = i
        base["bids"] = [{"price": mid - k * 0.1, "size": 1.0 + k} for k in range(levels)]
        base["asks"] = [{"price": mid + 0.1 + k * 0.1, "size": 1.0 + k} for k in range(levels)]
    else:
        base.update(
            trade_id=str(i), side="buy", price=60_000.0 + i % 100, amount=0.01, cost=600.0, info_json=None
        )
    return base


async def main(rows: int, channel: str, levels: int, root: Path, queue_maxsize: int) -> None:
    cfg = IngestionConfig(queue_maxsize=queue_maxsize)  # else defaults: batch 1000, 1 s backpressure, zstd 3
    queue = BoundedQueue(cfg.queue_maxsize, cfg.backpressure_timeout_seconds)
    sink = BronzeSink(root, cfg)
    stop = asyncio.Event()
    task = asyncio.create_task(sink.run(queue, stop))
    # Rows are built on the fly (as a collector would), so their building counts in the time.
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    for i in range(rows):
        await queue.put(Record("ccxt", channel, row(channel, i, levels)))
        if i % 1000 == 0:
            await asyncio.sleep(0)  # collectors yield to the loop between socket reads
    stop.set()
    await task
    elapsed = time.perf_counter() - started
    written = ds.dataset(root / "raw" / "ready" / "ccxt" / channel).count_rows()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{channel} ({levels} levels/side): {rows} rows in {elapsed:.2f}s = {rows / elapsed:,.0f} rows/s; "
        f"written {written}, dropped {queue.dropped} (received {queue.received}); "
        f"peak RSS {peak_mb:.0f} MB (before the run {rss_before:.0f} MB)"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--channel", choices=["orderbook", "trades"], default="orderbook")
    ap.add_argument("--levels", type=int, default=20)
    ap.add_argument("--queue-maxsize", type=int, default=50_000, help="records (memory bound of the queue)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        asyncio.run(main(a.rows, a.channel, a.levels, Path(d), a.queue_maxsize))
