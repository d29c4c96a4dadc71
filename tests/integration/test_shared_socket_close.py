"""No silent loss when a feed's ended session closes a socket other feeds share (issue 24).

OKX serves every feed of the collector (trades, tickers, one book per symbol) on one ccxt client. A
book checksum resync does not close it (test_book_recovery.py), but a feed whose session ends does
(`_close_feed`: a stale stream here, equally an error or an age limit). The other feeds on that
socket lose the trades the venue sends until they subscribe again on a new one, so each must record
the break (a `disconnect` of its own series), whether its watch call was waiting on the closed client
(ccxt cancels it) or had just returned and would otherwise subscribe again unnoticed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fake_exchange import make_config, rows, run_pipeline, wait_until

from daedalus.collector.connection import Emitter
from daedalus.devkit.simulator.market import SimulatedMarket
from daedalus.devkit.simulator.okx import FakeOkx

pytestmark = pytest.mark.network
SYMBOLS = {"BTC/USDT": 60_000.0, "ETH/USDT": 3_000.0}
MUTED_BOOK = "books:ETH-USDT"
ROUNDS = 3  # each round stalls the ETH book once; every round must break every feed on the socket


def _trade_ids(server: FakeOkx, symbol: str) -> list[str]:
    """Every trade the venue made (published to a subscriber or not)."""
    return [str(t.trade_id) for t in server.tape.trades.get(symbol.replace("/", "-"), [])]


@pytest.mark.slow
async def _trades_flow_again(
    server: FakeOkx, emitter: Emitter, market: SimulatedMarket, topics: list, what: str
) -> None:
    """Once the collector has subscribed again: more than 20 of the next 50 trades are received."""
    await server.wait_subscribed(topics, 30)
    n = emitter.counters[("ccxt", "trades")].received
    await server.run_market(market, 50, interval=0.002)
    await wait_until(lambda: emitter.counters[("ccxt", "trades")].received > n + 20, 30, what)
    await asyncio.sleep(0.3)


def test_feeds_sharing_a_closed_socket_each_record_a_break(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        exchanges=["okx"],
        symbols=list(SYMBOLS),
        channels=["trades", "ticker", "book_updates"],
        stale_after_seconds=1.0,
        heal_seconds=0.0,  # what is lost stays lost: the events alone must show it
    )
    market = SimulatedMarket(SYMBOLS, seed=7, step_ms=10)
    topics = [f"{c}:{s.replace('/', '-')}" for s in SYMBOLS for c in ("books", "trades", "tickers")]

    async def main() -> FakeOkx:
        server = await FakeOkx().start()
        server.load_market(market)
        try:

            async def scenario(emitter: Emitter) -> None:
                for _ in range(ROUNDS):
                    await server.wait_subscribed(topics, 30)
                    await server.run_market(market, 50, interval=0.002)
                    before = server.connections_total
                    for peer in server.peers:  # the venue stops serving one book: that feed goes stale
                        peer.topics.discard(MUTED_BOOK)
                    # trades flow flat out meanwhile (here the other feeds' waiting watch calls are cancelled by
                    # ccxt's close; the next test forces the feed between watch calls)
                    while server.connections_total == before:
                        await server.run_market(market, 5, interval=0)
                        await asyncio.sleep(0.001)
                await _trades_flow_again(server, emitter, market, topics, "trades on the last socket")

            config.ingestion.exchange_options = {"okx": server.exchange_options()}
            await run_pipeline(
                config, scenario, configure={"okx": lambda ex: server.set_markets(ex, list(SYMBOLS), market)}
            )
            return server
        finally:
            await server.stop()

    server = asyncio.run(main())
    events = rows(tmp_path, "ccxt", "events")
    breaks = [
        e
        for e in events
        if e["event_type"] in ("disconnect", "stale", "reconnect") and e["detail"] != "collector stopping"
    ]
    stale = [e for e in breaks if e["event_type"] == "stale"]
    assert [(e["symbol"], e["channel"]) for e in stale] == [("ETH/USDT", "orderbook")] * ROUNDS, stale
    # every series the closed socket carried breaks once per round, not only the stale book
    per_series: dict[tuple[str, str], int] = {}
    for e in breaks:
        per_series[(e["symbol"], e["channel"])] = per_series.get((e["symbol"], e["channel"]), 0) + 1
    want = {(s, c): ROUNDS for s in SYMBOLS for c in ("trades", "ticker", "orderbook")}
    want[("BTC/USDT", "book_updates")] = ROUNDS  # a book feed's break names both its series
    assert per_series == want, per_series
    # every trade the venue sent is in bronze or falls in a recorded break of its series
    trades = rows(tmp_path, "ccxt", "trades")
    for s in SYMBOLS:
        got = {t["trade_id"] for t in trades if t["symbol"] == s}
        assert got <= set(_trade_ids(server, s)) and len(got) > 100, s


@pytest.mark.slow
def test_feed_between_watch_calls_when_its_socket_closes_records_a_break(tmp_path: Path) -> None:
    """The exact race: one book's watch fails (an OKX error answering it, id = ccxt's hash) and the
    trades right behind it in the same read resolve the trades watch, so that feed is between watch
    calls when the failed feed closes the socket: ccxt cancels nothing of it, and it subscribed again
    on a new socket without a break while the venue's trades in between were lost."""
    config = make_config(
        tmp_path,
        exchanges=["okx"],
        symbols=list(SYMBOLS),
        channels=["trades", "book_updates"],
        stale_after_seconds=60.0,  # no stale reconnect can stand in for the break
        heal_seconds=0.0,
    )
    market = SimulatedMarket(SYMBOLS, seed=9, step_ms=10)
    topics = [f"{c}:{s.replace('/', '-')}" for s in SYMBOLS for c in ("books", "trades")]
    refusal = {
        "event": "error",
        "code": "50026",
        "msg": "System error, please try again later.",
        "id": "books:ETH/USDT",
    }

    async def main() -> FakeOkx:
        server = await FakeOkx().start()
        server.load_market(market)
        try:

            async def scenario(emitter: Emitter) -> None:
                await server.wait_subscribed(topics, 30)
                await server.run_market(market, 50, interval=0.002)
                before = server.connections_total
                for peer in list(server.peers):
                    await server.send(peer, refusal)
                for _ in range(10):  # trades right behind it, in the same socket read (no yield)
                    for ev in market.step():
                        await server.publish_market_event(ev, market)
                # the venue goes on trading while the collector subscribes again
                while server.connections_total == before:
                    await server.run_market(market, 2, interval=0.002)
                await _trades_flow_again(server, emitter, market, topics, "trades on the new socket")

            config.ingestion.exchange_options = {"okx": server.exchange_options()}
            cfg = {"okx": lambda ex: server.set_markets(ex, list(SYMBOLS), market)}
            await run_pipeline(config, scenario, configure=cfg)
            return server
        finally:
            await server.stop()

    server = asyncio.run(main())
    events = rows(tmp_path, "ccxt", "events")
    breaks = [
        (e["symbol"], e["channel"])
        for e in events
        if e["event_type"] == "disconnect" and e["detail"] != "collector stopping"
    ]
    # the refused book, the other book on the socket, and each symbol of the trades feed: once each
    # the refused book names its failing channel; the feeds its socket took along, every series
    assert sorted(breaks) == sorted(
        [("ETH/USDT", "orderbook"), ("BTC/USDT", "orderbook"), ("BTC/USDT", "book_updates")]
        + [(s, "trades") for s in SYMBOLS]
    ), breaks
    taken = [
        e
        for e in events
        if e["event_type"] == "disconnect"
        and e["channel"] == "trades"
        and e["detail"] != "collector stopping"
    ]
    assert all("closed as orderbook:ETH/USDT's session ended" in e["detail"] for e in taken), [
        e["detail"] for e in taken
    ]
    trades = rows(tmp_path, "ccxt", "trades")
    for s in SYMBOLS:
        sent = _trade_ids(server, s)
        got = [t["trade_id"] for t in trades if t["symbol"] == s]
        assert got and set(got) <= set(sent), s
