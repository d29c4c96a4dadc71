"""`daedalus backfill` of one fake day: killed twice with SIGKILL and resumed, it holds the same rows
as an uninterrupted run; run again it adds nothing; land takes its segments into bronze."""

from __future__ import annotations

import asyncio
import datetime as dt
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


def _tape(market: SimulatedMarket, until_ms: int) -> list[Trade]:
    out: list[Trade] = []
    while market.now_ms < until_ms:
        out += [ev for ev in market.step() if isinstance(ev, Trade)]
    return out


def _backfill(server: object, exchange: str, symbol: str, start_ms: int, end_ms: int, **kw: object) -> object:
    from daedalus.collector.backfill import run_backfill

    def configure(ex: object) -> None:
        if exchange == "coinbase":
            from daedalus.devkit.simulator.wsfake import market_structure

            ex.urls["api"]["rest"] = f"http://{server.host}:{server.port}"  # type: ignore[attr-defined]
            ex.set_markets([market_structure(symbol, symbol.replace("/", "-"), 0.01)])  # type: ignore[attr-defined]
        else:
            server.configure(ex, [symbol])  # type: ignore[attr-defined]
        ex.rateLimit = 1  # type: ignore[attr-defined]

    return run_backfill(kw.pop("root"), exchange, symbol, start_ms, end_ms, configure=configure, **kw)  # type: ignore[arg-type]


class _Crash(Exception):
    pass


def test_backfill_okx_pages_back_by_trade_id_and_resumes(tmp_path: Path) -> None:
    """OKX pages its history backward (type 2 by time from --end, then type 1 by tradeId): a run
    stopped after a durable page resumes to the same rows as an uninterrupted one."""
    from daedalus.devkit.simulator.okx import FakeOkx

    start, end = DAY_MS, DAY_MS + 2 * 3_600_000
    market = SimulatedMarket({"BTC/USDT": 60_000.0}, seed=6, start_ms=start - 600_000, step_ms=2_000)

    async def main() -> tuple[list[Trade], FakeOkx]:
        server = await FakeOkx().start()
        try:
            tape = _tape(market, end + 600_000)
            for t in tape:
                server.tape.add("BTC-USDT", t)

            def crash_at_3(p: object) -> None:
                if p.pages == 3 and not p.done:  # type: ignore[attr-defined]
                    raise _Crash

            with pytest.raises(_Crash):
                await _backfill(
                    server, "okx", "BTC/USDT", start, end, root=tmp_path / "a", on_progress=crash_at_3
                )
            resumed = await _backfill(server, "okx", "BTC/USDT", start, end, root=tmp_path / "a")
            whole = await _backfill(server, "okx", "BTC/USDT", start, end, root=tmp_path / "b")
            assert resumed.rows == whole.rows and resumed.unavailable is whole.unavailable is None  # type: ignore[attr-defined]
            assert resumed.backward and resumed.done  # type: ignore[attr-defined]
            return tape, server
        finally:
            await server.stop()

    tape, server = asyncio.run(main())
    want = [t.trade_id for t in tape if start <= t.ts_ms < end]
    assert len(want) > 300
    assert _rows(tmp_path / "a") == _rows(tmp_path / "b")
    assert sorted(int(r[0]) for r in _rows(tmp_path / "a")) == want  # each trade once
    queries = [q for _, q in server.tape.requests]
    assert queries[0] == {"instId": "BTC-USDT", "type": "2", "after": str(end), "limit": "100"}
    assert all(q["type"] == "1" and q.get("limit") == "100" for q in queries[1:4])


