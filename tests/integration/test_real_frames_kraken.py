"""Kraken WebSocket v2 `book` on the exchange's own documented frames (tests/data/
kraken-v2-book-doc-examples.json): the MATIC/USD snapshot and update of the `book` channel page, each
with its CRC32, and the BTC/USD snapshot of the checksum guide. Until now the checksum was checked
only against our fake, which computes it with our own reading of the rule.

The frames go over the wire to the real ccxt.pro client and the collector's checksum check; the
documented checksums must be accepted on ccxt's book (no gap), a wrong one refused (gap, resync), and
bronze and silver must hold exactly the documented books.
"""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path

import pytest
from capture_replay import land_and_build, model_rows
from fake_exchange import DATA, book_replay, make_config, rows, run_pipeline, venue_frames, wait_until

from daedalus.collector.connection import Emitter
from daedalus.collector.venue_kraken import decimals, iso_ms, kraken_checksum
from daedalus.devkit.simulator.kraken import FakeKraken

pytestmark = pytest.mark.network
DOC = json.loads((DATA / "kraken-v2-book-doc-examples.json").read_text())
SNAP, UPDATE, BTC_SNAP = DOC["frames"]
TICKS = {s: p["price"] for s, p in DOC["precision"].items()}


def _levels(side: list[dict]) -> list[tuple[float, float]]:
    return [(float(lv["price"]), float(lv["qty"])) for lv in side]


def _documented_books() -> list[tuple[dict[float, float], dict[float, float], int]]:
    """The MATIC/USD book after the snapshot and after the update, applied here by the documented
    rule (absolute qty, 0 deletes), with the checksum Kraken sent for it."""
    bids = dict(_levels(SNAP["data"][0]["bids"]))
    asks = dict(_levels(SNAP["data"][0]["asks"]))
    out = [(dict(bids), dict(asks), SNAP["data"][0]["checksum"])]
    for p, q in _levels(UPDATE["data"][0]["bids"]):
        bids[p] = q
    out.append((dict(bids), dict(asks), UPDATE["data"][0]["checksum"]))
    return out


def test_our_checksum_matches_every_documented_checksum() -> None:
    """The collector's checksum function on the documented books (prices in the pair's decimals)."""
    for bids, asks, want in _documented_books():
        b, a = sorted(bids.items(), reverse=True), sorted(asks.items())
        assert kraken_checksum(b, a, decimals(TICKS["MATIC/USD"]), 8) == want
    d = BTC_SNAP["data"][0]
    b, a = _levels(d["bids"]), _levels(d["asks"])
    assert kraken_checksum(b, a, decimals(TICKS["BTC/USD"]), 8) == d["checksum"] == 3310070434
    # the rule is about the pair's precision: the same book read at a coarser tick must not match
    assert kraken_checksum(b, a, 2, 8) != d["checksum"]


def test_fake_frames_have_the_documented_fields() -> None:
    """Our fake's snapshot and update carry the documented keys, numbers as JSON numbers."""
    from daedalus.devkit.simulator.market import SimulatedMarket

    market = SimulatedMarket({"BTC/USD": 60_000.0}, seed=1)

    def has_update(sent: list[dict]) -> bool:
        return any(f.get("type") == "update" and f["channel"] == "book" for f in sent)

    got = venue_frames(FakeKraken, market, "BTC/USD", until=has_update)
    snap = next(f for f in got if f.get("type") == "snapshot")
    update = next(f for f in got if f.get("type") == "update" and f["channel"] == "book")
    for fake, real in ((snap, SNAP), (update, UPDATE)):
        assert set(fake) == set(real)
        assert set(fake["data"][0]) == set(real["data"][0]), fake["type"]
        level = (fake["data"][0]["bids"] or fake["data"][0]["asks"])[0]
        assert set(level) == {"price", "qty"} and all(isinstance(v, float) for v in level.values())
        assert isinstance(fake["data"][0]["checksum"], int)


