"""The fakes' REST trade history through the real ccxt clients: each venue's paging rule, limit and
rate-limit answer, over the very trades the fake streamed."""

from __future__ import annotations

import asyncio
from typing import Any

import ccxt
import ccxt.pro as ccxt_async
import pytest

from daedalus.devkit.simulator.binance import FakeBinance
from daedalus.devkit.simulator.bybit import FakeBybit
from daedalus.devkit.simulator.coinbase import FakeCoinbase
from daedalus.devkit.simulator.kraken import FakeKraken
from daedalus.devkit.simulator.market import SimulatedMarket
from daedalus.devkit.simulator.okx import FakeOkx
from daedalus.devkit.simulator.wsfake import market_structure

pytestmark = pytest.mark.network
SYMBOL = "BTC/USDT"


def _market() -> SimulatedMarket:
    return SimulatedMarket({SYMBOL: 60_000.0}, seed=2)


async def _fill(server: Any, market: SimulatedMarket, steps: int = 700) -> list:
    if isinstance(server, FakeBinance):
        await server.run_market(market, steps=steps, interval=0)
    else:
        await server.run_market(market, steps=steps)
    (tape,) = server.tape.trades.values()
    assert len(tape) > 250
    return tape


def test_binance_historical_trades_from_id_limit_and_refusals() -> None:
    async def main() -> None:
        market = _market()
        server = await FakeBinance().start()
        ex = ccxt_async.binance({"enableRateLimit": False})
        try:
            server.load_market(market)
            server.configure(ex, [SYMBOL])
            tape = await _fill(server, market)
            with pytest.raises(ccxt.AuthenticationError):  # historicalTrades needs a key
                await ex.fetch_trades(SYMBOL, None, 10, {"fetchTradesMethod": "publicGetHistoricalTrades"})
            ex.apiKey = "k"
            first = tape[100].trade_id
            got = await ex.fetch_trades(
                SYMBOL, None, 50, {"fetchTradesMethod": "publicGetHistoricalTrades", "fromId": first}
            )
            assert [int(t["id"]) for t in got] == [t.trade_id for t in tape[100:150]]
            assert [t["amount"] for t in got] == pytest.approx([t.qty for t in tape[100:150]])
            recent = await ex.fetch_trades(SYMBOL, None, 1000, {"fetchTradesMethod": "publicGetTrades"})
            assert [int(t["id"]) for t in recent] == [t.trade_id for t in tape[-1000:]]
            with pytest.raises(ccxt.BadRequest):
                await ex.fetch_trades(SYMBOL, None, 1001, {"fetchTradesMethod": "publicGetTrades"})
            server.tape.refuse(1, 429, retry_after=7)
            with pytest.raises(ccxt.DDoSProtection):
                await ex.fetch_trades(SYMBOL, None, 10, {"fetchTradesMethod": "publicGetTrades"})
            assert ex.last_response_headers["Retry-After"] == "7"
            server.tape.refuse(1, 418, retry_after=120)
            with pytest.raises(ccxt.DDoSProtection):
                await ex.fetch_trades(SYMBOL, None, 10, {"fetchTradesMethod": "publicGetTrades"})
        finally:
            await ex.close()
            await server.stop()

    asyncio.run(main())


def test_okx_history_trades_pages_back_by_trade_id() -> None:
    async def main() -> None:
        market = _market()
        server = await FakeOkx().start()
        ex = ccxt_async.okx({"enableRateLimit": False})
        try:
            server.load_market(market)
            server.configure(ex, [SYMBOL], market)
            tape = await _fill(server, market)
            params = {"method": "publicGetMarketHistoryTrades", "type": "1", "after": str(tape[250].trade_id)}
            got = await ex.fetch_trades(SYMBOL, None, 100, params)
            # ccxt sorts by time: the 100 trades older than tape[250]
            assert sorted(int(t["id"]) for t in got) == [t.trade_id for t in tape[150:250]]
            with pytest.raises(ccxt.BadRequest):
                await ex.fetch_trades(SYMBOL, None, 101, params)
            server.tape.refuse(1, 429, retry_after=2)
            with pytest.raises(ccxt.RateLimitExceeded):
                await ex.fetch_trades(SYMBOL, None, 100, params)
        finally:
            await ex.close()
            await server.stop()

    asyncio.run(main())


def test_bybit_recent_trade_serves_only_the_last_60() -> None:
    async def main() -> None:
        market = _market()
        server = await FakeBybit().start()
        ex = ccxt_async.bybit({"enableRateLimit": False})
        try:
            server.load_market(market)
            server.configure(ex, [SYMBOL], market)
            tape = await _fill(server, market)
            got = await ex.fetch_trades(SYMBOL, None, 60)
            assert sorted(t["id"] for t in got) == sorted(f"2290000000{t.trade_id}" for t in tape[-60:])
            with pytest.raises(ccxt.BadRequest):
                await ex.fetch_trades(SYMBOL, None, 61)
        finally:
            await ex.close()
            await server.stop()

    asyncio.run(main())


def test_kraken_trades_page_by_the_since_cursor() -> None:
    async def main() -> None:
        market = _market()
        server = await FakeKraken().start()
        ex = ccxt_async.kraken({"enableRateLimit": False})
        try:
            server.load_market(market)
            server.configure(ex, [SYMBOL], market)
            tape = await _fill(server, market)
            cursor = str(tape[99].ts_ms * 1_000_000)
            got = await ex.fetch_trades(SYMBOL, None, 100, {"since": cursor})
            assert [int(t["id"]) for t in got] == [t.trade_id for t in tape if t.ts_ms > tape[99].ts_ms][:100]
            server.tape.refuse(1)
            with pytest.raises(ccxt.DDoSProtection):
                await ex.fetch_trades(SYMBOL, None, 100, {"since": cursor})
        finally:
            await ex.close()
            await server.stop()

    asyncio.run(main())


def test_coinbase_market_trades_newest_first_within_start_end() -> None:
    async def main() -> None:
        market = SimulatedMarket({"BTC/USD": 60_000.0}, seed=2)
        server = await FakeCoinbase(market).start()
        ex = ccxt_async.coinbase({"enableRateLimit": False})
        try:
            ex.urls["api"]["rest"] = f"http://{server.host}:{server.port}"
            ex.set_markets([market_structure("BTC/USD", "BTC-USD", 0.01)])
            for _ in range(400):
                for ev in market.step():
                    await server.publish(ev)
            tape = server.tape.trades["BTC-USD"]
            start_s = tape[0].ts_ms // 1000 + 1
            end_s = start_s + 1
            got = await ex.fetch_trades("BTC/USD", start_s * 1000, 1000, {"until": end_s * 1000})
            want = [t.trade_id for t in tape if start_s * 1000 <= t.ts_ms < end_s * 1000]
            assert want and sorted(int(t["id"]) for t in got) == want
        finally:
            await ex.close()
            await server.stop()

    asyncio.run(main())