def test_backfill_coinbase_moves_the_window_down_without_loss_or_duplicate(tmp_path: Path) -> None:
    """Coinbase serves the newest 1000 of a [start, end) window in whole seconds: about five trades a
    second, so a page ends inside a second and the next window holds that second again."""
    from daedalus.devkit.simulator.coinbase import FakeCoinbase

    start, end = DAY_MS + 1_234, DAY_MS + 400_000 + 567
    market = SimulatedMarket({"BTC/USD": 60_000.0}, seed=7, start_ms=DAY_MS - 5_000, step_ms=100)

    async def main() -> tuple[list[Trade], object, object]:
        server = await FakeCoinbase(market).start()
        try:
            tape = _tape(market, end + 5_000)
            for t in tape:
                server.tape.add("BTC-USD", t)
            prog = await _backfill(server, "coinbase", "BTC/USD", start, end, root=tmp_path)
            return tape, server, prog
        finally:
            await server.stop()

    tape, server, prog = asyncio.run(main())
    want = [t.trade_id for t in tape if start <= t.ts_ms < end]
    got = _rows(tmp_path)
    assert len(want) > 2000 and prog.pages >= 3 and prog.unavailable is None  # type: ignore[attr-defined]
    assert sorted(int(r[0]) for r in got) == want
    assert {r[2] for r in got} == {"buy", "sell"}
    queries = [q for _, q in server.tape.requests]
    assert all(q["start"] == str(start // 1000) and q["limit"] == "1000" for q in queries)
    assert queries[0]["end"] == str(-(-end // 1000))


def test_backfill_bybit_writes_the_last_60_and_reports_the_rest_unavailable(tmp_path: Path) -> None:
    from daedalus.devkit.simulator.bybit import FakeBybit
    from daedalus.devkit.simulator.trade_history import BYBIT_ID_PREFIX

    start, end = DAY_MS, DAY_MS + 3_600_000
    market = SimulatedMarket({"BTC/USDT": 60_000.0}, seed=8, start_ms=DAY_MS, step_ms=1_000)

    async def main() -> tuple[list[Trade], object, object]:
        server = await FakeBybit().start()
        try:
            tape = _tape(market, end + 10_000)
            for t in tape:
                server.tape.add("BTCUSDT", t)
            first = await _backfill(server, "bybit", "BTC/USDT", start, end, root=tmp_path)
            again = await _backfill(server, "bybit", "BTC/USDT", start, end, root=tmp_path)
            return tape, first, again
        finally:
            await server.stop()

    tape, first, again = asyncio.run(main())
    last60 = tape[-60:]
    want = [f"{BYBIT_ID_PREFIX}{t.trade_id}" for t in last60 if t.ts_ms < end]
    assert 0 < len(want) < 60  # the range ends inside the last 60
    assert sorted(r[0] for r in _rows(tmp_path)) == sorted(want)
    oldest = dt.datetime.fromtimestamp(last60[0].ts_ms / 1000, tz=dt.UTC).isoformat(timespec="milliseconds")
    for prog in (first, again):  # a finished job says the same again and writes nothing more
        assert prog.unavailable == (  # type: ignore[attr-defined]
            f"trades from 2024-08-08T00:00:00.000Z to {oldest.replace('+00:00', 'Z')} are not served "
            "(only the last 60 trades are; rows missing unknown)"
        )
    assert again.pages == first.pages == 1  # type: ignore[attr-defined]


def test_backfill_cli_bybit_says_what_is_unavailable_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The rows Bybit serves are written; the rest of the range is one line and exit 6."""
    from daedalus.cli import app as cli
    from daedalus.cli import backfill
    from daedalus.devkit.simulator.bybit import FakeBybit
    from daedalus.errors import ExchangeError

    market = SimulatedMarket({"BTC/USDT": 60_000.0}, seed=8, start_ms=DAY_MS, step_ms=1_000)
    server = FakeBybit()
    for t in _tape(market, DAY_MS + 3_600_000):
        server.tape.add("BTCUSDT", t)
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    monkeypatch.setitem(backfill.CONFIGURE, "bybit", lambda ex: server.configure(ex, ["BTC/USDT"]))
    try:
        argv = ["--root", str(tmp_path), "backfill", "--exchange", "bybit", "--symbol", "BTC/USDT"]
        with pytest.raises(SystemExit) as exc:
            cli.main([*argv, "--start", "2024-08-08", "--end", "2024-08-09"])
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
    out, err = capsys.readouterr()
    assert exc.value.code == ExchangeError.exit_code
    assert "60 rows in 1 pages" in out
    assert len(err.strip().splitlines()) == 1 and "incomplete: trades from 2024-08-08T00:00:00.000Z" in err
    assert len(_rows(tmp_path)) == 60


def test_backfill_ohlcv_where_trades_are_not_served_bybit_klines(tmp_path: Path) -> None:
    """Bybit serves only its last 60 trades, but its klines go back: `--ohlcv 1m` writes the bars
    of the range (1000 a page) into the `ohlcv` channel; stopped after a page and resumed, the same
    bars; landed into bronze/ohlcv."""
    from daedalus.collector.backfill_ohlcv import run_ohlcv_backfill
    from daedalus.devkit.simulator.bybit import FakeBybit

    start, end = DAY_MS + 30_000, DAY_MS + 20 * 3_600_000  # the first bar opens at 00:01
    market = SimulatedMarket({"BTC/USDT": 60_000.0}, seed=9, start_ms=DAY_MS - 600_000, step_ms=10_000)
    tape = _tape(market, end + 600_000)

    async def main() -> FakeBybit:
        server = await FakeBybit().start()
        try:
            for t in tape:
                server.tape.add("BTCUSDT", t)

            def configure(ex: object) -> None:
                server.configure(ex, ["BTC/USDT"])
                ex.rateLimit = 1  # type: ignore[attr-defined]

            def crash_at_1(p: object) -> None:
                if p.pages == 1:  # type: ignore[attr-defined]
                    raise _Crash

            args = ("bybit", "BTC/USDT", "1m", start, end)
            with pytest.raises(_Crash):
                await run_ohlcv_backfill(tmp_path / "a", *args, configure=configure, on_progress=crash_at_1)
            await run_ohlcv_backfill(tmp_path / "a", *args, configure=configure)
            whole = await run_ohlcv_backfill(tmp_path / "b", *args, configure=configure)
            assert whole.pages >= 2 and whole.done
            return server
        finally:
            await server.stop()

    server = asyncio.run(main())
    want: dict[int, list[float]] = {}  # an independent aggregation of the tape into 1-minute bars
    for t in tape:
        m = t.ts_ms // 60_000 * 60_000
        if DAY_MS + 60_000 <= m < end:
            b = want.setdefault(m, [t.price, t.price, t.price, t.price, 0.0])
            b[1], b[2], b[3], b[4] = max(b[1], t.price), min(b[2], t.price), t.price, b[4] + t.qty

    def bars(root: Path) -> list[tuple]:
        files = sorted((root / "raw" / "ready" / "ccxt" / "ohlcv").glob("segment_*.parquet"))
        t = pa.concat_tables([pq.read_table(f) for f in files])
        t = t.set_column(t.schema.get_field_index("timestamp"), "timestamp", t["timestamp"].cast(pa.int64()))
        cols = ["timestamp", "timeframe", "open", "high", "low", "close", "volume", "source", "symbol"]
        return sorted(zip(*(t.column(c).to_pylist() for c in cols), strict=True))

    got = bars(tmp_path / "a")
    assert got == bars(tmp_path / "b")  # resumed = uninterrupted, each bar once
    rows = {r[0] // 1_000_000: list(r[2:7]) for r in got}
    assert sorted(rows) == sorted(want) and len(want) > 1000
    for m, b in want.items():
        assert rows[m] == pytest.approx(b, rel=1e-9, abs=1e-8)
    assert {(r[1], r[7], r[8]) for r in got} == {("1m", "rest", "BTC/USDT")}
    assert all(p == "/v5/market/kline" and q["interval"] == "1" for p, q in server.tape.requests)

    from daedalus.config import load_config
    from daedalus.land.lander import land_any

    land_any(load_config(None, {"storage.root": str(tmp_path / "b")}, environ={}))
    landed = sorted((tmp_path / "b" / "bronze" / "ohlcv").glob("exchange=bybit/date=*/*.parquet"))
    assert sum(pq.read_metadata(f).num_rows for f in landed) == len(want)
    # readable through the catalog like every bronze channel
    cli = [sys.executable, "-m", "daedalus", "--root", str(tmp_path / "b")]
    subprocess.run([*cli, "catalog"], check=True, capture_output=True)
    sql = "SELECT count(*), min(timeframe) FROM bronze.ohlcv"
    out = subprocess.run([*cli, "query", "-f", "csv", sql], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == f"{len(want)},1m"
