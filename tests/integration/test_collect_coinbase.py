"""The native Coinbase Advanced Trade collector against the fake Coinbase server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from fake_exchange import book_replay, make_config, rows, run_pipeline, updates_match_snapshots, wait_until

from daedalus.collector.connection import Emitter
from daedalus.devkit.simulator.coinbase import FakeCoinbase
from daedalus.devkit.simulator.market import SimulatedMarket

pytestmark = pytest.mark.network
PRODUCTS = ["BTC-USDT", "ETH-USDT"]
LEVELS = 10


def _received(emitter: Emitter, channel: str) -> int:
    c = emitter.counters.get(("coinbase", channel))
    return 0 if c is None else c.received


def run_coinbase(
    root: Path,
    fault: Callable[[FakeCoinbase, Emitter], Awaitable[None]],
    before_start: Callable[[FakeCoinbase], None] | None = None,
    **ingestion: Any,
) -> tuple[FakeCoinbase, SimulatedMarket, dict]:
    market = SimulatedMarket({"BTC/USDT": 60_000.0, "ETH/USDT": 3_000.0}, seed=3)
    config = make_config(
        root,
        sources=["coinbase"],
        orderbook_levels=LEVELS,
        coinbase={"products": PRODUCTS, "channels": ["level2", "market_trades", "ticker"]},
        **({"channels": ["ticker", "trades", "orderbook", "book_updates"]} | ingestion),
    )

    async def main() -> tuple[FakeCoinbase, dict]:
        server = await FakeCoinbase(market, heartbeat_interval=0.2).start()
        await server.run_market(
            steps=100, interval=0
        )  # trades before we subscribe: the snapshot replays them
        if before_start is not None:
            before_start(server)
        stop_market = asyncio.Event()
        try:

            async def scenario(emitter: Emitter) -> None:
                await server.wait_subscribed(["level2", "market_trades", "ticker", "heartbeats"])
                feeder = asyncio.ensure_future(server.run_market(interval=0.005, stop=stop_market))
                await wait_until(lambda: _received(emitter, "trades") > 20, 10, "first trades")
                await fault(server, emitter)
                stop_market.set()
                await feeder
                n = _received(emitter, "orderbook")
                await asyncio.sleep(0.3)  # let the last frames arrive
                assert _received(emitter, "orderbook") >= n

            summary = await run_pipeline(config, scenario, coinbase_url=server.url)
            return server, summary
        finally:
            stop_market.set()
            await server.stop()

    server, summary = asyncio.run(main())
    return server, market, summary


def _top(market: SimulatedMarket, symbol: str) -> tuple[list[dict], list[dict]]:
    book = market.books[symbol]
    return (
        [{"price": p, "size": q} for p, q in book.top("bid", LEVELS)],
        [{"price": p, "size": q} for p, q in book.top("ask", LEVELS)],
    )


def _check_final_books(root: Path, market: SimulatedMarket) -> None:
    books = rows(root, "coinbase", "orderbook")
    updates = rows(root, "coinbase", "book_updates")
    for symbol in ("BTC/USDT", "ETH/USDT"):
        mine = [b for b in books if b["symbol"] == symbol]
        last = mine[-1]
        assert (last["bids"], last["asks"]) == _top(market, symbol), symbol
        # book_updates: every top-10 row equals the book replayed from the updates before it, and the
        # replay ends at the exchange's whole book, not only its top
        ups = sorted(
            (u for u in updates if u["symbol"] == symbol), key=lambda r: (r["capture_ts"].value, r["seq"])
        )
        assert updates_match_snapshots(ups, mine, LEVELS) == len(mine) > 1, symbol
        *_, (_, bids, asks) = book_replay(ups)
        book = market.books[symbol]
        assert (bids, asks) == (book.bids, book.asks) and len(bids) > LEVELS, symbol
        deltas = [u for u in ups if u["kind"] == "delta"]
        assert deltas and all(
            u["first_update_id"] is None and u["last_update_id"] is not None for u in deltas
        )
        assert sum(len(u["bids"]) + len(u["asks"]) for u in deltas) / len(deltas) < 5  # changed levels only


def test_book_trades_ticker_heartbeats(tmp_path: Path) -> None:
    async def fault(server: FakeCoinbase, emitter: Emitter) -> None:
        await asyncio.sleep(0.5)

    server, market, summary = run_coinbase(tmp_path, fault)
    _check_final_books(tmp_path, market)  # snapshot + every update = the exchange's book

    trades = rows(tmp_path, "coinbase", "trades")
    ids = [t["trade_id"] for t in trades]
    assert len(ids) == len(set(ids))  # the snapshot's replayed trades are not duplicated
    published = {str(t.trade_id): t for t in server.trade_log}
    assert set(ids) <= set(published) and len(ids) > 50
    for symbol in ("BTC/USDT", "ETH/USDT"):
        # from the oldest trade the subscription snapshot replayed on, every trade, once
        mine = [int(t["trade_id"]) for t in trades if t["symbol"] == symbol]
        want = sorted(int(i) for i, t in published.items() if t.symbol == symbol and int(i) >= min(mine))
        assert sorted(mine) == want
    for t in trades:
        src = published[t["trade_id"]]
        # bronze keeps Coinbase's raw side, the maker's order side (silver maps it to the aggressor)
        assert t["side"] == ("BUY" if src.buyer_is_maker else "SELL")
        assert (t["price"], t["amount"]) == (src.price, src.qty)
        assert t["timestamp"].value == src.ts_ms * 1_000_000
    tickers = rows(tmp_path, "coinbase", "ticker")
    assert tickers and all(t["bid"] < t["ask"] for t in tickers)
    kinds = [e["event_type"] for e in rows(tmp_path, "coinbase", "events")]
    assert kinds.count("connect") == 1 and kinds.count("subscribe_ack") == 4
    assert "gap" not in kinds and "heartbeats" not in {c.split("/")[1] for c in summary["per_stream"]}


def test_skipped_sequence_num_is_a_gap_and_resubscribes_level2(tmp_path: Path) -> None:
    async def fault(server: FakeCoinbase, emitter: Emitter) -> None:
        server.skip_sequence(2)
        await wait_until(
            lambda: sum(1 for r in server.subscribe_requests if r["type"] == "unsubscribe") == 1,
            10,
            "level2 unsubscribe",
        )
        await asyncio.sleep(0.5)

    server, market, _ = run_coinbase(tmp_path, fault)
    events = rows(tmp_path, "coinbase", "events")
    gaps = [e for e in events if e["event_type"] == "gap"]
    assert len(gaps) == 1 and gaps[0]["count"] == 2
    resyncs = [e for e in events if e["event_type"] == "resync"]
    assert sorted(e["symbol"] for e in resyncs) == ["BTC/USDT", "ETH/USDT"]
    reqs = [(r["type"], r["channel"]) for r in server.subscribe_requests]
    assert reqs[-2:] == [("unsubscribe", "level2"), ("subscribe", "level2")]
    assert server.connections_total == 1  # a resubscribe, not a reconnect
    # each product's fresh snapshot is a bronze row (with its checkpoint) after its resync event
    updates = rows(tmp_path, "coinbase", "book_updates")
    for e in resyncs:
        after = [
            u["kind"]
            for u in sorted(updates, key=lambda r: r["seq"])
            if u["symbol"] == e["symbol"] and u["capture_ts"] > e["capture_ts"]
        ]
        assert after[:2] == ["snapshot", "checkpoint"], e["symbol"]
    _check_final_books(tmp_path, market)  # the fresh snapshot repaired the book


async def _drop_and_reconnect(
    server: FakeCoinbase, emitter: Emitter, channel: str, reconnect_s: float
) -> None:
    """Drop the one connection abruptly (1006), then wait for the reconnect and 20 more `channel` rows."""
    await server.drop_connections(1006)
    await wait_until(
        lambda: server.connections_total == 2 and len(server.peers) == 1, reconnect_s, "reconnect"
    )
    n = _received(emitter, channel)
    await wait_until(lambda: _received(emitter, channel) > n + 20, 10, f"{channel} after reconnect")


def test_abrupt_close_reconnects(tmp_path: Path) -> None:
    async def fault(server: FakeCoinbase, emitter: Emitter) -> None:
        await _drop_and_reconnect(server, emitter, "orderbook", reconnect_s=10)

    server, market, _ = run_coinbase(tmp_path, fault)
    events = rows(tmp_path, "coinbase", "events")
    drops = [e for e in events if e["event_type"] == "disconnect" and e["close_code"] == 1006]
    # one drop of one connection, named once per series it carried (docs/features.md "Time")
    assert len({e["conn_id"] for e in drops}) == 1
    assert sorted((e["symbol"], e["channel"]) for e in drops) == sorted(
        (s, c) for s in ("BTC/USDT", "ETH/USDT") for c in ("book_updates", "orderbook", "ticker", "trades")
    )
    assert [e["event_type"] for e in events].count("connect") == 2
    _check_final_books(tmp_path, market)


def test_handshake_429_retry_after_is_honoured(tmp_path: Path) -> None:
    async def fault(server: FakeCoinbase, emitter: Emitter) -> None:
        await asyncio.sleep(0.2)

    server, market, _ = run_coinbase(tmp_path, fault, before_start=lambda s: s.reject_handshakes(1, 429, 1.0))
    limited = [e for e in rows(tmp_path, "coinbase", "events") if e["event_type"] == "rate_limited"]
    # one refused handshake, named once per series the session was to carry
    assert len({e["conn_id"] for e in limited}) == 1 and all("429" in e["detail"] for e in limited)
    assert all(e["symbol"] is not None for e in limited)
    assert server.handshakes[1] - server.handshakes[0] >= 1.0  # waited Retry-After, not the 0.05 s backoff
    _check_final_books(tmp_path, market)


def test_default_channels_collect_one_book_channel(tmp_path: Path) -> None:
    """The default `ingestion.channels` (ticker, trades, book_updates): level2 lands as book_updates
    only, with the venue's sync rule; no top-N orderbook rows beside it."""
    from daedalus.config import IngestionConfig

    default = IngestionConfig().channels
    assert default == ["ticker", "trades", "book_updates"]

    async def fault(server: FakeCoinbase, emitter: Emitter) -> None:
        await asyncio.sleep(0.5)

    run_coinbase(tmp_path, fault, channels=default)
    assert rows(tmp_path, "coinbase", "orderbook") == []
    updates = rows(tmp_path, "coinbase", "book_updates")
    assert len(updates) > 50 and {u["sync_rule"] for u in updates} == {"increasing"}