@pytest.mark.slow
def test_documented_frames_through_ccxt_into_bronze_and_silver(tmp_path: Path) -> None:
    symbols = ["MATIC/USD", "BTC/USD"]
    config = make_config(tmp_path, exchanges=["kraken"], symbols=symbols, channels=["book_updates"])
    # the documented update taken back (qty 606.70854372 again): the book is the snapshot's, so the
    # snapshot's documented checksum is the right one
    back = copy.deepcopy(UPDATE)
    back["data"][0]["bids"] = [{"price": 0.5657, "qty": 606.70854372}]
    back["data"][0]["checksum"] = SNAP["data"][0]["checksum"]
    back["data"][0]["timestamp"] = "2023-10-06T17:35:56.000000Z"
    wrong = copy.deepcopy(UPDATE)  # the same change again with a checksum of another book
    wrong["data"][0]["checksum"] = SNAP["data"][0]["checksum"]
    wrong["data"][0]["timestamp"] = "2023-10-06T17:35:57.000000Z"

    async def main() -> FakeKraken:
        server = await FakeKraken().start()
        server.recorded_snapshots = {"MATIC/USD": SNAP, "BTC/USD": BTC_SNAP}
        try:

            async def scenario(emitter: Emitter) -> None:
                await server.wait_subscribed([f"book:{s}" for s in symbols])
                n = lambda: emitter.counters[("ccxt", "book_updates")].received  # noqa: E731
                await wait_until(
                    lambda: ("ccxt", "book_updates") in emitter.counters and n() >= 4, 30, "loads"
                )
                for i, frame in enumerate((UPDATE, back)):
                    await server.publish("book:MATIC/USD", frame)
                    await wait_until(lambda i=i: n() >= 5 + i, 10, "the documented update")
                await server.publish("book:MATIC/USD", wrong)

                def unsubscribes() -> int:
                    return sum(
                        1 for r in server.requests if isinstance(r, dict) and r.get("method") == "unsubscribe"
                    )

                await wait_until(lambda: unsubscribes() >= 1 and n() >= 8, 10, "the resync")
                await asyncio.sleep(0.3)

            await run_pipeline(
                config, scenario, configure={"kraken": lambda ex: server.configure(ex, symbols, ticks=TICKS)}
            )
            return server
        finally:
            await server.stop()

    asyncio.run(main())
    events = rows(tmp_path, "ccxt", "events")
    gaps = [e for e in events if e["event_type"] == "gap"]
    # only the wrong checksum is refused: every documented one was accepted on ccxt's book
    assert [(e["symbol"], e["channel"]) for e in gaps] == [("MATIC/USD", "orderbook")], gaps
    assert "checksum mismatch" in gaps[0]["detail"] and str(SNAP["data"][0]["checksum"]) in gaps[0]["detail"]

    got = sorted(rows(tmp_path, "ccxt", "book_updates"), key=lambda r: (r["capture_ts"].value, r["seq"]))
    assert {r["sync_rule"] for r in got} == {"none"}
    btc = [r for r in got if r["symbol"] == "BTC/USD"]
    assert btc[0]["kind"] == "snapshot"
    assert [(lv["price"], lv["size"]) for lv in btc[0]["bids"]] == _levels(BTC_SNAP["data"][0]["bids"])
    assert [(lv["price"], lv["size"]) for lv in btc[0]["asks"]] == _levels(BTC_SNAP["data"][0]["asks"])

    matic = [r for r in got if r["symbol"] == "MATIC/USD"]
    kinds = [r["kind"] for r in matic]
    assert kinds[:4] == ["snapshot", "checkpoint", "delta", "delta"], kinds
    assert matic[0]["timestamp"].value // 1_000_000 == iso_ms(SNAP["data"][0]["timestamp"])
    assert [(lv["price"], lv["size"]) for lv in matic[2]["bids"]] == [(0.5657, 1098.3947558)]
    assert matic[2]["asks"] == []
    documented = _documented_books()
    want = [documented[0], documented[1], documented[0]]  # snapshot, update, update taken back
    replayed = [(dict(b), dict(a)) for r, b, a in book_replay(matic[:4]) if r["kind"] != "checkpoint"]
    assert replayed == [(b, a) for b, a, _ in want]
    # after the refused frame the book is loaded again from a snapshot (the resync)
    assert "snapshot" in kinds[4:]

    _silver_holds_the_documented_books(tmp_path, [(b, a) for b, a, _ in want])


def _silver_holds_the_documented_books(root: Path, want: list[tuple[dict, dict]]) -> None:
    cfg, _ = land_and_build(root, "orderbook orderbook_unserved")
    got = model_rows(cfg, "orderbook", "kind, bids, asks, break_before", "seq", where="symbol = 'MATIC/USD'")
    assert [g[0] for g in got[:3]] == ["snapshot", "delta", "delta"]
    for (kind, bids, asks, _), (wb, wa) in zip(got[:3], want, strict=True):
        assert [(lv["price"], lv["size"]) for lv in bids] == sorted(wb.items(), reverse=True), kind
        assert [(lv["price"], lv["size"]) for lv in asks] == sorted(wa.items()), kind
    assert [g[3] for g in got[:3]] == [True, False, False]
    # the reload after the refused frame restarts the series
    assert got[-1][0] == "snapshot" and got[-1][3] is True
