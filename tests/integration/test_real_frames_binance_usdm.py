"""Binance USD-M futures on real frames (tests/data/binance-usdm-btcusdt-20240808.jsonl.gz: the first
60 s of hftbacktest's recorded BTCUSDT perpetual stream). Until now USD-M was checked only against our
own fake, which is how the spot rule on futures went unnoticed (silver kept 4 of 6,550 rows).

The capture goes over the wire to the real ccxt.pro client (as `binanceusdm`, and as `binance` with
`BTC/USDT:USDT`) and through land + build; every diff the futures rule applies must be one bronze
delta with the venue's U / u / pu, the book after every row must equal a plain-dict book kept here by
the documented rule, silver must serve every applied diff with nothing unserved, and the rebuilt best
bid/offer must equal the capture's own `bookTicker` wherever both carry the same update id.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from capture_replay import assert_reference_books, land_and_build, model_rows, replay_futures_capture
from fake_exchange import DATA, book_replay, rows

from daedalus.devkit.simulator.binance_futures import FakeBinanceFutures
from daedalus.devkit.simulator.replay import load_capture

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds the reference package
from reference.futures_capture import reference_books  # noqa: E402

pytestmark = pytest.mark.network
USDM = DATA / "binance-usdm-btcusdt-20240808.jsonl.gz"
EDGES = [0.0, 5.0, 10.0, 25.0, 50.0, 100.0]
BANDS = ["0_5bps", "5_10bps", "10_25bps", "25_50bps", "50_100bps"]
SYMBOL = "BTC/USDT:USDT"


def test_capture_is_real_usdm_and_chains_by_pu_only() -> None:
    """The recorded frames themselves: USD-M diffs carry `T` and `pu` (no `ps`, which is COIN-M's),
    prices and sizes as strings, and chain by `pu` = previous `u` while `U` = previous `u` + 1 mostly
    fails: the spot rule cannot be the USD-M rule."""
    capture = load_capture(USDM)
    diffs = capture.depth_updates()
    assert len(diffs) > 1000 and capture.symbol_id == "BTCUSDT"
    for d in diffs:
        assert set(d) == {"e", "E", "T", "s", "U", "u", "pu", "b", "a"}, sorted(d)
        assert all(isinstance(x, str) for lvl in d["b"] + d["a"] for x in lvl)
        assert isinstance(d["U"], int) and d["U"] <= d["u"]
    pairs = list(zip(diffs, diffs[1:], strict=False))
    assert all(b["pu"] == a["u"] for a, b in pairs)
    assert sum(b["U"] == a["u"] + 1 for a, b in pairs) < len(pairs) // 5
    snap = capture.snapshot
    assert set(snap) == {"lastUpdateId", "E", "T", "bids", "asks"} and len(snap["bids"]) == 1000


def _fake_diff_keys() -> set[str]:
    """The keys of a diff our fake publishes for a USD-M market."""
    from daedalus.devkit.simulator.market import SimulatedMarket

    sent: list[dict] = []

    class Recorder(FakeBinanceFutures):
        async def publish(self, stream: str, payload: dict) -> None:
            sent.append(payload)

    server = Recorder("linear")
    market = SimulatedMarket({"BTC/USDT": 60_000.0}, seed=3, step_ms=10)
    server.load_market(market)

    async def one() -> None:
        for _ in range(20):
            for ev in market.step():
                await server.publish_market_event(ev, market)

    asyncio.run(one())
    diffs = [p for p in sent if p.get("e") == "depthUpdate"]
    assert diffs
    return set(diffs[0])


def test_fake_usdm_diff_has_the_real_fields() -> None:
    real = set(load_capture(USDM).depth_updates()[0])
    assert _fake_diff_keys() == real


@pytest.mark.slow
@pytest.mark.parametrize("exchange", ["binanceusdm", "binance"])
def test_real_usdm_frames_into_bronze_and_silver(tmp_path: Path, exchange: str) -> None:
    capture = load_capture(USDM)
    snap = capture.snapshot
    applied = [d for d in capture.depth_updates() if d["u"] >= snap["lastUpdateId"]]
    server = replay_futures_capture(tmp_path, exchange, SYMBOL, capture, "linear")
    assert server.served == [snap["lastUpdateId"]]
    got = sorted(rows(tmp_path, "ccxt", "book_updates"), key=lambda r: (r["capture_ts"].value, r["seq"]))
    assert {r["sync_rule"] for r in got} == {"prev_chain"}
    assert (got[0]["kind"], got[0]["last_update_id"]) == ("snapshot", snap["lastUpdateId"])
    deltas = [r for r in got if r["kind"] == "delta"]
    assert [(r["first_update_id"], r["last_update_id"], r["prev_update_id"]) for r in deltas] == [
        (d["U"], d["u"], d["pu"]) for d in applied
    ]
    events = rows(tmp_path, "ccxt", "events")
    assert not [e for e in events if e["event_type"] in ("gap", "resync", "error")]

    # the book after every row equals the documented rule's book at the same u (full depth); its
    # best bid/offer equals the venue's own bookTicker wherever both name the same update id
    want = {b["last_update_id"]: b for b in reference_books(USDM, 10**6, EDGES)[0]}
    tickers = {t["u"]: t for t in capture.book_tickers()}
    bbo_checked = 0
    for r, bids, asks in book_replay(got):
        ref = want[r["last_update_id"]]
        assert sorted(bids.items(), reverse=True) == ref["bids"], r["last_update_id"]
        assert sorted(asks.items()) == ref["asks"], r["last_update_id"]
        t = tickers.get(r["last_update_id"])
        if t is not None and r["kind"] == "delta":
            assert (max(bids), bids[max(bids)]) == (float(t["b"]), float(t["B"]))
            assert (min(asks), asks[min(asks)]) == (float(t["a"]), float(t["A"]))
            bbo_checked += 1
    assert bbo_checked > 50

    trades = sorted(rows(tmp_path, "ccxt", "trades"), key=lambda r: (r["capture_ts"].value, r["seq"]))
    assert [t["trade_id"] for t in trades] == [str(t["t"]) for t in capture.trades()]
    _silver_serves_every_applied_diff(tmp_path, exchange, len(applied))


def _silver_serves_every_applied_diff(root: Path, exchange: str, n_applied: int) -> None:
    cfg, result = land_and_build(root, "orderbook orderbook_unserved")
    assert result.tests and all(t.passed for t in result.tests), [
        t.name for t in result.tests if not t.passed
    ]
    bands = [f"{s}_depth_{b}" for b in BANDS for s in ("bid", "ask")]
    got = model_rows(
        cfg,
        "orderbook",
        ", ".join(["exchange", "symbol", "nonce", "bids", "asks", "break_before", *bands]),
        "seq",
    )
    want, _ = reference_books(USDM, 20, EDGES)
    assert len(got) == n_applied + 1  # the snapshot and every applied diff
    assert {(g[0], g[1]) for g in got} == {(exchange, SYMBOL)}
    assert_reference_books(got, want, at=2)
    assert model_rows(cfg, "orderbook_unserved", "count(*)", "1") in ([], [(0,)])
