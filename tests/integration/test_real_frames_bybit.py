"""Bybit v5 `orderbook.50` against Bybit's own documented frames (no licensed recorded v5 capture was
found: cryptofeed's Bybit sample data is the retired v2 `orderBookL2_25` feed). The documented example
(https://bybit-exchange.github.io/docs/v5/websocket/public/orderbook, "Response Example": the
BTCUSDT snapshot with u 13079592 and seq 22520573250; its book is elided in the page, so only its
shown levels are used) fixes the frame's shape; the page's rules fix the ids: "u" is the update id,
contiguous per topic; a snapshot resets the book; "u"=1 is a snapshot after a service restart.

Our fake's frames must have the documented shape, and the venue module's check must accept exactly
the documented id sequence (snapshot, then u + 1 per delta) and refuse a skipped u.
"""

from __future__ import annotations

from fake_exchange import venue_frames

from daedalus.collector.venue_bybit import Venue
from daedalus.devkit.simulator.bybit import FakeBybit
from daedalus.devkit.simulator.market import SimulatedMarket

DOC_SNAPSHOT = {
    "topic": "orderbook.50.BTCUSDT",
    "type": "snapshot",
    "ts": 1671179923028,
    "data": {
        "s": "BTCUSDT",
        "b": [["17440.00", "40.833"], ["17439.50", "0.513"], ["17416.00", "6.156"], ["17415.50", "32.268"]],
        "a": [["17440.50", "78.815"], ["17441.00", "8.858"], ["17464.50", "4.901"], ["17465.00", "5.744"]],
        "u": 13079592,
        "seq": 22520573250,
    },
    "cts": 1671179923018,  # in the page's parameter table (matching-engine time); value ours
}


def _delta(u: int, asks: list[list[str]], ts: int) -> dict:
    # the documented delta's levels (asks 17440.50 -> 78.857, 17442.00 -> 1.510), next update id
    data = {"s": "BTCUSDT", "b": [], "a": asks, "u": u, "seq": 22520573300 + u - 13079592}
    return {"topic": "orderbook.50.BTCUSDT", "type": "delta", "ts": ts, "data": data, "cts": ts - 2}


def _fake_frames() -> list[dict]:
    market = SimulatedMarket({"BTC/USDT": 60_000.0}, seed=2)

    sent = venue_frames(FakeBybit, market, "orderbook.50.BTCUSDT", steps=30)
    return [f for f in sent if str(f.get("topic", "")).startswith("orderbook.")]


def test_fake_orderbook_frames_have_the_documented_shape() -> None:
    frames = _fake_frames()
    snap, deltas = frames[0], frames[1:]
    assert snap["type"] == "snapshot" and deltas and {d["type"] for d in deltas} == {"delta"}
    for f in frames:
        assert set(f) == set(DOC_SNAPSHOT), sorted(f)
        assert set(f["data"]) == set(DOC_SNAPSHOT["data"]), sorted(f["data"])
        assert all(isinstance(x, str) for lvl in f["data"]["b"] + f["data"]["a"] for x in lvl)
        assert all(isinstance(f["data"][k], int) for k in ("u", "seq")) and isinstance(f["ts"], int)
    # the documented id rule on the fake: the first delta is the snapshot's u + 1, then one more each
    us = [f["data"]["u"] for f in frames]
    assert us == list(range(us[0], us[0] + len(us)))


def test_venue_rule_accepts_the_documented_sequence_and_refuses_a_skip() -> None:
    venue = Venue()
    assert venue.book_frame(DOC_SNAPSHOT) == ("BTCUSDT", "snapshot", None)
    first = _delta(13079593, [["17440.50", "78.857"], ["17442.00", "1.510"]], 1671179923046)
    assert venue.book_frame(first) == ("BTCUSDT", "update", None)
    assert venue.book_update(first) == (1671179923046, 13079593, 13079593, None)
    assert venue.book_frame(_delta(13079594, [], 1671179923066)) == ("BTCUSDT", "update", None)
    skipped = venue.book_frame(_delta(13079596, [], 1671179923086))
    assert skipped is not None and skipped[2] is not None and "13079595" in skipped[2]
    # a service restart: Bybit sends u=1, a snapshot even if it were marked otherwise; it resets
    restart = _delta(1, [["17440.50", "1.000"]], 1671179923106)
    assert venue.book_frame(restart) == ("BTCUSDT", "snapshot", None)
    assert venue.book_frame(_delta(2, [], 1671179923126)) == ("BTCUSDT", "update", None)
