"""The real ccxt.pro client against the fake Binance server replaying the real capture, into bronze."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from fake_exchange import make_config, rows, run_pipeline, wait_until

from daedalus.collector.ccxt_collector import CcxtCollector
from daedalus.collector.connection import Emitter
from daedalus.collector.pipeline import build_collectors
from daedalus.devkit.simulator.binance import FakeBinance
from daedalus.devkit.simulator.replay import load_capture
from daedalus.errors import ConfigError, ExchangeError

pytestmark = pytest.mark.network
SYMBOL = "BTC/USDT"


@pytest.mark.slow
@pytest.mark.parametrize("exchange", ["binance", "binanceus"])  # binanceus: the same protocol, other urls
def test_replay_into_bronze_equals_capture(tmp_path: Path, capture_path: Path, exchange: str) -> None:
    capture = load_capture(capture_path)
    want_trades = capture.trades()
    config = make_config(
        tmp_path, exchanges=[exchange], symbols=[SYMBOL], channels=["trades", "orderbook", "ticker"]
    )

    async def main() -> dict:
        server = await FakeBinance().start()
        try:

            async def scenario(emitter: Emitter) -> None:
                await server.wait_subscribed(["btcusdt@trade", "btcusdt@depth@100ms", "btcusdt@ticker"])
                await server.replay(capture, speed=0)
                trades = lambda: emitter.counters[("ccxt", "trades")].received  # noqa: E731
                await wait_until(lambda: trades() >= len(want_trades), 60, "every trade")

            return await run_pipeline(
                config, scenario, configure={exchange: lambda ex: server.configure(ex, [SYMBOL])}
            )
        finally:
            await server.stop()

    summary = asyncio.run(main())
    assert summary["collector"]["dropped"] == 0
    # the health file's last write happens after every segment closed
    health = json.loads(Path(summary["health_file"]).read_text())
    assert health["collector"] == summary["collector"]
    assert health["segments_closed"] >= 4 and health["queue_depth"] == 0

    # trades: one for one, in order: ids, prices, sizes, aggressor side (m=true → seller aggressed)
    got = rows(tmp_path, "ccxt", "trades")
    assert [r["trade_id"] for r in got] == [str(t["t"]) for t in want_trades]
    assert [r["price"] for r in got] == [float(t["p"]) for t in want_trades]
    assert [r["amount"] for r in got] == [float(t["q"]) for t in want_trades]
    assert [r["side"] for r in got] == ["sell" if t["m"] else "buy" for t in want_trades]
    assert [r["timestamp"].value // 1_000_000 for r in got] == [t["T"] for t in want_trades]
    assert all(r["exchange"] == exchange and r["symbol"] == SYMBOL for r in got)
    seqs = [r["seq"] for r in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # per-connection counter, one connection

    # order book: the best bid/ask of every bronze snapshot equals the capture's bookTicker with the same
    # update id (ccxt's nonce = the last applied u)
    books = rows(tmp_path, "ccxt", "orderbook")
    by_u = {bt["u"]: bt for bt in capture.book_tickers()}
    matched = 0
    for b in books:
        bt = by_u.get(b["nonce"])
        if bt is None:
            continue
        matched += 1
        assert (b["bids"][0]["price"], b["bids"][0]["size"]) == (float(bt["b"]), float(bt["B"])), b["nonce"]
        assert (b["asks"][0]["price"], b["asks"][0]["size"]) == (float(bt["a"]), float(bt["A"])), b["nonce"]
        assert len(b["bids"]) == len(b["asks"]) == config.ingestion.orderbook_levels
    # every diff applied after the client's REST snapshot (the first row) gives one row, so every
    # shared update id is checked
    applied = [d["u"] for d in capture.depth_updates() if d["u"] >= books[0]["nonce"]]
    assert matched == sum(1 for u in applied if u in by_u) > 500
    nonces = [b["nonce"] for b in books]
    assert nonces == sorted(nonces) and set(applied) <= set(nonces)

    tickers = rows(tmp_path, "ccxt", "ticker")
    assert len(tickers) > 100 and all(t["bid"] < t["ask"] for t in tickers)
    events = rows(tmp_path, "ccxt", "events")
    kinds = [e["event_type"] for e in events]
    assert kinds.count("connect") == 3 and kinds.count("subscribe_ack") == 3
    assert not {"gap", "resync", "overflow", "error", "stale"} & set(kinds)


def _collector(exchange: str, symbols: list[str], channels: list[str], configure=None) -> CcxtCollector:
    cfg = make_config(Path("/nonexistent"), exchanges=[exchange], symbols=symbols)

    class _Q:
        async def put(self, record) -> bool:
            return True

    return CcxtCollector(exchange, symbols, channels, cfg.ingestion, Emitter(_Q()), configure=configure)


def test_bad_config_fails_fast_with_one_line(tmp_path: Path) -> None:
    config = make_config(tmp_path, exchanges=["binanse"])

    class _Q:
        async def put(self, record) -> bool:
            return True

    with pytest.raises(ExchangeError, match=r"unknown ccxt.pro exchange 'binanse'.*binance") as e:
        build_collectors(config, Emitter(_Q()))
    assert "\n" not in str(e.value)

    def markets(ex) -> None:
        FakeBinance(port=1).configure(ex, [SYMBOL])

    c = _collector("binance", ["DOGE/EUR"], ["trades"], configure=markets)
    with pytest.raises(ExchangeError, match=r"'DOGE/EUR' is not a market of binance"):
        asyncio.run(c.prepare())

    # an exchange without a WebSocket order book: no ccxt.pro exchange is known to lack one for sure,
    # so take one and switch its `has` flag off as the exchange would declare it
    def no_book(ex) -> None:
        markets(ex)
        ex.has["watchOrderBook"] = False

    c = _collector("binance", [SYMBOL], ["orderbook"], configure=no_book)
    with pytest.raises(ExchangeError, match=r"exchange 'binance' has no WebSocket orderbook stream"):
        asyncio.run(c.prepare())
    with pytest.raises(ConfigError):
        make_config(tmp_path, channels=["candles"])


def test_combined_stream_endpoint_wraps_messages() -> None:
    """`/stream?streams=a/b` (Binance's combined streams): subscribed at connect, messages wrapped."""
    import aiohttp

    async def main() -> list[dict]:
        server = await FakeBinance().start()
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.ws_connect(
                    f"http://127.0.0.1:{server.port}/stream?streams=btcusdt@trade/btcusdt@bookTicker"
                ) as ws,
            ):
                await server.wait_subscribed(["btcusdt@trade", "btcusdt@bookTicker"])
                await server.publish("btcusdt@trade", {"e": "trade", "s": "BTCUSDT", "t": 1})
                await server.publish(
                    "ethusdt@trade", {"e": "trade", "s": "ETHUSDT", "t": 2}
                )  # not subscribed
                first = await ws.receive_json(timeout=30)
                await ws.send_json({"method": "SUBSCRIBE", "params": ["ethusdt@trade"], "id": 7})
                ack = await ws.receive_json(timeout=30)
                await server.publish("ethusdt@trade", {"e": "trade", "s": "ETHUSDT", "t": 3})
                return [first, ack, await ws.receive_json(timeout=30)]
        finally:
            await server.stop()

    first, ack, second = asyncio.run(main())
    assert first == {"stream": "btcusdt@trade", "data": {"e": "trade", "s": "BTCUSDT", "t": 1}}
    assert ack == {"result": None, "id": 7}
    assert second["data"]["t"] == 3
