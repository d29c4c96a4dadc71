"""BoundedQueue: backpressure first, then counted drops reported as overflow events — exactly."""

from __future__ import annotations

import asyncio
import time

import pyarrow.dataset as ds
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from daedalus.collector.queue import BoundedQueue, Record
from daedalus.collector.sink import BronzeSink
from daedalus.config import IngestionConfig


def trade(i: int, exchange: str = "binance", symbol: str = "BTC/USDT", capture: int | None = None) -> dict:
    return {
        "collected_at": 1_723_075_200_000 + i,
        "capture_ts": capture if capture is not None else 1_723_075_200_000_000_000 + i * 1000,
        "exchange": exchange,
        "symbol": symbol,
        "conn_id": "c1",
        "seq": i,
        "timestamp": 1_723_075_200_000_000_000 + i * 1000,
        "trade_id": str(i),
        "side": "buy" if i % 2 else "sell",
        "price": 60_000.0 + i,
        "amount": 0.001 * (i % 7 + 1),
        "cost": None,
        "info_json": None,
    }


def test_drop_after_timeout_then_overflow_event_when_room_frees() -> None:
    async def scenario() -> None:
        q = BoundedQueue(maxsize=2, backpressure_timeout=0.05)
        assert await q.put(Record("ccxt", "trades", trade(0)))
        assert await q.put(Record("ccxt", "trades", trade(1)))
        t0 = time.monotonic()
        assert not await q.put(Record("ccxt", "trades", trade(2, capture=500)))
        assert time.monotonic() - t0 >= 0.04  # it waited (backpressure) before dropping
        assert not await q.put(Record("ccxt", "trades", trade(3, capture=900)))
        assert not await q.put(Record("ccxt", "trades", trade(4, exchange="okx", capture=700)))
        stats = q.stats()
        assert stats["received"] == 5 and stats["dropped"] == 3 and stats["depth"] == 2
        assert stats["streams"]["ccxt/trades/binance/BTC/USDT"]["dropped"] == 2
        assert stats["streams"]["ccxt/trades/okx/BTC/USDT"]["dropped"] == 1
        first = await q.get()  # frees a slot: the drops are reported right away, ahead of data
        assert first.channel == "trades" and first.row["seq"] == 0
        overflow = [await q.get(), await q.get()]
        by_exchange = {r.row["exchange"]: r for r in overflow}
        binance = by_exchange["binance"]
        assert binance.channel == "events" and binance.source == "ccxt"
        assert binance.row["event_type"] == "overflow" and binance.row["channel"] == "trades"
        assert binance.row["count"] == 2
        assert (binance.row["interval_start"], binance.row["interval_end"]) == (500, 900)
        assert by_exchange["okx"].row["count"] == 1
        assert (await q.get()).row["seq"] == 1
        assert q.empty()

    asyncio.run(scenario())


def test_backpressure_waits_and_succeeds_when_consumer_frees_room() -> None:
    async def scenario() -> None:
        q = BoundedQueue(maxsize=1, backpressure_timeout=1.0)
        await q.put(Record("ccxt", "trades", trade(0)))

        async def consume_later() -> Record:
            await asyncio.sleep(0.05)
            return await q.get()

        consumer = asyncio.create_task(consume_later())
        assert await q.put(Record("ccxt", "trades", trade(1)))
        assert (await consumer).row["seq"] == 0
        assert q.stats()["dropped"] == 0
        assert (await q.get()).row["seq"] == 1

    asyncio.run(scenario())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["put_a", "put_b", "get"]), min_size=1, max_size=80), st.integers(1, 4))
def test_accounting_is_exact_for_any_interleaving(ops: list[str], maxsize: int) -> None:
    """received = data records taken out + still queued + sum(count of overflow events)."""

    async def scenario() -> None:
        q = BoundedQueue(maxsize=maxsize, backpressure_timeout=0)
        taken = overflow = 0
        i = 0

        def take(r: Record) -> None:
            nonlocal taken, overflow
            if r.channel == "events":
                overflow += r.row["count"]
            else:
                taken += 1

        for op in ops:
            if op == "get":
                if not q.empty():
                    take(await q.get())
            else:
                i += 1
                await q.put(Record("ccxt", "trades", trade(i, exchange=op[-1])))
        while True:
            try:
                take(q.get_nowait())
            except asyncio.QueueEmpty:
                break
        assert q.received == i == taken + overflow
        assert overflow == q.dropped

    asyncio.run(scenario())


