"""Crash repair: SIGKILL mid-segment, then restart — nothing unreadable in ready/, nothing
overwritten, every flushed row readable, the repair recorded in events."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_segment import table_of  # tests/unit is on sys.path (rootdir import mode)

from daedalus.collector.ndjson_segment import NdjsonSegmentWriter, ndjson_to_table
from daedalus.collector.queue import BoundedQueue
from daedalus.collector.repair import repair_active
from daedalus.collector.schemas import SCHEMAS
from daedalus.collector.segment import StreamingParquetWriter
from daedalus.collector.sink import BronzeSink
from daedalus.config import IngestionConfig

CHILD = textwrap.dedent(
    """
    import sys
    import pyarrow as pa
    from daedalus.collector.schemas import SCHEMAS
    from daedalus.collector.segment import StreamingParquetWriter

    T0 = 1_723_075_200_000_000_000
    w = StreamingParquetWriter(sys.argv[1], "ccxt", "trades", SCHEMAS["trades"], segment_max_mb=0.03)
    i = 0
    while True:
        rows = [
            {"collected_at": T0 // 10**6 + k, "capture_ts": T0 + k, "exchange": "binance",
             "symbol": "BTC/USDT", "conn_id": "c", "seq": k, "timestamp": T0 + k, "trade_id": str(k),
             "side": "buy", "price": 1.0 + k, "amount": 0.1, "cost": None, "info_json": None}
            for k in range(i, i + 100)
        ]
        w.write(pa.Table.from_pylist(rows, schema=SCHEMAS["trades"]))
        i += 100
        print(i, w.rows_in_segment if w.active_path is not None else -1, flush=True)  # rows < i are flushed
    """
)


def digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def restart_sink(root: Path) -> BronzeSink:
    """A fresh sink on the same root: repairs on start, then stops at once (empty queue)."""

    async def scenario() -> BronzeSink:
        sink = BronzeSink(root, IngestionConfig(flush_interval_seconds=0.05))
        stop = asyncio.Event()
        stop.set()
        await sink.run(BoundedQueue(10, 0.1), stop)
        return sink

    return asyncio.run(scenario())


def test_sigkill_mid_segment_then_restart(tmp_path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True, bufsize=1
    )
    flushed = 0
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            flushed, in_open_segment = map(int, line.split())
            # several rotations behind us, and a segment freshly opened (the next rotation is flushes away)
            if flushed >= 4000 and 0 < in_open_segment <= 200:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    ready_dir = tmp_path / "raw" / "ready" / "ccxt" / "trades"
    active_dir = tmp_path / "raw" / "active" / "ccxt" / "trades"
    before = {p.name: digest(p) for p in ready_dir.glob("*.parquet")}
    assert len(before) >= 2
    torn = list(active_dir.glob("*.parquet"))
    assert len(torn) == 1, "the kill must leave one segment open"
    with pytest.raises(pa.ArrowInvalid):  # the open segment has no footer: unreadable as is
        pq.read_table(torn[0])

    sink = restart_sink(tmp_path)

    # Nothing overwritten; every file in ready/ readable; no footer-less file left anywhere in ready/.
    after = {p.name: p for p in ready_dir.glob("*.parquet")}
    assert all(digest(after[name]) == h for name, h in before.items())
    repaired = [n for n in after if n not in before]
    assert repaired == [torn[0].stem + "_repaired.parquet"]
    tables = [pq.read_table(p) for p in sorted(after.values())]
    seqs = sorted(s for t in tables for s in t.column("seq").to_pylist())
    # Every flushed row is there exactly once (the child may have flushed a few more after its last print).
    assert seqs[:flushed] == list(range(flushed))
    assert seqs == list(range(len(seqs))) and len(seqs) % 100 == 0
    assert all(t.schema.equals(SCHEMAS["trades"]) for t in tables)
    # The original is kept, not deleted; active/ is clean.
    quarantine = tmp_path / "raw" / "quarantine" / "ccxt" / "trades"
    assert (quarantine / torn[0].name).exists() and (quarantine / torn[0].with_suffix(".arrow").name).exists()
    assert not list(active_dir.iterdir())
    # The repair is an events row with the recovered count.
    events = pq.read_table(tmp_path / "raw" / "ready" / "ccxt" / "events").to_pylist()
    rep = [e for e in events if e["event_type"] == "segment_repair"]
    recovered = pq.read_metadata(after[repaired[0]]).num_rows
    assert len(rep) == 1 and rep[0]["count"] == recovered and rep[0]["exchange"] == "binance"
    assert rep[0]["channel"] == "trades" and torn[0].name in rep[0]["detail"]
    assert len(sink.repairs) == 1


def snapshot_open_segment(w: StreamingParquetWriter, dst_root: Path) -> Path:
    """Copy the open (footer-less) segment and its journal as a crash would leave them."""
    assert w.active_path is not None
    rel = w.active_path.relative_to(w.root)
    dst = dst_root / rel
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(w.active_path, dst)
    shutil.copy(w.active_path.with_suffix(".arrow"), dst.with_suffix(".arrow"))
    return dst


def test_torn_journal_tail_keeps_complete_batches(tmp_path) -> None:
    w = StreamingParquetWriter(tmp_path / "live", "ccxt", "orderbook", SCHEMAS["orderbook"])
    for b in range(3):
        w.write(table_of("orderbook", b * 10, 10))
    crashed = snapshot_open_segment(w, tmp_path / "lake")
    journal = crashed.with_suffix(".arrow")
    journal.write_bytes(journal.read_bytes()[:-50])  # the third batch was being written
    results = repair_active(tmp_path / "lake")
    assert len(results) == 1
    r = results[0]
    assert r.rows == 20 and r.ready is not None and r.unreadable_bytes > 0
    table = pq.read_table(r.ready)
    assert table.equals(table_of("orderbook", 0, 20))
    assert (tmp_path / "lake" / "raw" / "quarantine" / "ccxt" / "orderbook" / crashed.name).exists()


def test_closed_but_unpublished_segment_is_published(tmp_path) -> None:
    w = StreamingParquetWriter(tmp_path, "ccxt", "trades", SCHEMAS["trades"])
    w.write(table_of("trades", 0, 7))
    active = w.active_path
    assert active is not None
    w._finish()  # footer written and fsynced; the crash comes before the rename
    (r,) = repair_active(tmp_path)
    assert r.ready == tmp_path / "raw" / "ready" / "ccxt" / "trades" / active.name
    assert pq.read_table(r.ready).equals(table_of("trades", 0, 7)) and r.rows == 7
    assert not active.exists() and not active.with_suffix(".arrow").exists()


def test_leftover_journal_after_publish_is_dropped_silently(tmp_path) -> None:
    w = StreamingParquetWriter(tmp_path, "ccxt", "trades", SCHEMAS["trades"])
    w.write(table_of("trades", 0, 4))
    journal = w.active_path.with_suffix(".arrow")
    saved = journal.read_bytes()
    ready = w.close()
    journal.write_bytes(saved)  # the crash came between publish and journal removal
    assert repair_active(tmp_path) == []
    assert not journal.exists() and pq.read_metadata(ready).num_rows == 4


def test_ndjson_torn_tail(tmp_path) -> None:
    w = NdjsonSegmentWriter(tmp_path, "ccxt", "trades", SCHEMAS["trades"])
    w.write(table_of("trades", 0, 5))
    path = w.active_path
    with open(path, "ab") as f:
        f.write(b'{"collected_at": 1, "capture')  # torn line
    (r,) = repair_active(tmp_path)
    assert r.rows == 5 and r.unreadable_bytes == len(b'{"collected_at": 1, "capture')
    assert ndjson_to_table(r.ready.read_bytes(), SCHEMAS["trades"]).equals(table_of("trades", 0, 5))
    assert (tmp_path / "raw" / "quarantine" / "ccxt" / "trades" / path.name).exists()


SINK_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from daedalus.collector.queue import BoundedQueue, Record
    from daedalus.collector.sink import BronzeSink
    from daedalus.config import IngestionConfig

    T0 = 1_723_075_200_000_000_000

    async def main():
        q = BoundedQueue(5000, 5.0)
        sink = BronzeSink(sys.argv[1], IngestionConfig(batch_size=200, flush_interval_seconds=0.05,
                                                       segment_max_mb=0.03))
        stop = asyncio.Event()
        task = asyncio.create_task(sink.run(q, stop))

        async def report():
            while True:
                print(sink.stats()["channels"].get("ccxt/orderbook", {}).get("written", 0), flush=True)
                await asyncio.sleep(0.02)

        asyncio.create_task(report())
        k = 0
        while True:
            row = {"collected_at": T0 // 10**6 + k, "capture_ts": T0 + k, "exchange": "okx",
                   "symbol": "ETH/USDT", "conn_id": "c", "seq": k, "timestamp": T0 + k, "nonce": k,
                   "bids": [[100.0 - j, 1.0] for j in range(10)], "asks": [[101.0 + j, 1.0] for j in range(10)]}
            await q.put(Record("ccxt", "orderbook", row))
            k += 1
            if k % 100 == 0:
                await asyncio.sleep(0.001)

    asyncio.run(main())
    """
)


