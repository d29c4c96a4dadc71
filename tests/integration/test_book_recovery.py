"""Recovery is quick and local (issue 28): after a checksum mismatch (OKX, Kraken) or an update-id gap
(Bybit) the real ccxt.pro client, against a fake that answers (un)subscribes as the venue does,
reloads that one book within 2 s, while the trades and tickers on the same socket go on: no
disconnect, no reconnect, every trade once. The stale deadline is the default (60 s), so no stale
reconnect can stand in for the resync.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fake_exchange import make_config, rows, run_pipeline, wait_until

from daedalus.collector.connection import Emitter
from daedalus.devkit.simulator.bybit import FakeBybit
from daedalus.devkit.simulator.kraken import FakeKraken
from daedalus.devkit.simulator.market import SimulatedMarket
from daedalus.devkit.simulator.okx import FakeOkx

pytestmark = pytest.mark.network
SYMBOLS = {"BTC/USDT": 60_000.0, "ETH/USDT": 3_000.0}
BROKEN = "BTC/USDT"

# exchange -> (fake, fault, book topic, trade topic, ticker topic, is-snapshot, trades in a frame)
CASES: dict[str, tuple[Any, ...]] = {
    "okx": (
        FakeOkx,
        "corrupt_checksum",
        lambda s: f"books:{s.replace('/', '-')}",
        lambda s: f"trades:{s.replace('/', '-')}",
        lambda s: f"tickers:{s.replace('/', '-')}",
        lambda f: f.get("action") == "snapshot",
        lambda f: [t["tradeId"] for t in f["data"]],
    ),
    "kraken": (
        FakeKraken,
        "corrupt_checksum",
        lambda s: f"book:{s}",
        lambda s: f"trade:{s}",
        lambda s: f"ticker:{s}",
        lambda f: f.get("type") == "snapshot",
        lambda f: [str(t["trade_id"]) for t in f["data"]],
    ),
    "bybit": (
        FakeBybit,
        "skip_book_updates",
        lambda s: f"orderbook.50.{s.replace('/', '')}",
        lambda s: f"publicTrade.{s.replace('/', '')}",
        lambda s: f"tickers.{s.replace('/', '')}",
        lambda f: f.get("type") == "snapshot",
        lambda f: [t["i"] for t in f["data"]],
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("exchange", list(CASES))
def test_book_reloads_within_2s_and_other_feeds_never_disconnect(tmp_path: Path, exchange: str) -> None:
    fake_cls, fault, book_topic, trade_topic, ticker_topic, is_snapshot, trade_ids = CASES[exchange]
    config = make_config(
        tmp_path,
        exchanges=[exchange],
        symbols=list(SYMBOLS),
        channels=["trades", "ticker", "book_updates"],
        stale_after_seconds=60.0,  # the default: only the resync can bring the book back
    )
    market = SimulatedMarket(SYMBOLS, seed=5, step_ms=10)

    async def main() -> Any:
        server = await fake_cls().start()
        server.load_market(market)
        try:

            def snapshots() -> int:
                return sum(1 for f in server.sent.get(book_topic(BROKEN), []) if is_snapshot(f))

            async def scenario(emitter: Emitter) -> None:
                topics = [t(s) for s in SYMBOLS for t in (book_topic, trade_topic, ticker_topic)]
                await server.wait_subscribed(topics, 30)
                await server.run_market(market, 150, interval=0.002)
                getattr(server, fault)(BROKEN)
                # the market keeps moving; the book must be served again long before a stale reconnect
                for _ in range(200):
                    await server.run_market(market, 10, interval=0.002)
                    if snapshots() >= 2:
                        break
                assert snapshots() >= 2, "the book was never subscribed again"
                await server.run_market(market, 150, interval=0.002)
                n_trades = sum(
                    len(trade_ids(f)) for s in SYMBOLS for f in server.sent.get(trade_topic(s), [])
                )
                received = lambda: emitter.counters[("ccxt", "trades")].received  # noqa: E731
                await wait_until(lambda: received() >= n_trades, 30, "every trade")
                await asyncio.sleep(0.3)

            config.ingestion.exchange_options = {exchange: server.exchange_options()}  # the endpoints
            cfg = {exchange: lambda ex: server.set_markets(ex, list(SYMBOLS), market)}
            await run_pipeline(config, scenario, configure=cfg)
            return server
        finally:
            await server.stop()

    server = asyncio.run(main())
    events = rows(tmp_path, "ccxt", "events")
    gaps = [e for e in events if e["event_type"] == "gap"]
    assert [(e["symbol"], e["channel"]) for e in gaps] == [(BROKEN, "orderbook")]
    # served again within 2 s: the next snapshot row of the broken book after its gap
    updates = rows(tmp_path, "ccxt", "book_updates")
    after = sorted(
        u["capture_ts"]
        for u in updates
        if u["symbol"] == BROKEN and u["kind"] == "snapshot" and u["capture_ts"] > gaps[0]["capture_ts"]
    )
    assert after, "no snapshot row after the break"
    assert (after[0] - gaps[0]["capture_ts"]).total_seconds() < 2.0
    # the other feeds never noticed: one connect per feed, no disconnect but the final stop
    kinds = [e["event_type"] for e in events]
    assert "stale" not in kinds and "reconnect" not in kinds, kinds
    assert [
        e for e in events if e["event_type"] == "disconnect" and e["detail"] != "collector stopping"
    ] == []
    assert len([e for e in events if e["event_type"] == "connect"]) == 2 + 1 + 1  # a book feed per symbol
    trades = rows(tmp_path, "ccxt", "trades")
    for s in SYMBOLS:
        want = [i for f in server.sent[trade_topic(s)] for i in trade_ids(f)]
        assert [t["trade_id"] for t in trades if t["symbol"] == s] == want and len(want) > 20, s
    # every row of the broken book carries the venue's declared rule
    rules = {u["sync_rule"] for u in updates}
    assert rules == {{"okx": "prev_chain", "kraken": "none", "bybit": "increasing"}[exchange]}