def test_burst_faster_than_writer_is_accounted_exactly(tmp_path) -> None:
    """A real sink behind a tiny queue with no patience: received = written + Σ overflow counts."""
    n = 20_000

    async def scenario() -> BoundedQueue:
        q = BoundedQueue(maxsize=64, backpressure_timeout=0)
        sink = BronzeSink(tmp_path, IngestionConfig(batch_size=256, flush_interval_seconds=0.2))
        stop = asyncio.Event()
        task = asyncio.create_task(sink.run(q, stop))
        await asyncio.sleep(0.05)
        for i in range(n):
            await q.put(Record("ccxt", "trades", trade(i, symbol=("BTC/USDT", "ETH/USDT")[i % 2])))
            if i % 500 == 0:
                await asyncio.sleep(0)  # the writer gets the loop now and then, not enough to keep up
        stop.set()
        await task
        return q

    q = asyncio.run(scenario())
    written = ds.dataset(tmp_path / "raw" / "ready" / "ccxt" / "trades").count_rows()
    events = pq.read_table(tmp_path / "raw" / "ready" / "ccxt" / "events").to_pylist()
    overflow = [e for e in events if e["event_type"] == "overflow"]
    dropped_in_events = sum(e["count"] for e in overflow)
    assert q.dropped > 0, "the burst must actually overflow the queue for this test to mean anything"
    assert q.received == n
    assert written + dropped_in_events == n
    assert dropped_in_events == q.dropped
    assert {e["symbol"] for e in overflow} <= {"BTC/USDT", "ETH/USDT"}
    assert all(e["interval_start"] <= e["interval_end"] for e in overflow)


def book(i: int, levels: int = 20) -> dict:
    row = trade(i)
    row["bids"] = [[60_000.0 - k, 0.5 + k] for k in range(levels)]
    row["asks"] = [[60_001.0 + k, 0.5 + k] for k in range(levels)]
    return row


def test_approx_bytes_follows_the_real_size_of_a_book() -> None:
    import tracemalloc

    from daedalus.collector.queue import approx_bytes

    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    rows = [book(i) for i in range(2000)]
    real = (tracemalloc.get_traced_memory()[0] - before) / len(rows)
    tracemalloc.stop()
    est = approx_bytes(rows[0])
    assert 0.7 * real < est < 1.5 * real, (est, real)
    assert approx_bytes(book(0, 40)) > 1.8 * approx_bytes(book(0, 20)) * 0.9


def test_byte_bound_pushes_back_and_drops_like_the_record_bound() -> None:
    async def scenario() -> None:
        from daedalus.collector.queue import approx_bytes

        size = approx_bytes(book(0))
        q = BoundedQueue(maxsize=10_000, backpressure_timeout=0.05, max_bytes=5 * size + size // 2)
        for i in range(5):
            assert await q.put(Record("ccxt", "orderbook", book(i)))
        assert not await q.put(Record("ccxt", "orderbook", book(5)))  # 5.5 books of budget: full
        five = sum(approx_bytes(book(i)) for i in range(5))
        assert q.bytes == five and q.dropped == 1 and q.peak_bytes == five
        waiter = asyncio.ensure_future(q.put(Record("ccxt", "orderbook", book(6))))
        await asyncio.sleep(0.01)
        assert not waiter.done()  # pushed back, not dropped yet
        event = await q.get()  # the drop is reported first (outside the budget)
        assert event.channel == "events" and event.row["event_type"] == "overflow" and event.row["count"] == 1
        assert not waiter.done()
        assert (await q.get()).row["seq"] == 0
        assert await waiter  # the freed bytes let it in
        got = [(await q.get()) for _ in range(5)]
        assert [r.row["seq"] for r in got] == [1, 2, 3, 4, 6] and q.bytes == 0
        big = BoundedQueue(maxsize=10, backpressure_timeout=0.0, max_bytes=10)
        assert await big.put(Record("ccxt", "orderbook", book(0)))  # larger than the budget, queue empty
        assert not await big.put(Record("ccxt", "orderbook", book(1)))

    asyncio.run(scenario())


def test_approx_bytes_counts_a_full_book_checkpoint_by_its_levels() -> None:
    """book_updates rows carry {price, size} dicts; a checkpoint of a 2,000-level book must weigh on
    the queue's byte bound as what it holds, not as one small row."""
    import tracemalloc

    from daedalus.collector.book_log import update_row
    from daedalus.collector.queue import approx_bytes

    def checkpoint(i: int, levels: int) -> dict:
        bids = [{"price": 60_000.0 - k - i * 1e-3, "size": 0.5 + k} for k in range(levels)]
        asks = [{"price": 60_001.0 + k + i * 1e-3, "size": 0.5 + k} for k in range(levels)]
        return update_row(trade(i), "checkpoint", bids, asks, 1, None, 7, None)

    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    rows = [checkpoint(i, 1000) for i in range(20)]
    real = (tracemalloc.get_traced_memory()[0] - before) / len(rows)
    tracemalloc.stop()
    est = approx_bytes(rows[0])
    assert 0.7 * real < est < 1.5 * real, (est, real)
    assert est > 50 * approx_bytes(checkpoint(0, 5))
