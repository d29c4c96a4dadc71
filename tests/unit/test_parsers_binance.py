"""Recorded Binance wire messages (the real capture) replayed through the ccxt collector's message
hook and ccxt's own parsers, with no socket: what each message becomes in bronze."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from daedalus.collector.ccxt_collector import CcxtCollector, MalformedFrame, book_row, ticker_row, trade_row
from daedalus.collector.connection import Emitter
from daedalus.config import IngestionConfig
from daedalus.devkit.simulator.binance import FakeBinance
from daedalus.devkit.simulator.replay import load_capture

CAPTURE = Path(__file__).resolve().parents[1] / "data" / "binance-spot-btcusdt-20240808.jsonl.gz"
SYMBOL = "BTC/USDT"


class _ListQueue:
    def __init__(self) -> None:
        self.items: list = []

    async def put(self, record) -> bool:
        self.items.append(record)
        return True


def _collector() -> tuple[CcxtCollector, Emitter]:
    emitter = Emitter(_ListQueue())
    c = CcxtCollector(
        "binance",
        [SYMBOL],
        ["trades", "orderbook"],
        IngestionConfig(orderbook_levels=5),
        emitter,
        configure=lambda ex: FakeBinance(port=1).configure(ex, [SYMBOL]),
    )
    return c, emitter


def _in_loop(fn):
    """ccxt creates its WebSocket clients inside a running loop; run the test body in one."""

    def wrapper() -> None:
        asyncio.run(fn())

    wrapper.__name__ = fn.__name__
    return wrapper


def _staged(emitter: Emitter, channel: str) -> list[dict]:
    return [r.row for r in emitter._staging if r.channel == channel]


@_in_loop
async def test_trade_message_becomes_one_bronze_trade() -> None:
    c, emitter = _collector()
    client = c.exchange.client("ws://127.0.0.1:1/ws/0")
    msg = {
        "e": "trade",
        "E": 1723161255343,
        "s": "BTCUSDT",
        "t": 3735683259,
        "p": "61837.63000000",
        "q": "0.02000000",
        "T": 1723161255342,
        "m": True,
        "M": True,
    }
    c.exchange.handle_message(client, msg)
    c.exchange.handle_message(
        client, {"stream": "btcusdt@trade", "data": {**msg, "t": 3735683260, "m": False}}
    )
    rows = _staged(emitter, "trades")
    assert [(r["trade_id"], r["side"], r["price"], r["amount"]) for r in rows] == [
        ("3735683259", "sell", 61837.63, 0.02),
        ("3735683260", "buy", 61837.63, 0.02),
    ]
    assert rows[0]["timestamp"] == 1723161255342 * 1_000_000
    assert rows[0]["cost"] == pytest.approx(61837.63 * 0.02)
    assert rows[0]["collected_at"] == rows[0]["capture_ts"] // 1_000_000
    assert c.raw_messages == 2


@_in_loop
async def test_capture_replayed_through_the_hook_matches_book_ticker() -> None:
    cap = load_capture(CAPTURE, limit=6000)
    c, emitter = _collector()
    ex = c.exchange
    client = ex.client("ws://127.0.0.1:1/ws/0")
    # what ccxt does after the SUBSCRIBE ack and the REST snapshot, done by hand (no socket here)
    book = ex.order_book({}, None)
    book.reset(ex.parse_order_book(cap.snapshot, SYMBOL))
    book["nonce"] = cap.snapshot["lastUpdateId"]
    ex.orderbooks[SYMBOL] = book
    for _, stream, payload in cap.messages:
        ex.handle_message(client, {"stream": stream, "data": payload})
    books = _staged(emitter, "orderbook")
    # the first row is the snapshot itself (a new book put into ccxt's orderbooks is a reset)
    assert books[0]["nonce"] == cap.snapshot["lastUpdateId"]
    books = books[1:]
    by_u = {bt["u"]: bt for bt in cap.book_tickers()}
    applied = [d["u"] for d in cap.depth_updates() if d["u"] > cap.snapshot["lastUpdateId"]]
    assert [b["nonce"] for b in books] == applied  # one row per applied diff, none for dropped ones
    checked = 0
    for b in books:
        bt = by_u.get(b["nonce"])
        if bt is not None:
            checked += 1
            assert b["bids"][0] == {"price": float(bt["b"]), "size": float(bt["B"])}
            assert b["asks"][0] == {"price": float(bt["a"]), "size": float(bt["A"])}
        assert len(b["bids"]) == 5 and b["bids"][0]["price"] < b["asks"][0]["price"]
    assert checked > 50
    assert [r["trade_id"] for r in _staged(emitter, "trades")] == [str(t["t"]) for t in cap.trades()]


@_in_loop
async def test_malformed_and_non_json_frames_become_error_events() -> None:
    c, emitter = _collector()
    client = c.exchange.client("ws://127.0.0.1:1/ws/0")
    c.exchange.handle_message(client, MalformedFrame('{"e":"tra', "unexpected end of data"))
    c.exchange.handle_message(client, "pong")
    events = _staged(emitter, "events")
    assert [e["event_type"] for e in events] == ["error", "error"]
    assert "malformed JSON frame" in events[0]["detail"] and "non-JSON frame" in events[1]["detail"]


@_in_loop
async def test_handler_exception_is_recorded_not_raised() -> None:
    c, emitter = _collector()
    client = c.exchange.client("ws://127.0.0.1:1/ws/0")
    c.exchange.handle_message(
        client, {"e": "trade", "s": "BTCUSDT", "t": 1, "p": "x", "q": "1", "T": "bad", "m": 1}
    )
    kinds = [e["event_type"] for e in _staged(emitter, "events")] + [r.channel for r in emitter._staging]
    assert "error" in kinds or len(_staged(emitter, "trades")) == 1  # either parsed or recorded, never raised


def test_row_builders() -> None:
    base = {
        "collected_at": 1,
        "capture_ts": 1_000_000,
        "exchange": "x",
        "symbol": "A/B",
        "conn_id": "c",
        "seq": 1,
    }
    t = trade_row(
        {"id": 5, "timestamp": 2, "side": "buy", "price": 1.5, "amount": 2.0, "cost": 3.0, "info": {"a": 1}},
        base,
    )
    assert (t["trade_id"], t["timestamp"], t["info_json"]) == ("5", 2_000_000, '{"a":1}')
    k = ticker_row({"timestamp": None, "bid": "1", "ask": 2, "bidVolume": None, "info": {}}, base)
    assert (k["bid"], k["ask"], k["bid_volume"], k["timestamp"]) == (1.0, 2.0, None, None)
    b = book_row(
        {"timestamp": 3, "nonce": 9, "bids": [[2.0, 1.0], [1.0, 1.0]], "asks": [[3.0, 1.0]]}, 1, base
    )
    assert b["bids"] == [{"price": 2.0, "size": 1.0}] and b["asks"] == [{"price": 3.0, "size": 1.0}]
    assert b["nonce"] == 9


def test_emitter_pump_delivers_in_order() -> None:
    async def main() -> list:
        q = _ListQueue()
        em = Emitter(q)
        from daedalus.collector.queue import Record

        for i in range(5):
            em.emit_nowait(Record("ccxt", "trades", {"seq": i}))
        await em.emit(Record("ccxt", "trades", {"seq": 5}))
        return [r.row["seq"] for r in q.items]

    assert asyncio.run(main()) == [0, 1, 2, 3, 4, 5]
