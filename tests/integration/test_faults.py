"""Fault injection against the fake exchanges: what bronze and `events` hold afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from fake_exchange import make_config, rows, run_pipeline, wait_until

from daedalus.collector.connection import Emitter
from daedalus.devkit.simulator.binance import FakeBinance
from daedalus.devkit.simulator.market import SimulatedMarket

pytestmark = pytest.mark.network
SYMBOLS = ["BTC/USDT", "ETH/USDT"]
STREAMS = ["btcusdt@trade", "btcusdt@depth@100ms", "ethusdt@trade", "ethusdt@depth@100ms"]


def _received(emitter: Emitter, channel: str) -> int:
    c = emitter.counters.get(("ccxt", channel))
    return 0 if c is None else c.received


def run_binance(
    root: Path,
    fault: Callable[[FakeBinance, Emitter], Awaitable[None]],
    channels: tuple[str, ...] = ("trades", "orderbook"),
    interval: float = 0.005,
    before_start: Callable[[FakeBinance], None] | None = None,
    **ingestion: Any,
) -> tuple[FakeBinance, dict]:
    """The real pipeline against a fake Binance publishing the simulated market; `fault` runs once
    data flows, then the market keeps going until `fault` returns."""
    market = SimulatedMarket({"BTC/USDT": 60_000.0, "ETH/USDT": 3_000.0}, seed=11)
    config = make_config(root, exchanges=["binance"], symbols=SYMBOLS, channels=list(channels), **ingestion)

    async def main() -> tuple[FakeBinance, dict]:
        server = await FakeBinance().start()
        server.load_market(market)
        if before_start is not None:
            before_start(server)
        stop_market = asyncio.Event()
        feeder: asyncio.Task | None = None
        try:

            async def scenario(emitter: Emitter) -> None:
                nonlocal feeder
                wanted = [
                    s
                    for s in STREAMS
                    if ("@trade" in s and "trades" in channels) or ("@depth" in s and "orderbook" in channels)
                ]
                await server.wait_subscribed(wanted)
                feeder = asyncio.ensure_future(server.run_market(market, interval=interval, stop=stop_market))
                await wait_until(lambda: _received(emitter, channels[-1]) > 20, 10, "first data")
                await fault(server, emitter)
                stop_market.set()
                await feeder

            summary = await run_pipeline(
                config, scenario, configure={"binance": lambda ex: server.configure(ex, SYMBOLS)}
            )
            return server, summary
        finally:
            stop_market.set()
            await server.stop()

    return asyncio.run(main())


def _events(root: Path, kind: str | None = None) -> list[dict]:
    ev = rows(root, "ccxt", "events")
    return [e for e in ev if kind is None or e["event_type"] == kind]


async def _more_data(emitter: Emitter, channel: str, n: int = 30, timeout: float = 10) -> None:
    start = _received(emitter, channel)
    await wait_until(
        lambda: _received(emitter, channel) >= start + n, timeout, f"{n} more {channel} messages"
    )


@pytest.mark.parametrize("code", [1006, 1001])
def test_server_close_reconnects_and_records_disconnect(tmp_path: Path, code: int) -> None:
    async def fault(server: FakeBinance, emitter: Emitter) -> None:
        before = server.connections_total
        # one connection per feed: trades of both symbols, and one order book per symbol
        assert await server.drop_connections(code) == 3
        await wait_until(lambda: server.connections_total >= before + 3, 10, "reconnects")
        await _more_data(emitter, "trades")

    server, summary = run_binance(tmp_path, fault)
    disconnects = _events(tmp_path, "disconnect")
    closed = [e for e in disconnects if e["close_code"] == code]
    # three connections dropped; each event names every series its connection carried
    assert len({e["conn_id"] for e in closed}) == 3, disconnects
    assert sorted((e["symbol"], e["channel"]) for e in closed) == sorted(
        (s, c) for s in SYMBOLS for c in ("orderbook", "trades")
    )
    assert len(_events(tmp_path, "connect")) == 6
    trades = rows(tmp_path, "ccxt", "trades")
    conn_ids = {t["conn_id"] for t in trades}
    assert len(conn_ids) >= 2  # data before and after the reconnect, on different connections
    assert len({t["trade_id"] for t in trades}) == len(trades)
    assert summary["collector"]["dropped"] == 0


def test_half_open_socket_goes_stale_and_reconnects(tmp_path: Path) -> None:
    async def fault(server: FakeBinance, emitter: Emitter) -> None:
        before = server.connections_total
        assert server.half_open() == 3  # sockets stay open, nothing more is sent on them
        await wait_until(
            lambda: server.connections_total >= before + 3, 10, "reconnect after the stale deadline"
        )
        await _more_data(emitter, "orderbook")

    server, _ = run_binance(tmp_path, fault, stale_after_seconds=1.0)
    stale = _events(tmp_path, "stale")
    assert len(stale) == 3 and all("no data on" in e["detail"] for e in stale)
    # every feed's stale row precedes its reconnect, and new data arrives on new connections
    books = rows(tmp_path, "ccxt", "orderbook")
    assert len({b["conn_id"] for b in books if b["symbol"] == "BTC/USDT"}) == 2


def test_skipped_depth_range_resyncs_that_symbol_only(tmp_path: Path) -> None:
    async def fault(server: FakeBinance, emitter: Emitter) -> None:
        server.skip_depth("BTCUSDT", 3)
        await wait_until(lambda: server.depth_requests.get("BTCUSDT", 0) == 2, 10, "a BTC resync snapshot")
        await _more_data(emitter, "orderbook", 60)

    server, _ = run_binance(tmp_path, fault)
    gaps, resyncs = _events(tmp_path, "gap"), _events(tmp_path, "resync")
    assert [(e["symbol"], e["channel"]) for e in gaps] == [("BTC/USDT", "orderbook")]
    assert [(e["symbol"], e["channel"]) for e in resyncs] == [("BTC/USDT", "orderbook")]
    assert server.depth_requests == {"BTCUSDT": 2, "ETHUSDT": 1}  # only BTC fetched a new snapshot
    # no reconnect: every disconnect row is the final stop (one per series each feed carried)
    assert all(e["close_code"] == 1000 for e in _events(tmp_path, "disconnect"))
    books = rows(tmp_path, "ccxt", "orderbook")
    btc = [b for b in books if b["symbol"] == "BTC/USDT"]
    eth = [b for b in books if b["symbol"] == "ETH/USDT"]
    assert len({b["conn_id"] for b in btc}) == len({b["conn_id"] for b in eth}) == 1
    gap_ts = gaps[0]["capture_ts"]
    after = [b for b in btc if b["capture_ts"] > gap_ts]
    assert len(after) > 10  # the book resumed after the resync
    # across the gap the nonce jumps by more than one diff; elsewhere rows are consecutive diffs
    nonces = [b["nonce"] for b in btc]
    assert nonces == sorted(nonces)


def test_malformed_frame_is_recorded_and_collection_continues(tmp_path: Path) -> None:
    async def fault(server: FakeBinance, emitter: Emitter) -> None:
        await server.send_raw('{"stream":"btcusdt@trade","data":{"e":"trade",', stream_prefix="btcusdt@trade")
        await _more_data(emitter, "trades")

    server, _ = run_binance(tmp_path, fault)
    errors = _events(tmp_path, "error")
    assert len(errors) == 1 and "malformed JSON frame" in errors[0]["detail"]
    assert server.connections_total == 3  # no reconnect: the same socket kept delivering
    trades = rows(tmp_path, "ccxt", "trades")
    assert len({t["conn_id"] for t in trades}) == 1
    assert any(t["capture_ts"] > errors[0]["capture_ts"] for t in trades)


def test_rest_429_retry_after_is_honoured(tmp_path: Path) -> None:
    async def fault(server: FakeBinance, emitter: Emitter) -> None:
        await wait_until(lambda: server.depth_requests.get("BTCUSDT", 0) >= 2, 10, "the retried snapshot")
        await _more_data(emitter, "orderbook")

    server, _ = run_binance(
        tmp_path,
        fault,
        channels=("trades", "orderbook"),
        before_start=lambda s: s.rate_limit_rest(1, retry_after=1),
    )
    limited = _events(tmp_path, "rate_limited")
    assert len(limited) == 1 and "429" in limited[0]["detail"]
    times = [t for sym, t in server.depth_request_times if sym == limited[0]["symbol"].replace("/", "")]
    assert times[1] - times[0] >= 1.0  # waited at least Retry-After before asking again


def test_server_shutdown_notice_reconnects(tmp_path: Path) -> None:
    async def fault(server: FakeBinance, emitter: Emitter) -> None:
        before = server.connections_total
        await server.server_shutdown()
        await wait_until(lambda: server.connections_total >= before + 3, 10, "reconnects")
        await _more_data(emitter, "trades")

    run_binance(tmp_path, fault)
    notices = [e for e in _events(tmp_path, "notice") if "serverShutdown" in e["detail"]]
    reconnects = [e for e in _events(tmp_path, "reconnect") if "serverShutdown" in e["detail"]]
    assert notices  # the notice itself breaks nothing: data flows until each feed reconnects
    # each feed's reconnect names every series it carried, never a NULL symbol (docs/features.md "Time")
    assert {(e["symbol"], e["channel"]) for e in reconnects} == {
        (s, c) for s in SYMBOLS for c in ("orderbook", "trades")
    }  # run_binance's feeds


def test_burst_faster_than_writer_is_accounted_exactly(tmp_path: Path) -> None:
    """received (counted at arrival) = written + dropped-in-events, per channel."""
    result: dict[str, int] = {}

    async def fault(server: FakeBinance, emitter: Emitter) -> None:
        await asyncio.sleep(1.5)

    # a tiny queue and no backpressure wait: the flat-out market overflows it
    server, summary = run_binance(
        tmp_path, fault, interval=0, queue_maxsize=20, backpressure_timeout_seconds=0, batch_size=5000
    )
    per_stream = summary["per_stream"]
    overflow = _events(tmp_path, "overflow")
    assert sum(e["count"] for e in overflow) > 0, "the burst did not overflow the queue"
    for channel in ("trades", "orderbook"):
        received = per_stream[f"ccxt/{channel}"]["received"]
        written = len(rows(tmp_path, "ccxt", channel))
        dropped = sum(e["count"] for e in overflow if e["channel"] == channel)
        result[channel] = dropped
        assert received == written + dropped, (channel, received, written, dropped)
        assert all(e["interval_start"] <= e["interval_end"] for e in overflow)


CHILD = """
import asyncio, sys
from pathlib import Path
sys.path.insert(0, {testdir!r})
from fake_exchange import make_config
from daedalus.collector.pipeline import run_collect
from daedalus.devkit.simulator.binance import FakeBinance
from daedalus.devkit.simulator.market import SimulatedMarket

