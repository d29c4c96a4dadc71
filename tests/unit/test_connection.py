"""The supervisor: reconnect with backoff, stale deadline, proactive reconnect, fatal errors, events."""

from __future__ import annotations

import asyncio

import pytest

from daedalus.collector.connection import (
    Connection,
    Disconnected,
    Emitter,
    ServerShutdown,
    SupervisorSettings,
    supervise,
)
from daedalus.collector.queue import Record
from daedalus.errors import ExchangeError


class _ListQueue:
    def __init__(self) -> None:
        self.items: list[Record] = []

    async def put(self, record: Record) -> bool:
        self.items.append(record)
        return True


def _run(session, settings: SupervisorSettings, until: int, fatal=()) -> tuple[list[dict], list[Connection]]:
    """Supervise `session` until it has been started `until` times; return the events rows."""
    q = _ListQueue()
    conns: list[Connection] = []

    async def main() -> None:
        stop = asyncio.Event()

        async def counted(conn: Connection) -> None:
            conns.append(conn)
            if len(conns) >= until:
                stop.set()
                await asyncio.sleep(3600)
            await session(conn)

        await asyncio.wait_for(
            supervise(
                counted,
                source="ccxt",
                exchange="x",
                name="feed",
                emitter=Emitter(q),
                settings=settings,
                stop=stop,
                fatal=fatal,
            ),
            20,
        )

    asyncio.run(main())
    return [r.row for r in q.items if r.channel == "events"], conns


FAST = SupervisorSettings(stale_after=0.3, max_age=3600, backoff_initial=0.01, backoff_max=0.02)


def test_disconnects_are_recorded_and_retried() -> None:
    async def session(conn: Connection) -> None:
        raise Disconnected("closed by peer", close_code=1006)

    events, conns = _run(session, FAST, until=3)
    assert [e["event_type"] for e in events] == ["disconnect", "disconnect", "disconnect"]
    assert [e["close_code"] for e in events] == [1006, 1006, 1000]  # the last one: collector stopping
    assert len({c.conn_id for c in conns}) == 3  # a new connection id per attempt


def test_stale_subscription_forces_a_reconnect() -> None:
    async def session(conn: Connection) -> None:
        conn.watch("orderbook:BTC/USDT")
        await asyncio.sleep(3600)  # half-open: nothing ever arrives

    events, _ = _run(session, FAST, until=2)
    assert events[0]["event_type"] == "stale" and "orderbook:BTC/USDT" in events[0]["detail"]


def test_stale_names_only_its_own_series_and_a_disconnect_names_every_series_carried() -> None:
    # docs/features.md "Time": an event breaks only the series it names. A quiet ticker beside a live book
    # must name (ETH/USDT, ticker), never a NULL symbol that silver reads as "every series".
    async def quiet_ticker(conn: Connection) -> None:
        conn.watch("ticker:ETH/USDT", ("ticker", "ETH/USDT"))
        conn.watch("orderbook:ETH/USDT", ("orderbook", "ETH/USDT"))
        while True:
            conn.touch("orderbook:ETH/USDT")
            await asyncio.sleep(0.05)

    events, _ = _run(quiet_ticker, FAST, until=2)
    assert (events[0]["event_type"], events[0]["symbol"], events[0]["channel"]) == (
        "stale",
        "ETH/USDT",
        "ticker",
    )

    async def dropped(conn: Connection) -> None:
        conn.watch("orderbook:BTC/USDT", ("orderbook", "BTC/USDT"))
        conn.carries("trades", "BTC/USDT")  # carried without a stale deadline (quiet markets trade rarely)
        raise Disconnected("closed by peer", close_code=1006)

    events, _ = _run(dropped, FAST, until=2)
    first = [(e["event_type"], e["symbol"], e["channel"]) for e in events if e["close_code"] == 1006]
    assert first == [("disconnect", "BTC/USDT", "orderbook"), ("disconnect", "BTC/USDT", "trades")]


def test_fresh_data_keeps_a_subscription_alive_and_age_forces_a_proactive_reconnect() -> None:
    async def session(conn: Connection) -> None:
        conn.watch("trades:X")
        while True:
            conn.touch("trades:X")
            await asyncio.sleep(0.05)

    settings = SupervisorSettings(stale_after=0.3, max_age=1.0, backoff_initial=5, backoff_max=5)
    events, _ = _run(session, settings, until=2)
    # no stale row; a reconnect before the age limit, with no backoff wait (backoff would be ≥ 0..5 s)
    assert events[0]["event_type"] == "reconnect" and "connection age" in events[0]["detail"]


def test_server_shutdown_reconnects_at_once() -> None:
    async def session(conn: Connection) -> None:
        raise ServerShutdown("serverShutdown")

    settings = SupervisorSettings(stale_after=5, max_age=3600, backoff_initial=30, backoff_max=30)
    events, _ = _run(session, settings, until=3)  # would take minutes if it backed off
    assert [e["event_type"] for e in events[:2]] == ["reconnect", "reconnect"]


def test_configuration_errors_are_fatal() -> None:
    async def session(conn: Connection) -> None:
        raise ExchangeError("ingestion.symbols: 'X/Y' is not a market of x")

    with pytest.raises(ExchangeError, match="not a market"):
        _run(session, FAST, until=99, fatal=(ExchangeError,))


def test_staging_overflow_is_counted_and_reported() -> None:
    async def main() -> tuple[list[Record], dict]:
        q = _ListQueue()
        em = Emitter(q, staging_limit=3)
        for i in range(5):
            em.emit_nowait(
                Record("ccxt", "trades", {"exchange": "x", "symbol": "A/B", "capture_ts": 100 + i})
            )
        await em.flush()
        return q.items, em.totals()

    items, totals = asyncio.run(main())
    assert totals == {"received": 5, "accepted": 3, "dropped": 2}
    overflow = [r.row for r in items if r.channel == "events"]
    assert len(overflow) == 1 and overflow[0]["count"] == 2
    assert (overflow[0]["interval_start"], overflow[0]["interval_end"]) == (103, 104)
