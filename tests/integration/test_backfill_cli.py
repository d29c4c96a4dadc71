"""`daedalus backfill` of one fake day: killed twice with SIGKILL and resumed, it holds the same rows
as an uninterrupted run; run again it adds nothing; land takes its segments into bronze."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from daedalus.devkit.simulator.binance import FakeBinance
from daedalus.devkit.simulator.market import SimulatedMarket, Trade

pytestmark = pytest.mark.network
DAY_MS = 1_723_075_200_000  # 2024-08-08T00:00Z
DRIVER = Path(__file__).with_name("backfill_driver.py")
ARGS = ["--exchange", "binance", "--symbol", "BTC/USDT", "--start", "2024-08-08", "--end", "2024-08-09"]


@pytest.fixture(scope="module")
def fake() -> FakeBinance:
    """A fake Binance in a thread of its own, its tape one simulated day (from 23:00 the day before
    to 01:00 the day after: the range must cut it)."""
    market = SimulatedMarket({"BTC/USDT": 60_000.0}, seed=4, start_ms=DAY_MS - 3_600_000, step_ms=6_000)
    server = FakeBinance()
    while market.now_ms < DAY_MS + 86_400_000 + 3_600_000:
        for ev in market.step():
            if isinstance(ev, Trade):
                server.tape.add("BTCUSDT", ev)
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    yield server
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)


def _start(fake: FakeBinance, root: Path) -> subprocess.Popen:
    cmd = [sys.executable, str(DRIVER), str(fake.port), "--root", str(root), "backfill", *ARGS]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _pages(root: Path) -> int:
    files = list((root / "_state" / "backfill" / "binance").glob("*.json"))
    return json.loads(files[0].read_text())["pages"] if files else 0


def _rows(root: Path) -> list[tuple]:
    files = sorted((root / "raw" / "ready" / "ccxt" / "trades").glob("segment_*.parquet"))
    t = pa.concat_tables([pq.read_table(f) for f in files])
    cols = ["trade_id", "timestamp", "side", "price", "amount", "source", "symbol", "exchange"]
    return sorted(zip(*(t.column(c).to_pylist() for c in cols), strict=True))


def test_backfill_killed_twice_and_resumed_equals_an_uninterrupted_run(
    fake: FakeBinance, tmp_path: Path
) -> None:
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    for at_pages in (2, 5):
        proc = _start(fake, killed)
        deadline = time.monotonic() + 60
        while _pages(killed) < at_pages:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "backfill too slow to be killed"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
    done = _start(fake, killed)
    out, err = done.communicate(timeout=120)
    assert done.returncode == 0, err
    ok = _start(fake, whole)
    out_whole, err = ok.communicate(timeout=120)
    assert ok.returncode == 0, err

    day = [t for t in fake.tape.trades["BTCUSDT"] if DAY_MS <= t.ts_ms < DAY_MS + 86_400_000]
    resumed, uninterrupted = _rows(killed), _rows(whole)
    assert resumed == uninterrupted
    assert sorted(int(r[0]) for r in resumed) == [t.trade_id for t in day]  # the day, each trade once
    assert {r[5] for r in resumed} == {"rest"}
    assert f"{len(day)} rows" in out_whole and "ETA" in out_whole + err

    # idempotent: a finished range writes nothing again
    before = sorted(p.name for p in (whole / "raw" / "ready" / "ccxt" / "trades").iterdir())
    again = _start(fake, whole)
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert sorted(p.name for p in (whole / "raw" / "ready" / "ccxt" / "trades").iterdir()) == before
    assert _rows(whole) == uninterrupted

    # `daedalus land` takes the segments into bronze like the collector's
    from daedalus.config import load_config
    from daedalus.land.lander import land_any

    land_any(load_config(None, {"storage.root": str(whole)}, environ={}))
    landed = pa.concat_tables(
        [
            pq.read_table(f)
            for f in sorted((whole / "bronze" / "trades").glob("exchange=binance/date=*/*.parquet"))
        ]
    )
    assert sorted(int(x) for x in landed.column("trade_id").to_pylist()) == [t.trade_id for t in day]
    assert {
        f.parent.name for f in (whole / "bronze" / "trades").glob("exchange=binance/date=*/*.parquet")
    } == {"date=2024-08-08"}


def test_backfill_by_time_pages_kraken_without_loss_or_duplicate(tmp_path: Path) -> None:
    """Kraken pages by a time cursor; many trades share a millisecond, and a page of 1000 may end
    inside one: the next page starts at that millisecond again and drops what was written."""
    from daedalus.collector.backfill import run_backfill
    from daedalus.devkit.simulator.kraken import FakeKraken

    market = SimulatedMarket({"BTC/USDT": 60_000.0}, seed=4, start_ms=DAY_MS, step_ms=0)

    async def main() -> tuple[FakeKraken, object]:
        server = await FakeKraken().start()
        try:
            server.load_market(market)
            for _ in range(3000):  # every trade in the same few milliseconds
                for ev in market.step():
                    if isinstance(ev, Trade):
                        server.tape.add("BTCUSDT", ev)
                        server._pair_dp["BTCUSDT"] = 1
                market.now_ms += 1 if market.rng.random() < 0.01 else 0

            def configure(ex: object) -> None:
                server.configure(ex, ["BTC/USDT"], market)
                ex.rateLimit = 1  # type: ignore[attr-defined]

            prog = await run_backfill(
                tmp_path, "kraken", "BTC/USDT", DAY_MS, DAY_MS + 86_400_000, configure=configure
            )
            return server, prog
        finally:
            await server.stop()

    server, prog = asyncio.run(main())
    tape = server.tape.trades["BTCUSDT"]
    assert len(tape) > 1500 and prog.pages >= 2
    assert sorted(int(r[0]) for r in _rows(tmp_path)) == [t.trade_id for t in tape]
