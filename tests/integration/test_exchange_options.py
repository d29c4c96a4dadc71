"""`ingestion.exchange_options.<exchange id>`: urls, options, sandbox and constructor params reach the
real ccxt.pro exchange object, after the venue's own options (the user's win); the fake Binance is
reached through configured urls alone (the hook only gives markets, which the fake does not serve)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fake_exchange import make_config, rows, run_pipeline, wait_until

from daedalus.collector.ccxt_collector import CcxtCollector
from daedalus.collector.connection import Emitter
from daedalus.collector.pipeline import build_collectors
from daedalus.devkit.simulator.binance import FakeBinance, spot_market
from daedalus.devkit.simulator.replay import load_capture
from daedalus.errors import ConfigError

SYMBOL = "BTC/USDT"


class _Q:
    async def put(self, record) -> bool:
        return True


def _exchange(tmp_path: Path, exchange: str, options: dict):
    cfg = make_config(tmp_path, exchanges=[exchange], symbols=[SYMBOL], exchange_options={exchange: options})
    return CcxtCollector(exchange, [SYMBOL], ["trades"], cfg.ingestion, Emitter(_Q())).exchange


def test_options_reach_the_ccxt_object_and_win_over_the_venue(tmp_path: Path) -> None:
    plain = _exchange(tmp_path, "binance", {})
    assert plain.options["watchOrderBookLimit"] == 1000  # the venue's own (collector/venues.py)
    ex = _exchange(
        tmp_path,
        "binance",
        {
            "options": {"defaultType": "future", "watchOrderBookLimit": 100, "watchOrderBook": {"depth": 5}},
            "params": {"timeout": 1234, "wsProxy": "http://127.0.0.1:3128"},
        },
    )
    assert ex.options["defaultType"] == "future" and plain.options["defaultType"] != "future"
    assert ex.options["watchOrderBookLimit"] == 100  # the user's value over the venue's
    assert ex.options["watchOrderBook"]["depth"] == 5
    assert ex.options["watchOrderBook"]["maxRetries"] == 1  # merged, ours kept
    assert ex.timeout == 1234 and plain.timeout != 1234
    assert ex.wsProxy == "http://127.0.0.1:3128"


def test_sandbox_swaps_to_the_testnet_and_explicit_urls_still_win(tmp_path: Path) -> None:
    ex = _exchange(
        tmp_path, "binance", {"sandbox": True, "urls": {"api": {"ws": {"spot": "ws://127.0.0.1:9/ws"}}}}
    )
    assert ex.isSandboxModeEnabled
    assert ex.urls["api"]["ws"]["margin"] == "wss://stream.testnet.binance.vision/ws"  # the testnet's
    assert ex.urls["api"]["ws"]["spot"] == "ws://127.0.0.1:9/ws"  # the user's
    assert not _exchange(tmp_path, "binance", {}).isSandboxModeEnabled
    with pytest.raises(ConfigError, match=r"exchange_options.bitfinex.sandbox: ccxt knows no testnet") as e:
        _exchange(tmp_path, "bitfinex", {"sandbox": True})
    assert "\n" not in str(e.value)


def test_options_of_an_exchange_not_collected_is_one_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        make_config(tmp_path, exchanges=["binance"], exchange_options={"okx": {"sandbox": True}})
    assert str(e.value) == (
        "defaults: invalid value for 'ingestion.exchange_options': "
        "Value error, 'okx' is not in ingestion.exchanges (binance)"
    )
    with pytest.raises(ConfigError, match="unknown key 'ingestion.exchange_options.binance.sandbx'"):
        make_config(tmp_path, exchanges=["binance"], exchange_options={"binance": {"sandbx": True}})


@pytest.mark.network
def test_collect_from_the_fake_through_configured_urls(tmp_path: Path, capture_path: Path) -> None:
    capture = load_capture(capture_path)
    want = [str(t["t"]) for t in capture.trades()]

    async def main() -> dict:
        server = await FakeBinance().start()
        config = make_config(
            tmp_path,
            exchanges=["binance"],
            symbols=[SYMBOL],
            channels=["trades"],
            exchange_options={"binance": server.exchange_options()},
        )
        try:

            async def scenario(emitter: Emitter) -> None:
                await server.wait_subscribed(["btcusdt@trade"])
                await server.replay(capture, speed=0)
                received = lambda: emitter.counters[("ccxt", "trades")].received  # noqa: E731
                await wait_until(lambda: received() >= len(want), 60, "every trade")

            markets_only = {"binance": lambda ex: ex.set_markets([spot_market(SYMBOL)])}
            return await run_pipeline(config, scenario, configure=markets_only)
        finally:
            await server.stop()

    summary = asyncio.run(main())
    assert summary["collector"]["dropped"] == 0
    assert [r["trade_id"] for r in rows(tmp_path, "ccxt", "trades")] == want


def test_without_the_urls_the_collector_does_not_reach_the_fake(tmp_path: Path) -> None:
    # the control: the same exchange with no exchange_options keeps binance's public urls
    config = make_config(tmp_path, exchanges=["binance"], symbols=[SYMBOL], channels=["trades"])
    (c,) = build_collectors(config, Emitter(_Q()))
    assert c.exchange.urls["api"]["ws"]["spot"].startswith("wss://stream.binance.com")
