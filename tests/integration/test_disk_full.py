"""A full disk stalls the collector's writer; it does not kill it, and nothing is lost unrecorded
(issue 17, case 4). The disk is real: a tmpfs of a few MB mounted for the test (root only; skipped
with the reason otherwise), filled with a file until the kernel answers ENOSPC.

Invariant checked after space returns and `land` ran: every record offered to the queue is either
in bronze (by trade id) or counted in an `overflow` event; the stall itself is an `error` event; the
segment abandoned mid-write is repaired; no `.repair-*.tmp` is left; repair on a full disk fails with
one clear StorageError and leaves the segment untouched.
"""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from daedalus.collector.queue import BoundedQueue, Record
from daedalus.collector.repair import repair_active
from daedalus.collector.schemas import SCHEMAS
from daedalus.collector.segment import StreamingParquetWriter
from daedalus.collector.sink import BronzeSink
from daedalus.config import Config, IngestionConfig, StorageConfig
from daedalus.errors import StorageError
from daedalus.land.landing import land

T0 = 1_723_075_200_000_000_000


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a size-limited tmpfs")
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the filesystem is full; returns it (delete it to free the space)."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        block = b"\0" * 65536
        try:
            while True:
                f.write(block)
        except OSError as e:
            assert e.errno == errno.ENOSPC
        try:  # the last partial blocks
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass
    return filler


def trade(i: int) -> Record:
    return Record(
        "ccxt",
        "trades",
        {
            "collected_at": (T0 + i * 1_000_000) // 1_000_000,
            "capture_ts": T0 + i * 1_000_000,
            "exchange": "binance",
            "symbol": "BTC/USDT",
            "conn_id": "c1",
            "seq": i,
            "timestamp": T0 + i * 1_000_000,
            "trade_id": str(i),
            "side": "buy",
            "price": 100.0 + i % 10,
            "amount": 0.5,
        },
    )


def test_full_disk_stalls_then_resumes_and_records_every_loss(small_disk: Path) -> None:
    ing = IngestionConfig(
        batch_size=50,
        flush_interval_seconds=0.2,
        queue_maxsize=300,
        backpressure_timeout_seconds=0.0,
        segment_max_mb=50,
    )
    sink = BronzeSink(small_disk, ing)
    queue = BoundedQueue(ing.queue_maxsize, ing.backpressure_timeout_seconds)
    offered = 0

    async def produce(n: int) -> None:
        nonlocal offered
        for _ in range(n):
            await queue.put(trade(offered))
            offered += 1
            if offered % 25 == 0:
                await asyncio.sleep(0.005)

    async def scenario() -> dict:
        stop = asyncio.Event()
        task = asyncio.create_task(sink.run(queue, stop))
        await produce(500)
        await asyncio.sleep(0.5)
        filler = fill(small_disk)
        await produce(2000)  # the writer stalls; the queue fills and counts its drops
        for _ in range(100):
            await asyncio.sleep(0.05)
            if sink.stall.active:
                break
        stalled = sink.stats()["disk_full"]
        assert not task.done(), "the sink died on a full disk"
        filler.unlink()
        for _ in range(1200):  # space is back: the next backoff retry (up to 30 s away) resumes writing
            await asyncio.sleep(0.05)
            if not sink.stall.active:
                break
        resumed = not sink.stall.active
        await produce(300)
        await asyncio.sleep(0.5)
        stop.set()
        await task
        return {"stalled": stalled, "resumed": resumed}

    out = asyncio.run(scenario())
    assert out["stalled"]["stalled"] and out["stalled"]["held_rows"] > 0, out
    assert out["resumed"]
    assert queue.dropped > 0  # the stall was long enough for the queue to overflow
    assert not list(small_disk.rglob(".repair-*.tmp"))

    report = land(Config(storage=StorageConfig(root=str(small_disk))))
    assert not report.errors and not report.quarantined
    trades = {
        r["trade_id"]
        for f in (small_disk / "bronze" / "trades").rglob("*.parquet")
        for r in pq.read_table(f, columns=["trade_id"]).to_pylist()
    }
    events = [
        r for f in (small_disk / "bronze" / "events").rglob("*.parquet") for r in pq.read_table(f).to_pylist()
    ]
    overflow = sum(e["count"] for e in events if e["event_type"] == "overflow")
    assert overflow == queue.dropped
    assert len(trades) + overflow == offered == queue.received  # nothing lost unrecorded
    stall_events = [e for e in events if e["event_type"] == "error" and "disk full" in e["detail"]]
    assert [(e["exchange"], e["symbol"]) for e in stall_events] == [("binance", None)]
    assert (
        stall_events[0]["count"] >= 1 and stall_events[0]["interval_start"] < stall_events[0]["interval_end"]
    )
    assert any(e["event_type"] == "segment_repair" for e in events)  # the abandoned segment, from its journal


def test_repair_on_a_full_disk_fails_cleanly_and_works_later(small_disk: Path) -> None:
    w = StreamingParquetWriter(small_disk, "ccxt", "trades", SCHEMAS["trades"])
    from daedalus.collector.quarantine import convert_rows

    for k in range(20):  # a segment left open by a crash: no footer, its journal complete
        w.write(convert_rows("trades", [trade(k * 100 + i).row for i in range(100)], SCHEMAS["trades"]).table)
    seg = w.abandon()
    assert seg is not None and seg.exists()
    filler = fill(small_disk)
    with pytest.raises(StorageError, match="disk full while repairing") as e:
        repair_active(small_disk)
    assert seg.name in str(e.value)
    assert not list(small_disk.rglob(".repair-*.tmp")) and seg.exists()
    deferred: list = []
    assert repair_active(small_disk, deferred=deferred) == [] and deferred == [("ccxt", "trades", seg)]
    filler.unlink()
    (result,) = repair_active(small_disk)
    assert result.rows == 2000 and result.ready is not None and result.ready.exists()
