"""Binance futures books into bronze (issue 28): the real COIN-M capture replayed over the wire to the
real collector, as ccxt's `binancecoinm` and as `binance` with `BTC/USD:BTC`, and a synthetic USD-M
market as `binanceusdm`. Bronze holds one delta per diff the futures rule applies (`pu` = previous
`u`), with the venue's ids (U, u, pu) and `sync_rule = prev_chain` on every row, no row of ccxt's own
(no trim, no second row per message), and the book replayed from the rows equals, at full depth
after every diff, a book rebuilt here from the capture by the futures rule.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from capture_replay import (
    assert_reference_books,
    futures_config,
    land_and_build,
    model_rows,
    replay_futures_capture,
)
from fake_exchange import DATA, book_replay, make_config, rows, run_pipeline, wait_until

from daedalus.collector.connection import Emitter
from daedalus.devkit.simulator.binance_futures import FakeBinanceFutures
from daedalus.devkit.simulator.market import SimulatedMarket
from daedalus.devkit.simulator.replay import Capture, load_capture

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds the reference package
from reference.futures_capture import reference_books  # noqa: E402

pytestmark = pytest.mark.network
COINM = DATA / "binance-coinm-btcusdperp-20240808.jsonl.gz"
HOUR_NS = 3_600_000_000_000
EDGES = [0.0, 5.0, 10.0, 25.0, 50.0, 100.0]
BANDS = ["0_5bps", "5_10bps", "10_25bps", "25_50bps", "50_100bps"]


def futures_books(capture: Capture, load_last: int):
    """(u, bids, asks) after the load and after every diff the futures rule applies (Binance
    derivatives docs, "How to manage a local order book correctly"): drop u < lastUpdateId; the first
    applied has U <= lastUpdateId <= u; then each pu = previous u. Full depth, no trim."""
    snap = capture.snapshot
    assert snap["lastUpdateId"] == load_last
    bids = {float(p): float(q) for p, q in snap["bids"]}
    asks = {float(p): float(q) for p, q in snap["asks"]}
    last, first = load_last, True
    yield last, bids, asks
    for d in capture.depth_updates():
        if d["u"] < last:
            continue
        if first:
            assert d["U"] <= last <= d["u"], "the capture does not reach the snapshot"
            first = False
        else:
            assert d["pu"] == last, "the capture itself has a gap"
        for side, key in ((bids, "b"), (asks, "a")):
            for p, q in d[key]:
                if float(q) == 0:
                    side.pop(float(p), None)
                else:
                    side[float(p)] = float(q)
        last = d["u"]
        yield last, bids, asks


def _in_order(tmp_path: Path, channel: str) -> list[dict]:
    return sorted(rows(tmp_path, "ccxt", channel), key=lambda r: (r["capture_ts"].value, r["seq"]))


@pytest.mark.slow
@pytest.mark.parametrize("exchange", ["binancecoinm", "binance"])
def test_coinm_capture_into_bronze_by_the_futures_rule(tmp_path: Path, exchange: str) -> None:
    if not COINM.exists():
        pytest.skip(f"real COIN-M capture not found at {COINM}")
    capture = load_capture(COINM)
    symbol = "BTC/USD:BTC"
    snap = capture.snapshot
    server = replay_futures_capture(tmp_path, exchange, symbol, capture, "inverse")
    assert server.served == [snap["lastUpdateId"]]
    got = _in_order(tmp_path, "book_updates")
    assert {r["symbol"] for r in got} == {symbol} and len({r["conn_id"] for r in got}) == 1
    assert {r["sync_rule"] for r in got} == {"prev_chain"}
    load = got[0]
    assert (load["kind"], load["last_update_id"], load["first_update_id"], load["prev_update_id"]) == (
        "snapshot",
        snap["lastUpdateId"],
        None,
        None,
    )
    assert len(load["bids"]) == len(load["asks"]) == 1000
    assert load["timestamp"].value == snap["T"] * 1_000_000  # the depth answer's exchange time
    assert got[1]["kind"] == "checkpoint" and got[1]["last_update_id"] == snap["lastUpdateId"]

    # one delta per applied diff, the venue's ids; nothing of ccxt's own (a trim would repeat a u)
    deltas = [r for r in got if r["kind"] == "delta"]
    applied = [d for d in capture.depth_updates() if d["u"] >= snap["lastUpdateId"]]
    assert [(r["first_update_id"], r["last_update_id"], r["prev_update_id"]) for r in deltas] == [
        (d["U"], d["u"], d["pu"]) for d in applied
    ]
    assert [r["timestamp"].value // 1_000_000 for r in deltas] == [d["E"] for d in applied]
    # the spot rule would break on most of them: the futures rule is what holds
    spot_ok = sum(1 for a, b in zip(applied, applied[1:], strict=False) if b["U"] == a["u"] + 1)
    assert spot_ok < len(applied) // 5 and len(applied) > 20_000

    # checkpoints: after the load, then exactly one per UTC hour the rows enter, at the boundary
    hourly = [r for r in got[2:] if r["kind"] == "checkpoint"]
    hours = {r["timestamp"].value // HOUR_NS for r in got if r["kind"] == "delta"}
    assert len(hourly) == len(hours - {load["timestamp"].value // HOUR_NS})
    for r in hourly:
        assert r["timestamp"].value % HOUR_NS == 0
    # the exchange clock passes midnight 1.3 s before the capture ends: one checkpoint, at 00:00:00
    assert [r["timestamp"] for r in hourly] == [pd.Timestamp("2024-08-09", tz="UTC")]
    assert all(r["timestamp"] >= pd.Timestamp("2024-08-08", tz="UTC") for r in got)

    # the book after every row equals the futures-rule book at the same u, at full depth
    independent = futures_books(capture, snap["lastUpdateId"])
    u, ib, ia = next(independent)
    compared = 0
    for r, bids, asks in book_replay(got):
        while u < r["last_update_id"]:
            u, ib, ia = next(independent)
        assert u == r["last_update_id"]
        assert bids == ib and asks == ia, f"book differs at u={u}"
        compared += 1
    assert compared == len(got)

    # trades: every one of the capture, once, in order
    trades = _in_order(tmp_path, "trades")
    assert [t["trade_id"] for t in trades] == [str(t["t"]) for t in capture.trades()]
    events = rows(tmp_path, "ccxt", "events")
    assert not [e for e in events if e["event_type"] in ("gap", "resync", "error")]

    # land and build: silver serves one row per applied diff plus the snapshot (checkpoints seed
    # only), each equal to the futures-rule book (top 20 levels, every band); nothing unserved
    _land_and_build_match_the_futures_rule(tmp_path, capture, exchange, symbol)


def _land_and_build_match_the_futures_rule(root: Path, capture: Capture, exchange: str, symbol: str) -> None:
    cfg, result = land_and_build(root, "orderbook orderbook_unserved rejects trades")
    assert result.tests and all(t.passed for t in result.tests), [
        t.name for t in result.tests if not t.passed
    ]
    cols = ", ".join(
        ["exchange", "symbol", "kind", "nonce", "bids", "asks", "break_before"]
        + [f"{s}_depth_{b}" for b in BANDS for s in ("bid", "ask")]
    )
    got = model_rows(cfg, "orderbook", cols, "seq")
    want, _ = reference_books(COINM, 20, EDGES)
    assert len(got) > 20_000
    assert {(g[0], g[1]) for g in got} == {(exchange, symbol)}
    assert_reference_books(got, want, at=3)  # no break after the first row
    assert model_rows(cfg, "orderbook_unserved", "count(*)", "1") in ([], [(0,)])
    trade_ids = [r[0] for r in model_rows(cfg, "trades", "trade_id", "ts, trade_id")]
    assert sorted(trade_ids) == sorted(str(t["t"]) for t in capture.trades())


@pytest.mark.slow
@pytest.mark.parametrize("exchange", ["binanceusdm", "binance"])
def test_usdm_fake_follows_the_futures_rule(tmp_path: Path, exchange: str) -> None:
    symbol = "BTC/USDT:USDT"
    config = futures_config(tmp_path, exchange, symbol)
    market = SimulatedMarket({"BTC/USDT": 60_000.0}, seed=3, step_ms=10)

    async def main() -> Any:
        server = await FakeBinanceFutures("linear").start()
        server.load_market(market)
        try:

            async def scenario(emitter: Emitter) -> None:
                await server.wait_subscribed(["btcusdt@depth@100ms", "btcusdt@trade"])
                updates = lambda: emitter.counters.get(("ccxt", "book_updates"))  # noqa: E731
                await wait_until(lambda: updates() is not None and updates().received >= 2, 30, "the load")
                await server.run_market(market, 300, interval=0.002)
                sent = server.published.get("btcusdt@depth@100ms", 0)
                await wait_until(lambda: updates().received >= sent + 2, 30, "every diff")

            await run_pipeline(
                config, scenario, configure={exchange: lambda ex: server.configure(ex, [symbol])}
            )
            return server
        finally:
            await server.stop()

    server = asyncio.run(main())
    got = _in_order(tmp_path, "book_updates")
    assert {r["sync_rule"] for r in got} == {"prev_chain"}
    deltas = [r for r in got if r["kind"] == "delta"]
    assert len(deltas) == server.published["btcusdt@depth@100ms"] > 100
    # pu chains every diff to the one before; U never is the previous u + 1
    for a, b in zip(deltas, deltas[1:], strict=False):
        assert b["prev_update_id"] == a["last_update_id"] != b["first_update_id"] - 1
    assert got[0]["kind"] == "snapshot" and deltas[0]["prev_update_id"] <= got[0]["last_update_id"]
    *_, (_, bids, asks) = book_replay(got)
    book = server.books["BTCUSDT"]
    assert bids == {float(p): float(q) for p, q in book.bids.items()}
    assert asks == {float(p): float(q) for p, q in book.asks.items()}
    events = rows(tmp_path, "ccxt", "events")
    assert not [e for e in events if e["event_type"] in ("gap", "resync", "error")]


@pytest.mark.slow
def test_load_row_keeps_its_own_ids_while_stale_diffs_arrive(tmp_path: Path) -> None:
    """ccxt applies the REST load outside any frame while diffs older than it keep arriving (ccxt
    drops them). The load's rows carry the load's ids: last_update_id = lastUpdateId, no first/prev
    (on the old capture they took a dropped diff's U/u/pu whenever its frame was handled before the
    load's flush: every run here)."""
    symbol = "BTC/USDT:USDT"
    config = make_config(
        tmp_path,
        exchanges=["binanceusdm"],
        symbols=[symbol],
        channels=["book_updates"],
        stale_after_seconds=60.0,
    )
    load_id = 100_000
    t0 = 1_723_165_200_000
    # a deep book: ccxt takes a few ms to load it while the stale frames queue up behind
    bids = {f"{60000 - i * 0.5:.1f}": "1.5" for i in range(1000)}
    asks = {f"{60001 + i * 0.5:.1f}": "2.5" for i in range(1000)}

    async def main() -> None:
        server = await FakeBinanceFutures("linear").start()
        server.books["BTCUSDT"] = server.new_book(
            {"lastUpdateId": load_id, "bids": list(bids.items()), "asks": list(asks.items())}
        )
        try:

            async def scenario(emitter: Emitter) -> None:
                await server.wait_subscribed(["btcusdt@depth@100ms"])
                key = ("ccxt", "book_updates")
                received = lambda: emitter.counters[key].received if key in emitter.counters else 0  # noqa: E731
                u = 1
                while received() < 2 and u < load_id - 10:  # stale diffs until the load is in
                    diff = {"e": "depthUpdate", "E": t0, "T": t0, "s": "BTCUSDT", "U": u, "u": u, "pu": u - 1}
                    await server.publish("btcusdt@depth@100ms", {**diff, "b": [["1.0", "0"]], "a": []})
                    u += 1
                    if u % 3 == 0:
                        await asyncio.sleep(0)
                assert u > 10, "the load came before any stale diff: nothing tested"
                await asyncio.sleep(0.3)

            await run_pipeline(
                config, scenario, configure={"binanceusdm": lambda ex: server.configure(ex, [symbol])}
            )
        finally:
            await server.stop()

    asyncio.run(main())
    got = _in_order(tmp_path, "book_updates")
    ids = [(r["kind"], r["first_update_id"], r["last_update_id"], r["prev_update_id"]) for r in got]
    assert ids[:2] == [("snapshot", None, load_id, None), ("checkpoint", None, load_id, None)], ids[:3]
    assert len(got[0]["bids"]) == len(got[0]["asks"]) == 1000
    assert [r["kind"] for r in got] == ["snapshot", "checkpoint"]  # every stale diff dropped, no row