@pytest.mark.parametrize("page_limit", [1000, 100])
def test_disconnect_gap_is_healed_from_rest_market_trades(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, page_limit: int
) -> None:
    """A drop and a refused reconnect leave a hole longer than the 50 trades the resubscription
    replays: the healer fetches it from the REST market trades (time windows), and bronze trades,
    socket + REST, are the fake's tape: 0 missing, 0 duplicated, one `backfill` event `complete` per
    product. With 100 trades a page (the fake makes up to ~60 a second) the gap takes several
    windows, each moved down to the second of its page's oldest trade, whose trades come again and
    are kept once."""
    from daedalus.collector import coinbase_heal

    monkeypatch.setattr(coinbase_heal, "PAGE_LIMIT", page_limit)  # the venue's page size, smaller

    async def fault(server: FakeCoinbase, emitter: Emitter) -> None:
        server.reject_handshakes(1, 429, 2.0)  # the outage lasts the Retry-After: ~2 s of trades
        await _drop_and_reconnect(server, emitter, "trades", reconnect_s=15)

    server, market, _ = run_coinbase(tmp_path, fault)
    trades = rows(tmp_path, "coinbase", "trades")
    ids = [t["trade_id"] for t in trades]
    assert len(ids) == len(set(ids))  # nothing written twice (socket replay, REST pages)
    published = {str(t.trade_id): t for t in server.trade_log}
    healed = [t for t in trades if t["source"] == "rest"]
    backfills = [e for e in rows(tmp_path, "coinbase", "events") if e["event_type"] == "backfill"]
    assert sorted(e["symbol"] for e in backfills) == ["BTC/USDT", "ETH/USDT"]
    for symbol in ("BTC/USDT", "ETH/USDT"):
        mine = sorted(int(t["trade_id"]) for t in trades if t["symbol"] == symbol)
        want = sorted(int(i) for i, t in published.items() if t.symbol == symbol and min(mine) <= int(i))
        assert mine == want  # every trade from the first the subscription replayed, once
        assert mine == list(range(mine[0], mine[-1] + 1))  # the fake numbers a product's trades 1 by 1
        rest = [t for t in healed if t["symbol"] == symbol]
        (event,) = [e for e in backfills if e["symbol"] == symbol]
        assert event["detail"].startswith("complete") and event["count"] == len(rest) > 50, event
    for t in healed:  # the native row shape: raw maker side, the trade's own time
        src = published[t["trade_id"]]
        assert t["side"] == ("BUY" if src.buyer_is_maker else "SELL")
        assert (t["price"], t["amount"]) == (src.price, src.qty)
        assert t["timestamp"].value == src.ts_ms * 1_000_000
    pages = [q for p, q in server.tape.requests if p.endswith("/ticker")]  # it came over REST
    assert {q["limit"] for q in pages} == {str(page_limit)}
    if page_limit < 1000:  # > 50 rows a product in pages of 100, each repeating its oldest second
        assert len(pages) >= 3
