"""Venue modules' own rules (the parts ccxt does not check), on hand-written frames."""

from __future__ import annotations

import zlib

from daedalus.collector.venue_bybit import Venue as Bybit
from daedalus.collector.venue_ccxt import CcxtVenue, venue_for
from daedalus.collector.venue_kraken import decimals, kraken_checksum
from daedalus.collector.venue_okx import okx_checksum


def _bybit(kind: str, u: int) -> dict:
    return {
        "topic": "orderbook.50.BTCUSDT",
        "type": kind,
        "ts": 1,
        "data": {"s": "BTCUSDT", "b": [], "a": [], "u": u, "seq": 7},
    }


def test_bybit_update_ids_follow_one_another_and_a_snapshot_resets() -> None:
    v = Bybit()
    assert v.book_frame(_bybit("snapshot", 100)) == ("BTCUSDT", "snapshot", None)
    assert v.book_frame(_bybit("delta", 101)) == ("BTCUSDT", "update", None)
    mid, kind, gap = v.book_frame(_bybit("delta", 103))
    assert (mid, kind) == ("BTCUSDT", "update") and "u=103 after u=101" in gap
    assert v.book_frame(_bybit("delta", 104)) == ("BTCUSDT", "update", None)  # no reference until a snapshot
    assert v.book_frame(_bybit("delta", 1)) == ("BTCUSDT", "snapshot", None)  # u=1: a service restart
    assert v.book_frame({"topic": "publicTrade.BTCUSDT", "data": []}) is None


def test_okx_checksum_interleaves_bids_and_asks_and_is_signed() -> None:
    bids = [["41006.3", "0.5"], ["41006", "1"]]
    asks = [["41006.8", "0.60038921"]]
    text = "41006.3:0.5:41006.8:0.60038921:41006:1"
    crc = zlib.crc32(text.encode())
    assert okx_checksum(bids, asks) == (crc - 2**32 if crc >= 2**31 else crc)
    # ccxt's float book gives the same strings back (no trailing zeros, integers bare)
    assert okx_checksum([[41006.3, 0.5], [41006.0, 1.0]], [[41006.8, 0.60038921]]) == okx_checksum(bids, asks)


def test_kraken_checksum_uses_the_pair_precision_without_dots_and_leading_zeros() -> None:
    assert (decimals(0.1), decimals(1e-08), decimals(1), decimals(0.00001)) == (1, 8, 0, 5)
    asks, bids = [[0.5667, 4831.75496356]], [[0.5666, 4831.75496356]]
    text = "5667" + "483175496356" + "5666" + "483175496356"
    assert kraken_checksum(bids, asks, 4, 8) == zlib.crc32(text.encode())


def test_an_exchange_without_a_module_gets_the_defaults() -> None:
    v = venue_for("gateio")
    assert type(v) is CcxtVenue and v.book_limit is None and v.book_frame({"x": 1}) is None


def test_ccxt_family_ids_reach_the_family_module_and_its_sync_rule_per_market_type() -> None:
    """binanceusdm / binancecoinm (ccxt subclasses of binance) are Binance; the rule follows the
    market's type as ccxt gives it: spot contiguous, linear and inverse futures prev_chain."""
    spot = {"type": "spot", "spot": True}
    linear = {"type": "swap", "spot": False, "linear": True, "inverse": False}
    inverse = {"type": "swap", "spot": False, "linear": False, "inverse": True}
    for ex in ("binance", "binanceus", "binanceusdm", "binancecoinm"):
        v = venue_for(ex)
        assert type(v).__module__ == "daedalus.collector.venue_binance", ex
        assert (v.sync_rule(spot), v.sync_rule(linear), v.sync_rule(inverse)) == (
            "contiguous",
            "prev_chain",
            "prev_chain",
        )
        assert v.full_depth_feed and "derivatives" in v.sync_rule_docs["inverse"]
    assert type(venue_for("myokx")).__module__ == "daedalus.collector.venue_okx"
    assert type(venue_for("bybiteu")).__module__ == "daedalus.collector.venue_bybit"
    assert venue_for("okx").sync_rule(linear) == "prev_chain"
    assert venue_for("bybit").sync_rule(spot) == "increasing"
    assert venue_for("kraken").sync_rule(spot) == "none"
    assert venue_for("krakenfutures").sync_rule(linear) is None  # another protocol: the defaults
    assert CcxtVenue().sync_rule(spot) is None and CcxtVenue().sync_rule(None) is None


def test_one_book_channel_by_default_and_orderbook_where_no_deltas_stream() -> None:
    default = ["ticker", "trades", "book_updates"]
    assert venue_for("binance").book_channels(default) == (False, True)
    assert venue_for("binance").book_channels([*default, "orderbook"]) == (True, True)

    class WholeBooks(CcxtVenue):
        book_deltas = False

    assert WholeBooks().book_channels(default) == (True, False)


def test_okx_subscribe_acks_are_no_book_frames() -> None:
    """After a checksum break ccxt unsubscribes; the ack must reach it (it then subscribes again)."""
    v = venue_for("okx")
    ack = {"event": "unsubscribe", "arg": {"channel": "books", "instId": "BTC-USDT"}, "connId": "a4d3ae55"}
    assert v.book_frame(ack) is None and v.book_update(ack) is None
    assert v.control(ack) == ("subscribe_ack", "unsubscribe books:BTC-USDT")
