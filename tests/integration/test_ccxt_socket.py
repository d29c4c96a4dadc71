"""ccxt.pro's ping-pong keepalive through a step of the host's wall clock (issue 24): the real ccxt
client of the collector (collector/ccxt_socket.py) against the fake Bybit on 127.0.0.1.

The wall clock is stepped in-process (`time.time_ns`, which ccxt's `Exchange.milliseconds()` and the
receive clock read) while the monotonic clock runs on, as an NTP step does; the soak does the same
to a whole collector through libfaketime (`daedalus bench soak --faults host_clock_step`)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fake_exchange import libfaketime_or_skip

from daedalus.devkit.simulator.bybit import FakeBybit
from daedalus.devkit.simulator.market import SimulatedMarket

KEEPALIVE_MS = 200  # ccxt pings every 0.2 s and gives up after 2 missed pongs (0.4 s)
SYMBOL = "BTC/USDT"


class SilentBybit(FakeBybit):
    """Bybit that stops answering pings when told (a dead path that still looks open)."""

    answer_pings = True

    async def on_request(self, peer: Any, req: Any) -> None:
        if isinstance(req, dict) and req.get("op") == "ping" and not self.answer_pings:
            return
        await super().on_request(peer, req)


async def _connected(server: SilentBybit) -> tuple[Any, Any]:
    from daedalus.collector.ccxt_collector import stamped_exchange_class

    market = SimulatedMarket({SYMBOL: 60_000.0}, seed=3)
    server.load_market(market)
    ex = stamped_exchange_class("bybit")()
    server.configure(ex, [SYMBOL], market)
    ex.streaming = {**ex.streaming, "keepAlive": KEEPALIVE_MS}
    await ex.watch_order_book(SYMBOL, 50)
    (client,) = ex.clients.values()
    return ex, client


def _step_wall_clock(monkeypatch: pytest.MonkeyPatch, seconds: int) -> None:
    real = time.time_ns
    monkeypatch.setattr(time, "time_ns", lambda: real() + seconds * 1_000_000_000)


@pytest.mark.parametrize("step_s", [120, -120])
def test_a_wall_clock_step_ends_no_socket(monkeypatch: pytest.MonkeyPatch, step_s: int) -> None:
    asyncio.run(_step_and_back(monkeypatch, step_s))


async def _step_and_back(monkeypatch: pytest.MonkeyPatch, step_s: int) -> None:
    server = await SilentBybit().start()
    ex = None
    try:
        ex, client = await _connected(server)
        await asyncio.sleep(3 * KEEPALIVE_MS / 1000)  # pongs are flowing
        assert client.lastPong is not None
        _step_wall_clock(monkeypatch, step_s)
        await asyncio.sleep(8 * KEEPALIVE_MS / 1000)  # many pings past the step
        # before: lastPong stayed on the old wall clock, so a +120 s step read as 120 s with no
        # pong (RequestTimeout, the socket closed); every socket of every venue ended at once
        assert client.error is None
        assert not client.closed()
        assert server.connections_total == 1
        monkeypatch.undo()  # and back
        await asyncio.sleep(8 * KEEPALIVE_MS / 1000)
        assert client.error is None and not client.closed()
    finally:
        if ex is not None:
            await ex.close()
        await server.stop()


def test_missing_pongs_still_end_the_socket_after_a_step_back(monkeypatch: pytest.MonkeyPatch) -> None:
    asyncio.run(_pongs_stop_after_a_step_back(monkeypatch))


async def _pongs_stop_after_a_step_back(monkeypatch: pytest.MonkeyPatch) -> None:
    server = await SilentBybit().start()
    ex = None
    try:
        ex, client = await _connected(server)
        await asyncio.sleep(3 * KEEPALIVE_MS / 1000)
        _step_wall_clock(monkeypatch, -120)  # before: the last pong then looked 120 s in the future
        server.answer_pings = False
        started = time.monotonic()
        while client.error is None and time.monotonic() - started < 5:
            await asyncio.sleep(0.02)
        took = time.monotonic() - started
        assert "ping-pong keepalive" in str(client.error)
        # two missed pongs (0.4 s since the last, which came up to one interval before pings went
        # unanswered), found at the next ping: 0.2–0.6 s of the monotonic clock, not 120 s
        assert KEEPALIVE_MS / 1000 <= took <= 3 * KEEPALIVE_MS / 1000 + 0.3
    finally:
        if ex is not None:
            await ex.close()
        await server.stop()


def test_a_client_closed_while_connecting_leaves_no_subscribed_socket() -> None:
    asyncio.run(_close_while_connecting())


async def _close_while_connecting() -> None:
    from daedalus.collector.ccxt_collector import stamped_exchange_class

    server = await SilentBybit().start()
    market = SimulatedMarket({SYMBOL: 60_000.0}, seed=3)
    server.load_market(market)
    ex = stamped_exchange_class("bybit")()
    server.configure(ex, [SYMBOL], market)
    try:
        watch = asyncio.ensure_future(ex.watch_order_book(SYMBOL, 50))
        while not ex.clients:
            await asyncio.sleep(0)
        (url,) = ex.clients
        client = ex.clients.pop(url)  # as the collector's _close_feed does when a feed's session ends
        assert client.connecting and client.connection is None  # the socket is not open yet
        await client.close()
        with pytest.raises(asyncio.CancelledError):
            await watch
        for _ in range(20):  # the market goes on: the server publishes book deltas
            for ev in market.step():
                await server.publish_market_event(ev, market)
            await asyncio.sleep(0.02)
        # before: the connection completed after close(), subscribed, and its frames fed the books
        # (the next session took them for its own); now it is closed and nothing was handled
        assert client.closed()
        assert not [p for p in server.peers if p.topics]
        assert SYMBOL not in ex.orderbooks
    finally:
        await ex.close()
        await server.stop()


def test_an_old_sockets_close_does_not_orphan_the_current_one() -> None:
    asyncio.run(_old_close_after_new_socket())


async def _old_close_after_new_socket() -> None:
    from daedalus.collector.ccxt_collector import stamped_exchange_class

    server = await SilentBybit().start()
    market = SimulatedMarket({SYMBOL: 60_000.0, "ETH/USDT": 3_000.0}, seed=3)
    server.load_market(market)
    ex = stamped_exchange_class("bybit")()
    server.configure(ex, [SYMBOL, "ETH/USDT"], market)
    try:
        await ex.watch_order_book(SYMBOL, 50)
        (url,) = ex.clients
        old = ex.clients.pop(url)  # a feed's session ended: the collector closes its socket...
        await ex.watch_order_book("ETH/USDT", 50)  # ...while another feed opens the next one
        current = ex.clients[url]
        assert current is not old
        await old.close()
        await asyncio.sleep(0.3)  # the old client reports its close
        # before: ccxt forgot clients[url] (the current client) on the old one's close; the current
        # socket stayed open and subscribed, and the next watch opened a third one beside it
        assert ex.clients.get(url) is current and not current.closed()
        await ex.watch_order_book(SYMBOL, 50)
        subscribed = [p for p in server.peers if any(t.startswith("orderbook.") for t in p.topics)]
        assert len(subscribed) == 1
    finally:
        await ex.close()
        await server.stop()


# ccxt's throttler reads the wall clock through its own `from time import time`, out of reach of an
# in-process step: this runs under libfaketime, as the soak's host_clock_step does
THROTTLED_CALLS = """
import asyncio, time
from daedalus.collector.ccxt_collector import stamped_exchange_class
from daedalus.devkit.soak.clock import step_host_clock

