"""The real ccxt.pro clients for OKX, Bybit and Kraken against fakes speaking each venue's documented
wire format on 127.0.0.1, through the real pipeline into bronze.

Per venue: every trade the fake sent is in bronze once (id, price, amount, aggressor side); the bronze
book after every applied frame equals a book rebuilt here from the frames the fake sent; a sequence gap
or corrupted checksum gives `gap` + `resync` events and a correct book afterwards; a dropped
connection reconnects.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fake_exchange import make_config, rows, run_pipeline, updates_match_snapshots, wait_until

from daedalus.collector.connection import Emitter
from daedalus.devkit.simulator.bybit import FakeBybit
from daedalus.devkit.simulator.kraken import FakeKraken
from daedalus.devkit.simulator.market import SimulatedMarket
from daedalus.devkit.simulator.okx import FakeOkx

pytestmark = pytest.mark.network
SYMBOLS = {"BTC/USDT": 60_000.0, "ETH/USDT": 3_000.0}
LEVELS = 20


@dataclass
class VenueCase:
    exchange: str
    fake: type
    fault: str  # the fake's method that breaks a book
    book_topic: Any
    trade_topic: Any
    ticker_topic: Any
    book_frame: Any  # frame -> (is_snapshot, bids, asks) as [(price, size)]
    trade_key: Any  # sent trade frame -> [(id, price, amount, side)]


def _okx_book(f: dict) -> tuple[bool, list, list]:
    d = f["data"][0]
    return (
        f["action"] == "snapshot",
        [(float(p), float(q)) for p, q, *_ in d["bids"]],
        [(float(p), float(q)) for p, q, *_ in d["asks"]],
    )


def _bybit_book(f: dict) -> tuple[bool, list, list]:
    d = f["data"]
    return (
        f["type"] == "snapshot",
        [(float(p), float(q)) for p, q in d["b"]],
        [(float(p), float(q)) for p, q in d["a"]],
    )


def _kraken_book(f: dict) -> tuple[bool, list, list]:
    d = f["data"][0]
    return (
        f["type"] == "snapshot",
        [(lv["price"], lv["qty"]) for lv in d["bids"]],
        [(lv["price"], lv["qty"]) for lv in d["asks"]],
    )


CASES = {
    "okx": VenueCase(
        "okx",
        FakeOkx,
        "skip_book_updates",
        lambda s: f"books:{s.replace('/', '-')}",
        lambda s: f"trades:{s.replace('/', '-')}",
        lambda s: f"tickers:{s.replace('/', '-')}",
        _okx_book,
        lambda f: [(t["tradeId"], float(t["px"]), float(t["sz"]), t["side"]) for t in f["data"]],
    ),
    "okx-checksum": VenueCase(
        "okx",
        FakeOkx,
        "corrupt_checksum",
        lambda s: f"books:{s.replace('/', '-')}",
        lambda s: f"trades:{s.replace('/', '-')}",
        lambda s: f"tickers:{s.replace('/', '-')}",
        _okx_book,
        lambda f: [(t["tradeId"], float(t["px"]), float(t["sz"]), t["side"]) for t in f["data"]],
    ),
    "bybit": VenueCase(
        "bybit",
        FakeBybit,
        "skip_book_updates",
        lambda s: f"orderbook.50.{s.replace('/', '')}",
        lambda s: f"publicTrade.{s.replace('/', '')}",
        lambda s: f"tickers.{s.replace('/', '')}",
        _bybit_book,
        lambda f: [(t["i"], float(t["p"]), float(t["v"]), t["S"].lower()) for t in f["data"]],
    ),
    "kraken": VenueCase(
        "kraken",
        FakeKraken,
        "corrupt_checksum",
        lambda s: f"book:{s}",
        lambda s: f"trade:{s}",
        lambda s: f"ticker:{s}",
        _kraken_book,
        lambda f: [(str(t["trade_id"]), t["price"], t["qty"], t["side"]) for t in f["data"]],
    ),
}


def rebuilt_states(frames: list[dict], parse: Any) -> list[tuple[list, list]]:
    """The book after every frame a client applies, rebuilt from what the fake sent: a snapshot resets;
    after a skipped or corrupted frame nothing is applied until the next snapshot."""
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    states = []
    valid = False
    for f in frames:
        if "__fault__" in f:
            valid = False
            continue
        snap, b, a = parse(f)
        if snap:
            bids, asks, valid = {}, {}, True
        elif not valid:
            continue
        for side, levels in ((bids, b), (asks, a)):
            for p, q in levels:
                if q == 0:
                    side.pop(p, None)
                else:
                    side[p] = q
        states.append((sorted(bids.items(), reverse=True)[:LEVELS], sorted(asks.items())[:LEVELS]))
    return states


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_venue_into_bronze(tmp_path: Path, case: str) -> None:
    vc = CASES[case]
    config = make_config(
        tmp_path,
        exchanges=[vc.exchange],
        symbols=list(SYMBOLS),
        channels=["trades", "orderbook", "ticker", "book_updates"],
        orderbook_levels=LEVELS,
        stale_after_seconds=60.0,  # the default: a resync must not need a stale reconnect
    )
    market = SimulatedMarket(SYMBOLS, seed=11, step_ms=10)
    broken = "BTC/USDT"

    async def main() -> tuple[Any, int]:
        server = await vc.fake().start()
        server.load_market(market)
        try:

            async def scenario(emitter: Emitter) -> None:
                topics = [t(s) for s in SYMBOLS for t in (vc.book_topic, vc.trade_topic, vc.ticker_topic)]
                await server.wait_subscribed(topics, 30)
                await server.run_market(market, 150, interval=0.002)
                getattr(server, vc.fault)(broken)  # a sequence gap or a bad checksum on one symbol
                await server.run_market(market, 150, interval=0.002)
                # the resync's resubscribe brings a second snapshot of the broken symbol
                await wait_until(
                    lambda: (
                        sum(
                            1
                            for f in server.sent[vc.book_topic(broken)]
                            if "__fault__" not in f and vc.book_frame(f)[0]
                        )
                        >= 2
                    ),
                    30,
                    "resync",
                )
                await server.run_market(market, 100, interval=0.002)
                before = server.connections_total
                await server.drop_connections()
                await wait_until(lambda: server.connections_total > before, 30, "reconnect")
                await server.wait_subscribed(topics, 30)
                await server.run_market(market, 100, interval=0.002)
                n_trades = sum(
                    len(vc.trade_key(f)) for s in SYMBOLS for f in server.sent.get(vc.trade_topic(s), [])
                )
                received = lambda: emitter.counters[("ccxt", "trades")].received  # noqa: E731
                await wait_until(lambda: received() >= n_trades, 30, "every trade")
                await asyncio.sleep(0.5)

            # the endpoints from ingestion.exchange_options, as a user's testnet; the markets from a hook
            config.ingestion.exchange_options = {vc.exchange: server.exchange_options()}
            cfg = {vc.exchange: lambda ex: server.set_markets(ex, list(SYMBOLS), market)}
            return await run_pipeline(config, scenario, configure=cfg), server
        finally:
            await server.stop()

    summary, server = asyncio.run(main())
    assert summary["collector"]["dropped"] == 0

    # trades: each one the fake sent, once, with id, price, amount and aggressor side
    trades = rows(tmp_path, "ccxt", "trades")
    assert all(t["exchange"] == vc.exchange for t in trades)
    for s in SYMBOLS:
        want = [k for f in server.sent[vc.trade_topic(s)] for k in vc.trade_key(f)]
        got = [(t["trade_id"], t["price"], t["amount"], t["side"]) for t in trades if t["symbol"] == s]
        assert got == want and len(want) > 20, s

    # books: one bronze row per applied frame, equal to the book rebuilt from the frames sent
    books = rows(tmp_path, "ccxt", "orderbook")
    for s in SYMBOLS:
        states = rebuilt_states(server.sent[vc.book_topic(s)], vc.book_frame)
        got = [
            ([(lv["price"], lv["size"]) for lv in b["bids"]], [(lv["price"], lv["size"]) for lv in b["asks"]])
            for b in books
            if b["symbol"] == s
        ]
        assert len(got) == len(states) > 100, s
        assert got == states, s
        final = server.books[s]
        assert got[-1] == (final.top("bid", LEVELS), final.top("ask", LEVELS)), s

    # book_updates: changed levels only; a snapshot per load the fake sent, each followed by a checkpoint;
    # the book replayed from them equals every top-20 `orderbook` row of the same run
    updates = rows(tmp_path, "ccxt", "book_updates")
    for s in SYMBOLS:
        mine = [u for u in updates if u["symbol"] == s]
        sent_snapshots = sum(
            1 for f in server.sent[vc.book_topic(s)] if "__fault__" not in f and vc.book_frame(f)[0]
        )
        kinds = [u["kind"] for u in sorted(mine, key=lambda r: (r["capture_ts"].value, r["seq"]))]
        assert kinds.count("snapshot") == sent_snapshots >= 2, s
        assert all(kinds[i + 1] == "checkpoint" for i, k in enumerate(kinds) if k == "snapshot"), s
        deltas = [u for u in mine if u["kind"] == "delta"]
        mean = sum(len(u["bids"]) + len(u["asks"]) for u in deltas) / max(len(deltas), 1)
        assert len(deltas) > 100 and mean < 5, (s, mean)
        snapshots_of_s = [b for b in books if b["symbol"] == s]
        assert updates_match_snapshots(mine, snapshots_of_s, LEVELS) == len(snapshots_of_s), s

    events = rows(tmp_path, "ccxt", "events")
    gaps = [(e["symbol"], e["channel"]) for e in events if e["event_type"] == "gap"]
    resyncs = [(e["symbol"], e["channel"]) for e in events if e["event_type"] == "resync"]
    assert gaps == resyncs == [(broken, "orderbook")]
    assert all(e["exchange"] == vc.exchange for e in events)
    kinds = [e["event_type"] for e in events]
    connects = [e for e in events if e["event_type"] == "connect"]
    assert len({e["conn_id"] for e in connects}) >= 2 * len(connects) // 2 and len(connects) >= 8
    assert any(e["event_type"] == "disconnect" and e["detail"] != "collector stopping" for e in events)
    assert "error" not in kinds, [e["detail"] for e in events if e["event_type"] == "error"]

    tickers = rows(tmp_path, "ccxt", "ticker")
    assert {t["symbol"] for t in tickers} == set(SYMBOLS)
    assert all(t["last"] is not None for t in tickers)


class _NullQueue:
    async def put(self, record: Any) -> bool:
        return True


def test_exchanges_from_config_each_get_their_venue_feeds(tmp_path: Path) -> None:
    """`ingestion.exchanges: [okx, bybit, kraken, binance]` builds one generic collector per exchange;
    the only per-exchange parts are the venue modules' parameters (no network: markets are set)."""
    from daedalus.collector.pipeline import build_collectors
    from daedalus.devkit.simulator.binance import FakeBinance

    config = make_config(
        tmp_path,
        exchanges=["okx", "bybit", "kraken", "binance"],
        symbols=["BTC/USDT"],
        channels=["trades", "orderbook", "ticker"],
    )
    fakes = {"okx": FakeOkx(port=1), "bybit": FakeBybit(port=1), "kraken": FakeKraken(port=1)}
    configure = {ex: (lambda e, f=f: f.configure(e, ["BTC/USDT"])) for ex, f in fakes.items()}
    configure["binance"] = lambda e: FakeBinance(port=1).configure(e, ["BTC/USDT"])

    async def main() -> dict:
        collectors = build_collectors(config, Emitter(_NullQueue()), configure=configure)
        out = {}
        for c in collectors:
            await c.prepare()
            out[c.exchange_id] = ({f.method for f in c.feeds}, type(c.venue).__module__, c.venue.book_limit)
            await c.close()
        return out

    got = asyncio.run(main())
    methods = {"watch_trades_for_symbols", "watch_order_book", "watch_tickers"}
    assert got == {
        "okx": (methods, "daedalus.collector.venue_okx", None),
        "bybit": (methods, "daedalus.collector.venue_bybit", 50),
        "kraken": (methods, "daedalus.collector.venue_kraken", 25),
        "binance": (methods, "daedalus.collector.venue_binance", None),
    }


def test_unsupported_exchange_channel_pair_fails_fast_with_one_line(tmp_path: Path) -> None:
    """bitstamp has no WebSocket ticker in ccxt.pro: the CLI says so in one line, before any network."""
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("daedalus")
    proc = subprocess.run(
        [
            str(exe),
            "collect",
            "--exchanges",
            "bitstamp",
            "--channels",
            "ticker",
            "--symbols",
            "BTC/USD",
            "--sources",
            "ccxt",
            "--seconds",
            "5",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    err = proc.stderr.strip()
    assert proc.returncode != 0
    assert (
        err == "error: ingestion.channels: exchange 'bitstamp' has no WebSocket ticker stream "
        "(ccxt.pro has none of watchTickers, watchTicker)"
    ), proc.stderr
