"""Healing a trades gap over REST: a disconnect mid-run, the fake's tape, and what bronze holds."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from fake_exchange import make_config, rows, run_pipeline, wait_until

from daedalus.collector.connection import Emitter
from daedalus.devkit.simulator.binance import FakeBinance, binance_id
from daedalus.devkit.simulator.bybit import FakeBybit
from daedalus.devkit.simulator.kraken import FakeKraken
from daedalus.devkit.simulator.market import SimulatedMarket
from daedalus.devkit.simulator.okx import FakeOkx
from daedalus.devkit.simulator.trade_history import BYBIT_ID_PREFIX

if TYPE_CHECKING:
    from daedalus.build.step import BuildResult

pytestmark = pytest.mark.network
SYMBOLS = ["BTC/USDT", "ETH/USDT"]


def _trades_received(emitter: Emitter) -> int:
    c = emitter.counters.get(("ccxt", "trades"))
    return 0 if c is None else c.received


def _run_on_fake_binance(
    config: Any,
    market: SimulatedMarket,
    scenario: Callable[[FakeBinance, Emitter], Awaitable[None]],
    api_key: str | None = "k",
    prepare: Callable[[FakeBinance], None] | None = None,
) -> FakeBinance:
    """The real pipeline against a fake Binance serving `market`, while `scenario(server, emitter)`
    drives it; the returned server holds the tape the market traded."""

    async def main() -> FakeBinance:
        server = await FakeBinance().start()
        server.load_market(market)
        if prepare is not None:
            prepare(server)

        def configure(ex: Any) -> None:
            server.configure(ex, SYMBOLS)
            ex.apiKey = api_key  # historicalTrades (paging by id) needs one; without, the last 1000
            ex.rateLimit = 1  # ccxt weighs historicalTrades at 200 requests: 10 s apart at 50 ms

        try:
            await run_pipeline(
                config, lambda emitter: scenario(server, emitter), configure={"binance": configure}
            )
        finally:
            await server.stop()
        return server

    return asyncio.run(main())


def run_binance_trades(
    root: Path,
    disconnect: bool,
    refuse: tuple[int, int] | None = None,
    api_key: str | None = "k",
    **ingestion: Any,
):
    """Trades of a simulated market through the real pipeline; with `disconnect`, every socket is reset
    mid-run and the market goes on while the collector backs off (`refuse`: the next history requests
    are answered (count, status) with Retry-After 1)."""
    market = SimulatedMarket({"BTC/USDT": 60_000.0, "ETH/USDT": 3_000.0}, seed=5)
    config = make_config(root, exchanges=["binance"], symbols=SYMBOLS, channels=["trades"], **ingestion)

    stop_market = asyncio.Event()

    async def scenario(server: FakeBinance, emitter: Emitter) -> None:
        await server.wait_subscribed(["btcusdt@trade", "ethusdt@trade"])
        feeder = asyncio.ensure_future(server.run_market(market, steps=600, interval=0.005, stop=stop_market))
        try:
            await wait_until(lambda: _trades_received(emitter) > 20, 10, "first trades")
            if disconnect:
                before = server.connections_total
                server.half_open()  # the socket goes quiet while the market trades on: a gap for sure
                await asyncio.sleep(0.3)
                assert await server.drop_connections(1006) == 1
                await wait_until(lambda: server.connections_total > before, 10, "reconnect")
            await feeder
            await asyncio.sleep(2.5 if refuse else 1.0)  # the heal's REST calls (and the wait they are told)
        finally:
            stop_market.set()

    def refuse_history(server: FakeBinance) -> None:
        if refuse:
            server.tape.refuse(refuse[0], status=refuse[1], retry_after=1)

    return _run_on_fake_binance(config, market, scenario, api_key=api_key, prepare=refuse_history)


def test_disconnect_gap_is_healed_from_rest_history(tmp_path: Path) -> None:
    server = run_binance_trades(tmp_path, disconnect=True)
    trades = rows(tmp_path, "ccxt", "trades")
    events = rows(tmp_path, "ccxt", "events")
    for symbol in SYMBOLS:
        tape = [t.trade_id for t in server.tape.trades[binance_id(symbol)]]
        got = [int(t["trade_id"]) for t in trades if t["symbol"] == symbol]
        assert sorted(got) == tape  # 0 missing, 0 duplicated
        rest = [t for t in trades if t["symbol"] == symbol and t["source"] == "rest"]
        assert rest, "the disconnect left no gap to heal"
        assert all(t["side"] in ("buy", "sell") and t["price"] > 0 for t in rest)
        fills = [e for e in events if e["event_type"] == "backfill" and e["symbol"] == symbol]
        assert len(fills) == 1
        assert fills[0]["detail"].startswith("complete"), fills[0]["detail"]
        assert fills[0]["count"] == len(rest)
        assert fills[0]["interval_start"] < fills[0]["interval_end"] == fills[0]["capture_ts"]
        breaks = [e for e in events if e["event_type"] == "disconnect" and e["symbol"] == symbol]
        # the break lies inside the healed interval (what the build reads to drop it)
        assert any(fills[0]["interval_start"] <= b["capture_ts"] <= fills[0]["interval_end"] for b in breaks)
    assert any(path.endswith("historicalTrades") and "fromId" in q for path, q in server.tape.requests)


def test_heal_waits_out_429_retry_after(tmp_path: Path) -> None:
    server = run_binance_trades(tmp_path, disconnect=True, refuse=(1, 429))
    trades = rows(tmp_path, "ccxt", "trades")
    events = rows(tmp_path, "ccxt", "events")
    limited = [e for e in events if e["event_type"] == "rate_limited" and e["channel"] == "trades"]
    assert len(limited) == 1 and "429" in limited[0]["detail"]
    for symbol in SYMBOLS:
        tape = [t.trade_id for t in server.tape.trades[binance_id(symbol)]]
        assert sorted(int(t["trade_id"]) for t in trades if t["symbol"] == symbol) == tape


def test_binance_without_api_key_heals_from_the_last_1000(tmp_path: Path) -> None:
    server = run_binance_trades(tmp_path, disconnect=True, api_key=None)
    trades = rows(tmp_path, "ccxt", "trades")
    for symbol in SYMBOLS:
        tape = [t.trade_id for t in server.tape.trades[binance_id(symbol)]]
        assert sorted(int(t["trade_id"]) for t in trades if t["symbol"] == symbol) == tape
    paths = {path for path, _ in server.tape.requests}
    assert paths == {"/api/v3/trades"}  # no key: never the keyed historicalTrades


def test_trades_an_overflow_dropped_are_fetched_again(tmp_path: Path) -> None:
    """A burst faster than the writer overflows a tiny queue: the trades it dropped (the socket had
    delivered them) are fetched over REST once the burst is over; bronze holds the whole tape and a
    complete `backfill` event covers each trades `overflow` event (what the build reads)."""
    market = SimulatedMarket({"BTC/USDT": 60_000.0, "ETH/USDT": 3_000.0}, seed=6)
    config = make_config(
        tmp_path,
        exchanges=["binance"],
        symbols=SYMBOLS,
        channels=["trades"],
        queue_maxsize=100,
        backpressure_timeout_seconds=0,
        batch_size=5000,
    )

    async def scenario(server: FakeBinance, emitter: Emitter) -> None:
        await server.wait_subscribed(["btcusdt@trade", "ethusdt@trade"])
        await server.run_market(market, steps=1500, interval=0)  # flat out

        def written() -> int:  # socket trades the queue took + healed ones
            c = emitter.counters.get(("ccxt", "trades"))
            return 0 if c is None else c.accepted

        tape = sum(len(v) for v in server.tape.trades.values())
        # a quiet second, then the heal's REST pages, staged a few at a time
        await wait_until(lambda: written() >= tape, 30, "the dropped trades fetched again")
        await asyncio.sleep(0.5)

    server = _run_on_fake_binance(config, market, scenario)
    trades = rows(tmp_path, "ccxt", "trades")
    events = rows(tmp_path, "ccxt", "events")
    overflow = [e for e in events if e["event_type"] == "overflow" and e["channel"] == "trades"]
    assert sum(e["count"] for e in overflow) > 0, "the burst did not overflow"
    fills = [e for e in events if e["event_type"] == "backfill"]
    assert fills and all(f["detail"].startswith("complete") for f in fills), fills
    for symbol in SYMBOLS:
        tape = [t.trade_id for t in server.tape.trades[binance_id(symbol)]]
        assert sorted(int(t["trade_id"]) for t in trades if t["symbol"] == symbol) == tape
    for e in overflow:
        assert any(
            f["symbol"] == e["symbol"] and f["interval_start"] <= e["capture_ts"] <= f["interval_end"]
            for f in fills
        ), e
    assert sum(t["source"] == "rest" for t in trades) == sum(f["count"] for f in fills)


VENUE_FAKES = {
    "bybit": (FakeBybit, "publicTrade.BTCUSDT"),
    "okx": (FakeOkx, "trades:BTC-USDT"),
    "kraken": (FakeKraken, "trade:BTC/USDT"),
}


def run_venue_gap(root: Path, exchange: str, gap_trades: int) -> tuple[Any, list[dict], list[dict]]:
    """One symbol of a ccxt.pro venue through the real pipeline; its trades socket goes quiet while
    `gap_trades` trades go by, then is reset."""
    fake_cls, topic = VENUE_FAKES[exchange]
    symbols = ["BTC/USDT"]
    market = SimulatedMarket({"BTC/USDT": 60_000.0}, seed=3)
    config = make_config(root, exchanges=[exchange], symbols=symbols, channels=["trades"])

    async def main() -> Any:
        server = await fake_cls().start()
        server.load_market(market)
        tape = server.tape.trades

        def published() -> int:
            return sum(len(v) for v in tape.values())

        async def scenario(emitter: Emitter) -> None:
            await server.wait_subscribed([topic])
            feeder = asyncio.ensure_future(server.run_market(market, steps=1500, interval=0.002))
            await wait_until(lambda: _trades_received(emitter) > 20, 10, "first trades")
            for peer in server.peers:
                peer.muted = True  # quiet socket, market trading on
            mark = published()
            await wait_until(lambda: published() > mark + gap_trades, 20, "the gap")
            before = server.connections_total
            await server.drop_connections()
            await wait_until(lambda: server.connections_total > before, 10, "reconnect")
            await feeder
            await asyncio.sleep(1.0)

        def configure(ex: Any) -> None:
            server.configure(ex, symbols, market)
            ex.rateLimit = 1

        try:
            await run_pipeline(config, scenario, configure={exchange: configure})
        finally:
            await server.stop()
        return server

    server = asyncio.run(main())
    return server, rows(root, "ccxt", "trades"), rows(root, "ccxt", "events")


@pytest.mark.parametrize("exchange", ["okx", "kraken"])
def test_venue_gap_is_healed_completely(tmp_path: Path, exchange: str) -> None:
    server, trades, events = run_venue_gap(tmp_path, exchange, gap_trades=250)
    (tape,) = server.tape.trades.values()
    got = sorted(int(str(t["trade_id"])) for t in trades)
    assert got == [t.trade_id for t in tape]  # 0 missing, 0 duplicated
    fills = [e for e in events if e["event_type"] == "backfill"]
    assert len(fills) == 1 and fills[0]["detail"].startswith("complete"), fills
    assert fills[0]["count"] == sum(t["source"] == "rest" for t in trades) > 200
    if exchange == "okx":  # paged back by tradeId, 100 a page
        pages = [q for _, q in server.tape.requests]
        assert len(pages) >= 3 and all(
            q["type"] == "1" and "after" in q and q.get("limit") == "100" for q in pages
        )
    else:  # paged forward by the since cursor
        assert all("since" in q for _, q in server.tape.requests)


def test_bybit_gap_longer_than_last_n_stays_a_break_with_rows_missing_counted(tmp_path: Path) -> None:
    server, trades, events = run_venue_gap(tmp_path, "bybit", gap_trades=150)
    tape_ids = [f"{BYBIT_ID_PREFIX}{t.trade_id}" for t in server.tape.trades["BTCUSDT"]]
    got = [t["trade_id"] for t in trades]
    assert len(got) == len(set(got))  # no duplicate
    assert set(got) <= set(tape_ids)
    lost = len(set(tape_ids) - set(got))
    fills = [e for e in events if e["event_type"] == "backfill"]
    assert len(fills) == 1
    assert fills[0]["detail"].startswith(f"partial: {lost} rows missing"), fills[0]["detail"]
    assert lost > 0 and fills[0]["count"] == sum(t["source"] == "rest" for t in trades) > 0
    assert all(q.get("limit") == "60" and q.get("category") == "spot" for _, q in server.tape.requests)


def _run_books_and_trades(root: Path, disconnect: bool, start_ms: int) -> FakeBinance:
    """Trades and order books of one seeded market; with `disconnect`, the trades socket alone goes
    quiet for a while (the market trading on) and is then reset. The exchange clock starts at
    `start_ms`, near the receive clock: the build reads the events of the rows' span only."""
    market = SimulatedMarket({"BTC/USDT": 60_000.0, "ETH/USDT": 3_000.0}, seed=8, start_ms=start_ms)
    config = make_config(root, exchanges=["binance"], symbols=SYMBOLS, channels=["trades", "orderbook"])

    streams = [f"{s}@{k}" for s in ("btcusdt", "ethusdt") for k in ("trade", "depth@100ms")]

    async def scenario(server: FakeBinance, emitter: Emitter) -> None:
        await server.wait_subscribed(streams)
        feeder = asyncio.ensure_future(server.run_market(market, steps=800, interval=0.005))
        await wait_until(lambda: _trades_received(emitter) > 40, 10, "first trades")
        if disconnect:
            trade_peers = [p for p in server.peers if any(s.endswith("@trade") for s in p.streams)]
            for p in trade_peers:
                p.muted = True
            await asyncio.sleep(0.4)
            before = server.connections_total
            for p in trade_peers:
                p.request.transport.abort()
            await wait_until(lambda: server.connections_total > before, 10, "reconnect")
        await feeder
        await asyncio.sleep(1.0)

    return _run_on_fake_binance(config, market, scenario)