async def main():
    ex = stamped_exchange_class("binance")({"enableRateLimit": True, "rateLimit": 50})
    ex.init_throttler()
    started = time.monotonic()
    calls = [asyncio.ensure_future(ex.throttle(1)) for _ in range(60)]  # one per 50 ms: 3 s
    await asyncio.sleep(0.5)
    step_host_clock(-120)  # seen within a second (FAKETIME_CACHE_DURATION=1)
    done, _ = await asyncio.wait(calls, timeout=15)
    print(len(done), time.monotonic() - started)

asyncio.run(main())
"""


def test_rate_limited_calls_do_not_wait_out_a_step_back(tmp_path: Path) -> None:
    from daedalus.devkit.soak.clock import faketime_env

    env = {**os.environ, **faketime_env(libfaketime_or_skip(), tmp_path / "clock.rc")}
    out = subprocess.run(
        [sys.executable, "-c", THROTTLED_CALLS], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr[-2000:]
    done, seconds = out.stdout.split()
    # before: the leaky bucket refilled by wall-clock time between checks; the step back made that
    # -120 s, so the calls still waiting owed 120 s of tokens (39 of 60 done after 15 s)
    assert int(done) == 60
    assert 2.5 <= float(seconds) <= 6.0


def test_a_failed_dial_is_retried_after_its_backoff_whatever_the_wall_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asyncio.run(_dial_backoff_across_a_step(monkeypatch))


async def _dial_backoff_across_a_step(monkeypatch: pytest.MonkeyPatch) -> None:
    import ccxt

    from daedalus.collector.ccxt_collector import stamped_exchange_class

    server = await SilentBybit().start()
    market = SimulatedMarket({SYMBOL: 60_000.0}, seed=3)
    server.load_market(market)
    ex = stamped_exchange_class("bybit")()
    server.configure(ex, [SYMBOL], market)
    await server.stop()  # nothing listens: the dial fails
    try:
        with pytest.raises(ccxt.NetworkError):
            await ex.watch_order_book(SYMBOL, 50)
        (url,) = ex.ws_dial_backoff
        first = ex.ws_dial_delay(url)
        assert 0 < first <= 0.2  # ccxt's first backoff: 0.2 s
        _step_wall_clock(monkeypatch, -120)
        # before: ccxt's `until` was wall-clock time, so the step back made the wait 120 s longer
        assert ex.ws_dial_delay(url) <= first
    finally:
        await ex.close()