def test_sigkill_of_a_running_sink_then_restart(tmp_path) -> None:
    """The same through the real queue + sink: whatever the sink reported written survives a kill -9."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SINK_CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True, bufsize=1
    )
    written = 0
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            written = int(line)
            if written >= 6000:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    ready_dir = tmp_path / "raw" / "ready" / "ccxt" / "orderbook"
    before = {p.name: digest(p) for p in ready_dir.glob("*.parquet")}
    open_segments = list((tmp_path / "raw" / "active" / "ccxt" / "orderbook").glob("*.parquet"))
    restart_sink(tmp_path)
    after = sorted(ready_dir.glob("*.parquet"))
    assert all(digest(ready_dir / name) == h for name, h in before.items())
    seqs = sorted(s for p in after for s in pq.read_table(p, columns=["seq"]).column("seq").to_pylist())
    assert len(seqs) >= written  # nothing the sink had reported as written is lost
    assert seqs == list(range(len(seqs)))  # a gap-free prefix, no duplicates
    assert not list((tmp_path / "raw" / "active").rglob("segment_*"))
    # One repair event per segment the kill left open (usually one; none if it struck between segments).
    events_dir = tmp_path / "raw" / "ready" / "ccxt" / "events"
    events = (
        pq.ParquetDataset(sorted(events_dir.glob("*.parquet"))).read().to_pylist() if open_segments else []
    )
    assert [e["exchange"] for e in events if e["event_type"] == "segment_repair"] == ["okx"] * len(
        open_segments
    )