def _build(root: Path) -> BuildResult:
    from daedalus.build import api
    from daedalus.config import load_config
    from daedalus.land.lander import land_any

    cfg = load_config(
        None,
        {
            "storage.root": str(root),
            "duckdb.temp_directory": str(root / "_tmp"),
            "etl.features.horizons": [1, 5],
        },
    )
    land_any(cfg)
    return api.build(cfg, select=["+orderbook_seq"], run_tests=False, catalog=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[FakeBinance, Path, Path]:
    """The same seeded market collected twice, raw segments not landed: with a trades disconnect
    (healed from REST) and without one."""
    healed_root, plain_root = tmp_path_factory.mktemp("healed"), tmp_path_factory.mktemp("plain")
    start_ms = int(time.time() * 1000)
    server = _run_books_and_trades(healed_root, disconnect=True, start_ms=start_ms)
    _run_books_and_trades(plain_root, disconnect=False, start_ms=start_ms)
    return server, healed_root, plain_root


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src / "raw", dst / "raw")
    return dst


def _silver_trade_ids(con: duckdb.DuckDBPyConnection, root: Path, symbol: str) -> list[int]:
    got = con.execute(
        f"SELECT trade_id FROM read_parquet('{root}/silver/trades/**/*.parquet', hive_partitioning=false) "
        "WHERE symbol = ?",
        [symbol],
    ).fetchall()
    return sorted(int(r[0]) for r in got)