async def main():
    market = SimulatedMarket({{"BTC/USDT": 60000.0, "ETH/USDT": 3000.0}}, seed=5)
    server = await FakeBinance().start()
    server.load_market(market)
    cfg = make_config(Path({root!r}), exchanges=["binance"], symbols={symbols!r}, channels=["trades", "orderbook"],
                      batch_size=20, segment_max_mb=500)
    stop = asyncio.Event()
    task = asyncio.ensure_future(run_collect(cfg, stop, configure={{"binance": lambda ex: server.configure(ex, {symbols!r})}}))
    await server.wait_subscribed({streams!r})
    print("READY", flush=True)
    await server.run_market(market, interval=0.005)

asyncio.run(main())
"""


@pytest.mark.slow
def test_sigkill_mid_segment_then_restart(tmp_path: Path) -> None:
    import hashlib
    import os
    import signal
    import subprocess
    import sys
    import time

    import pyarrow.parquet as pq

    code = CHILD.format(
        testdir=str(Path(__file__).parent), root=str(tmp_path), symbols=SYMBOLS, streams=STREAMS
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "READY", child.stderr.read() if child.stderr else ""
        active = tmp_path / "raw" / "active" / "ccxt"
        deadline = time.monotonic() + 15
        # wait until the open segments hold several flushed batches, then kill without warning
        while sum(p.stat().st_size for p in active.rglob("*") if p.is_file()) < 60_000:
            assert time.monotonic() < deadline, "the collector wrote nothing to raw/active"
            time.sleep(0.1)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    leftover = [p for p in active.rglob("*") if p.is_file()]
    assert leftover, "the kill left nothing in raw/active: not mid-segment"
    ready = tmp_path / "raw" / "ready"
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in ready.rglob("segment_*")}

    async def fault(server: FakeBinance, emitter: Emitter) -> None:
        await _more_data(emitter, "trades")

    run_binance(tmp_path, fault)  # the restart, on the same lake
    after = sorted(ready.rglob("segment_*.parquet"))
    for p, digest in before.items():  # nothing overwritten
        assert hashlib.sha256(p.read_bytes()).hexdigest() == digest
    tables = {p: pq.read_table(p) for p in after}  # nothing unreadable in ready/
    assert len(tables) > len(before)
    repairs = _events(tmp_path, "segment_repair")
    assert repairs and sum(e["count"] for e in repairs) > 0  # the killed segments' rows were recovered
    trades = rows(tmp_path, "ccxt", "trades")
    assert len({t["conn_id"].rsplit(":", 2)[1] for t in trades}) == 2  # rows from both processes
