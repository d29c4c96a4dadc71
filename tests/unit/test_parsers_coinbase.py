"""Coinbase Advanced Trade wire messages (documented samples, trimmed) through the native collector's
parsers: book from snapshot + updates, trade dedupe and aggressor side, sequence gaps, bad frames."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daedalus.collector.coinbase import CoinbaseCollector, L2Book, product_to_symbol, rfc3339_ns
from daedalus.collector.coinbase_auth import make_jwt
from daedalus.collector.connection import Connection, Emitter
from daedalus.config import CoinbaseConfig, IngestionConfig
from daedalus.errors import ConfigError, ExchangeError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds the reference package
from reference.coinbase_docs import DOC_HEARTBEAT, DOC_L2  # noqa: E402


class _ListQueue:
    def __init__(self) -> None:
        self.items: list = []

    async def put(self, record) -> bool:
        self.items.append(record)
        return True


class _WS:
    def __init__(self) -> None:
        self.sent: list[dict] = []

    async def send(self, text: str) -> None:
        self.sent.append(json.loads(text))


def _msg(channel: str, seq: int, events: list[dict], ts: str = "2023-02-09T20:32:50.714964855Z") -> str:
    return json.dumps(
        {"channel": channel, "client_id": "", "timestamp": ts, "sequence_num": seq, "events": events}
    )


# the documented l2_data snapshot (two bids), with two offers added
SNAPSHOT = {
    **DOC_L2["events"][0],
    "updates": [
        *DOC_L2["events"][0]["updates"],
        {
            "side": "offer",
            "event_time": "1970-01-01T00:00:00Z",
            "price_level": "21921.74",
            "new_quantity": "1.5",
        },
        {
            "side": "offer",
            "event_time": "1970-01-01T00:00:00Z",
            "price_level": "21922.0",
            "new_quantity": "2",
        },
    ],
}
UPDATE = {
    "type": "update",
    "product_id": "BTC-USD",
    "updates": [
        {
            "side": "bid",
            "event_time": "2023-02-09T20:32:50.714964855Z",
            "price_level": "21921.73",
            "new_quantity": "0",
        },
        {
            "side": "offer",
            "event_time": "2023-02-09T20:32:50.714964855Z",
            "price_level": "21921.5",
            "new_quantity": "0.3",
        },
    ],
}
TRADES = {
    "type": "snapshot",
    "trades": [
        {
            "trade_id": "000000000",
            "product_id": "BTC-USD",
            "price": "1260.01",
            "size": "0.3",
            "side": "BUY",
            "time": "2019-08-14T20:42:27.265Z",
        },
        {
            "trade_id": "000000001",
            "product_id": "BTC-USD",
            "price": "1260.02",
            "size": "0.1",
            "side": "SELL",
            "time": "2019-08-14T20:42:27.266Z",
        },
    ],
}


def _collector(
    levels: int = 2, channels: tuple[str, ...] = ("ticker", "trades", "orderbook")
) -> tuple[CoinbaseCollector, list]:
    q = _ListQueue()
    c = CoinbaseCollector(
        CoinbaseConfig(products=["BTC-USD"]),
        IngestionConfig(orderbook_levels=levels, channels=list(channels)),
        Emitter(q),
    )
    c.books = {"BTC-USD": L2Book()}
    return c, q.items


def _feed(c: CoinbaseCollector, frames: list[str]) -> tuple[_WS, Connection]:
    ws, conn, state = _WS(), Connection("coinbase", "coinbase", "t"), {"expected": None}

    async def main() -> None:
        for i, f in enumerate(frames):
            await c.handle(f, 1_700_000_000_000_000_000 + i, conn, ws, state)

    asyncio.run(main())
    return ws, conn


def test_rfc3339_keeps_nanoseconds() -> None:
    assert rfc3339_ns("2023-02-09T20:32:50.714964855Z") == 1675974770_714964855
    assert rfc3339_ns("2019-08-14T20:42:27.265Z") == 1565815347_265000000
    assert rfc3339_ns("2019-08-14T20:42:27Z") == 1565815347_000000000
    assert rfc3339_ns("2019-08-14T22:42:27.5+02:00") == 1565815347_500000000
    assert rfc3339_ns(None) is None
    assert product_to_symbol("BTC-USD") == "BTC/USD"


def test_level2_snapshot_then_update_gives_top_n() -> None:
    c, out = _collector()
    _feed(c, [_msg("l2_data", 0, [SNAPSHOT]), _msg("l2_data", 1, [UPDATE])])
    books = [r.row for r in out if r.channel == "orderbook"]
    assert books[0]["bids"] == [{"price": 21921.73, "size": 0.06317902}, {"price": 21921.3, "size": 0.02}]
    assert books[0]["asks"] == [{"price": 21921.74, "size": 1.5}, {"price": 21922.0, "size": 2.0}]
    assert books[1]["bids"] == [{"price": 21921.3, "size": 0.02}]  # 21921.73 removed
    assert books[1]["asks"] == [{"price": 21921.5, "size": 0.3}, {"price": 21921.74, "size": 1.5}]
    assert books[1]["symbol"] == "BTC/USD" and books[1]["nonce"] == 1
    assert books[1]["timestamp"] == 1675974770_714964855
    assert [b["seq"] for b in books] == [1, 2]


def test_updates_before_a_snapshot_are_ignored() -> None:
    c, out = _collector()
    _feed(c, [_msg("l2_data", 0, [UPDATE])])
    assert not [r for r in out if r.channel == "orderbook"]


def test_trades_are_deduplicated_and_side_is_kept_raw() -> None:
    c, out = _collector()
    again = {
        "type": "update",
        "trades": [TRADES["trades"][1], {**TRADES["trades"][1], "trade_id": "000000002", "side": "BUY"}],
    }
    _feed(c, [_msg("market_trades", 0, [TRADES]), _msg("market_trades", 1, [again])])
    trades = [r.row for r in out if r.channel == "trades"]
    assert [t["trade_id"] for t in trades] == ["000000000", "000000001", "000000002"]
    # bronze keeps the raw side as received; silver.trades maps the maker side to the aggressor
    assert [t["side"] for t in trades] == ["BUY", "SELL", "BUY"]
    assert trades[0]["cost"] == pytest.approx(1260.01 * 0.3)
    assert trades[0]["timestamp"] == 1565815347_265000000


def test_ticker_and_heartbeats() -> None:
    c, out = _collector()
    tick = {
        "type": "update",
        "tickers": [
            {
                "type": "ticker",
                "product_id": "BTC-USD",
                "price": "21932.98",
                "volume_24_h": "16038.28",
                "low_24_h": "21835.29",
                "high_24_h": "23011.18",
                "price_percent_chg_24_h": "-4.15",
                "best_bid": "21932.97",
                "best_bid_quantity": "0.5",
                "best_ask": "21932.98",
                "best_ask_quantity": "0.1",
            }
        ],
    }
    hb = DOC_HEARTBEAT["events"]
    _, conn = _feed(c, [_msg("ticker", 0, [tick]), _msg("heartbeats", 1, hb)])
    rows = [r.row for r in out]
    assert len(rows) == 1 and rows[0]["bid"] == 21932.97 and rows[0]["ask_volume"] == 0.1
    assert rows[0]["last"] == 21932.98 and rows[0]["percentage"] == -4.15
    assert "heartbeats" in conn.last_data  # liveness, not data


def test_sequence_gap_records_and_resubscribes_level2() -> None:
    c, out = _collector()
    ws, _ = _feed(
        c, [_msg("l2_data", 0, [SNAPSHOT]), _msg("l2_data", 4, [UPDATE]), _msg("l2_data", 5, [UPDATE])]
    )
    events = [r.row for r in out if r.channel == "events"]
    assert [e["event_type"] for e in events] == ["gap", "resync"]
    assert events[0]["count"] == 3
    assert [(m["type"], m["channel"]) for m in ws.sent] == [
        ("unsubscribe", "level2"),
        ("subscribe", "level2"),
    ]
    # the broken book emits nothing until the fresh snapshot
    assert len([r for r in out if r.channel == "orderbook"]) == 1


def test_bad_frames_are_events_and_collection_goes_on() -> None:
    c, out = _collector()
    _feed(
        c,
        [
            '{"channel":"l2_data","seq',
            "[1,2]",
            json.dumps({"type": "error", "message": "bad jwt"}),
            _msg("l2_data", 0, [SNAPSHOT]),
        ],
    )
    kinds = [r.row["event_type"] for r in out if r.channel == "events"]
    assert kinds == ["error", "error", "error"]
    assert len([r for r in out if r.channel == "orderbook"]) == 1


def test_config_errors() -> None:
    with pytest.raises(ExchangeError, match="'BTCUSD' is not a Coinbase product id"):
        CoinbaseCollector(CoinbaseConfig(products=["BTCUSD"]), IngestionConfig(), Emitter(_ListQueue()))
    with pytest.raises(ConfigError, match="COINBASE_API_KEY"):
        CoinbaseCollector(CoinbaseConfig(use_jwt=True), IngestionConfig(), Emitter(_ListQueue()), environ={})


def test_jwt_is_es256_and_verifies() -> None:
    pytest.importorskip("cryptography")
    import base64

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    token = make_jwt("organizations/x/apiKeys/y", pem, now=1_700_000_000)
    head, body, sig = token.split(".")

    def unb64(s: str) -> bytes:
        return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

    assert json.loads(unb64(head))["alg"] == "ES256"
    claims = json.loads(unb64(body))
    assert claims == {
        "iss": "cdp",
        "nbf": 1_700_000_000,
        "exp": 1_700_000_120,
        "sub": "organizations/x/apiKeys/y",
    }
    raw = unb64(sig)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    key.public_key().verify(der, f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))  # raises if wrong
    with pytest.raises(ConfigError, match="not a PEM EC private key"):
        make_jwt("k", "nonsense")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["bid", "offer"]), st.integers(1, 40), st.sampled_from([0, 0, 1, 2.5])),
        max_size=200,
    ),
    st.integers(1, 12),
)
def test_l2book_top_equals_a_sorted_reference(updates, n) -> None:
    book, ref = L2Book(), {"bid": {}, "offer": {}}
    for side, price, qty in updates:
        book.apply([{"side": side, "price_level": str(price / 4), "new_quantity": str(qty)}])
        if qty == 0:
            ref[side].pop(price / 4, None)
        else:
            ref[side][price / 4] = float(qty)
    bids, asks = book.top(n)
    assert bids == [{"price": p, "size": ref["bid"][p]} for p in sorted(ref["bid"], reverse=True)[:n]]
    assert asks == [{"price": p, "size": ref["offer"][p]} for p in sorted(ref["offer"])[:n]]


def _book(rows: list[dict]) -> tuple[dict, dict]:
    """Replay book_updates rows (snapshot/checkpoint replace, deltas set sizes, 0 deletes a held level)."""
    bids: dict = {}
    asks: dict = {}
    for r in rows:
        if r["kind"] != "delta":
            bids = {lvl["price"]: lvl["size"] for lvl in r["bids"]}
            asks = {lvl["price"]: lvl["size"] for lvl in r["asks"]}
            continue
        for side, levels in ((bids, r["bids"]), (asks, r["asks"])):
            for lvl in levels:
                if lvl["size"]:
                    side[lvl["price"]] = lvl["size"]
                else:
                    del side[lvl["price"]]  # KeyError = a delete of a level not held
    return bids, asks


def test_level2_book_updates_snapshot_checkpoint_and_changed_levels() -> None:
    c, out = _collector(channels=("orderbook", "book_updates"))
    gone = {"side": "bid", "event_time": "x", "price_level": "1.5", "new_quantity": "0"}  # never held
    flash = [
        {"side": "offer", "event_time": "x", "price_level": "21930", "new_quantity": "1"},
        {"side": "offer", "event_time": "x", "price_level": "21930", "new_quantity": "0"},
    ]
    update = {**UPDATE, "updates": [*UPDATE["updates"], gone, *flash]}
    _feed(c, [_msg("l2_data", 0, [SNAPSHOT]), _msg("l2_data", 1, [update])])
    rows = [r.row for r in out if r.channel == "book_updates"]
    assert [r["kind"] for r in rows] == ["snapshot", "checkpoint", "delta"]
    snap, check, delta = rows
    assert (
        snap["bids"]
        == check["bids"]
        == [{"price": 21921.73, "size": 0.06317902}, {"price": 21921.3, "size": 0.02}]
    )
    assert (
        snap["asks"] == check["asks"] == [{"price": 21921.74, "size": 1.5}, {"price": 21922.0, "size": 2.0}]
    )
    assert (
        snap["first_update_id"],
        snap["last_update_id"],
        check["first_update_id"],
        check["last_update_id"],
    ) == (None, 0, None, 0)
    # only what changed: the removed bid, the new ask; not the unknown removal, not the level that came and went
    assert delta["bids"] == [{"price": 21921.73, "size": 0.0}]
    assert delta["asks"] == [{"price": 21921.5, "size": 0.3}]
    assert (delta["first_update_id"], delta["last_update_id"], delta["prev_update_id"]) == (None, 1, None)
    assert delta["timestamp"] == 1675974770_714964855 and delta["symbol"] == "BTC/USD"
    # one per-connection counter over both book channels, in emission order
    seqs = [r.row["seq"] for r in out if r.channel in ("orderbook", "book_updates")]
    assert sorted(seqs) == seqs == list(range(1, 6))
    assert _book(rows) == ({21921.3: 0.02}, {21921.5: 0.3, 21921.74: 1.5, 21922.0: 2.0})


def test_level2_checkpoint_at_the_first_update_past_an_hour_boundary() -> None:
    c, out = _collector(channels=("book_updates",))

    def up(price: str, qty: str) -> dict:
        update = {"side": "offer", "event_time": "x", "price_level": price, "new_quantity": qty}
        return {"type": "update", "product_id": "BTC-USD", "updates": [update]}

    _feed(
        c,
        [
            _msg("l2_data", 0, [SNAPSHOT], ts="2024-08-09T00:59:58.000000001Z"),
            _msg("l2_data", 1, [up("21923", "1")], ts="2024-08-09T00:59:59.999999999Z"),
            _msg("l2_data", 2, [up("21923", "0")], ts="2024-08-09T01:00:00.000000500Z"),
            _msg("l2_data", 3, [up("21924", "4")], ts="2024-08-09T01:30:00Z"),
            _msg("l2_data", 4, [up("21924", "0")], ts="2024-08-09T02:00:00Z"),
        ],
    )
    rows = [r.row for r in out if r.channel == "book_updates"]
    assert [r["kind"] for r in rows] == [
        "snapshot",
        "checkpoint",
        "delta",
        "checkpoint",
        "delta",
        "delta",
        "checkpoint",
        "delta",
    ]
    hourly = rows[3]
    # the book held just before the first 01:00 update, stamped at the boundary: it is in 01:00's partition
    assert hourly["timestamp"] == rfc3339_ns("2024-08-09T01:00:00Z")
    assert hourly["last_update_id"] == 1 and hourly["first_update_id"] is None
    assert hourly["asks"] == [
        {"price": 21921.74, "size": 1.5},
        {"price": 21922.0, "size": 2.0},
        {"price": 21923.0, "size": 1.0},
    ]
    assert hourly["bids"] == snap_bids()
    assert rows[6]["timestamp"] == rfc3339_ns("2024-08-09T02:00:00Z") and rows[6]["last_update_id"] == 3
    assert {"price": 21924.0, "size": 4.0} in rows[6]["asks"]
    # a rebuild from the 01:00 checkpoint alone equals the rebuild from the start
    assert _book(rows[3:]) == _book(rows)


def snap_bids() -> list[dict]:
    return [{"price": 21921.73, "size": 0.06317902}, {"price": 21921.3, "size": 0.02}]


def test_level2_gap_resubscribes_and_the_new_snapshot_is_a_row() -> None:
    c, out = _collector(channels=("book_updates",))
    fresh = {**SNAPSHOT, "updates": SNAPSHOT["updates"][:1] + SNAPSHOT["updates"][2:3]}
    ws, _ = _feed(
        c,
        [
            _msg("l2_data", 0, [SNAPSHOT]),
            _msg("l2_data", 5, [UPDATE]),
            _msg("l2_data", 6, [fresh]),
            _msg("l2_data", 7, [UPDATE]),
        ],
    )
    rows = [r.row for r in out if r.channel == "book_updates"]
    events = [(r.row["event_type"], r.row["channel"]) for r in out if r.channel == "events"]
    assert events == [("gap", None), ("resync", "orderbook")]
    assert [m["type"] for m in ws.sent] == ["unsubscribe", "subscribe"]
    # the update after the gap belonged to the broken book: no row; the new snapshot and its checkpoint
    assert [(r["kind"], r["last_update_id"]) for r in rows] == [
        ("snapshot", 0),
        ("checkpoint", 0),
        ("snapshot", 6),
        ("checkpoint", 6),
        ("delta", 7),
    ]
    assert _book(rows) == ({}, {21921.5: 0.3, 21921.74: 1.5})