def _windows(con: duckdb.DuckDBPyConnection, root: Path) -> dict:
    got = con.execute(
        f"SELECT symbol, epoch_us(ts), trade_volume_1s, trade_volume_5s, tfi_1s, tfi_5s "
        f"FROM read_parquet('{root}/gold/orderbook_seq/**/*.parquet', hive_partitioning=false)"
    ).fetchall()
    return {(r[0], r[1]): tuple(None if v is None else round(v, 9) for v in r[2:]) for r in got}


def _same_windows(healed: dict, plain: dict) -> bool:
    common = healed.keys() & plain.keys()
    assert len(common) > 0.9 * len(plain) and len(common) > 100
    return {k: healed[k] for k in common} == {k: plain[k] for k in common}


@pytest.mark.slow
def test_demo_with_a_disconnect_heals_silver_and_trade_windows(
    runs: tuple[FakeBinance, Path, Path], tmp_path: Path
) -> None:
    server, healed_src, plain_src = runs
    healed_root, plain_root = _copy(healed_src, tmp_path / "healed"), _copy(plain_src, tmp_path / "plain")
    _build(healed_root)
    _build(plain_root)
    con = duckdb.connect()
    for symbol in SYMBOLS:
        tape = [t.trade_id for t in server.tape.trades[binance_id(symbol)]]
        assert _silver_trade_ids(con, healed_root, symbol) == tape  # 0 missing, 0 duplicated
    bronze_rest = con.execute(
        f"SELECT count(*) FROM read_parquet('{healed_root}/bronze/trades/**/*.parquet', union_by_name=true) "
        "WHERE source = 'rest'"
    ).fetchone()[0]
    assert bronze_rest > 0  # the disconnect did leave a gap, closed from REST
    assert _same_windows(_windows(con, healed_root), _windows(con, plain_root))


def _hold_back_the_heal(root: Path, held: Path) -> int:
    """Move the heal's output (REST trades, `backfill` events) out of the raw segments into segments
    under `held`: what a heal that finishes after a build writes in a later segment."""
    moved = 0
    for channel, column, value in (("trades", "source", "rest"), ("events", "event_type", "backfill")):
        for f in sorted((root / "raw" / "ready" / "ccxt" / channel).glob("segment_*.parquet")):
            t = pq.read_table(f)
            late = pc.fill_null(pc.equal(t[column], value), False)
            n = pc.sum(late).as_py() or 0
            if not n:
                continue
            out = held / "raw" / "ready" / "ccxt" / channel
            out.mkdir(parents=True, exist_ok=True)
            pq.write_table(t.filter(late), out / f"{f.stem}_heal.parquet")
            pq.write_table(t.filter(pc.invert(late)), f)
            moved += n
    return moved


@pytest.mark.slow
def test_a_heal_landing_after_a_build_rebuilds_the_affected_partitions(
    runs: tuple[FakeBinance, Path, Path], tmp_path: Path
) -> None:
    server, healed_src, plain_src = runs
    root, plain_root = _copy(healed_src, tmp_path / "late"), _copy(plain_src, tmp_path / "plain")
    held = tmp_path / "held"
    assert _hold_back_the_heal(root, held) > 0
    first = _build(root)
    _build(plain_root)
    con = duckdb.connect()
    plain = _windows(con, plain_root)
    for symbol in SYMBOLS:  # the gap is open: trades missing, windows restart after the break
        tape = [t.trade_id for t in server.tape.trades[binance_id(symbol)]]
        assert len(_silver_trade_ids(con, root, symbol)) < len(tape)
    assert not _same_windows(_windows(con, root), plain)

    # the heal lands: its REST trades and its `backfill` event, in segments of their own
    for f in (held / "raw" / "ready").rglob("segment_*.parquet"):
        dest = root / f.relative_to(held)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(f, dest)
    second = _build(root)
    rebuilt = {(m, pid) for m, pid in second.rebuilt}
    assert {m for m, _ in rebuilt} >= {"trades", "orderbook_seq"}
    assert rebuilt <= set(first.rebuilt)  # only partitions that existed (nothing new appeared)
    reasons = {p.model: p.reason for p in second.plan}
    assert "inputs changed" in reasons["trades"], reasons
    for symbol in SYMBOLS:
        tape = [t.trade_id for t in server.tape.trades[binance_id(symbol)]]
        assert _silver_trade_ids(con, root, symbol) == tape  # 0 missing, 0 duplicated
    assert _same_windows(_windows(con, root), plain)
