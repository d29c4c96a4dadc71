"""Bronze `book_updates` from the real Binance capture replayed through the real collector (ccxt.pro
against the fake Binance server): the book replayed from the landed rows equals, at full depth and
after every update, the book rebuilt independently from the capture by Binance's documented rule."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fake_exchange import make_config, rows, run_pipeline, wait_until

from daedalus.collector.connection import Emitter
from daedalus.simulator.binance import FakeBinance, ServerBook
from daedalus.simulator.replay import Capture, load_capture

pytestmark = [pytest.mark.network, pytest.mark.slow]
SYMBOL = "BTC/USDT"


def independent_books(capture: Capture):
    """(u, bids, asks) after every diff applied per data/README.md: REST snapshot, drop u <= lastUpdateId,
    the first applied has U <= lastUpdateId+1 <= u, then each U = previous u + 1. Full depth, no trim."""
    snap = capture.snapshot
    bids = {float(p): float(q) for p, q in snap["bids"]}
    asks = {float(p): float(q) for p, q in snap["asks"]}
    last = snap["lastUpdateId"]
    yield last, bids, asks
    for d in capture.depth_updates():
        if d["u"] <= last:
            continue
        assert d["U"] <= last + 1 <= d["u"], "the capture itself has a gap"
        for side, key in ((bids, "b"), (asks, "a")):
            for p, q in d[key]:
                if float(q) == 0:
                    side.pop(float(p), None)
                else:
                    side[float(p)] = float(q)
        last = d["u"]
        yield last, bids, asks


def replay_rows(update_rows: list[dict]):
    """The book after each bronze row, replayed with plain dicts: snapshot/checkpoint replace, deltas
    set absolute sizes (0 deletes, and only ever a level the book holds)."""
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    for r in update_rows:
        if r["kind"] in ("snapshot", "checkpoint"):
            bids = {lvl["price"]: lvl["size"] for lvl in r["bids"]}
            asks = {lvl["price"]: lvl["size"] for lvl in r["asks"]}
        else:
            assert r["kind"] == "delta"
            for side, levels in ((bids, r["bids"]), (asks, r["asks"])):
                for lvl in levels:
                    if lvl["size"] == 0:
                        assert lvl["price"] in side, f"delete of a level not held at u={r['last_update_id']}"
                        del side[lvl["price"]]
                    else:
                        side[lvl["price"]] = lvl["size"]
        yield r, bids, asks


def test_replayed_updates_equal_independent_book_at_full_depth(tmp_path: Path, capture_path: Path) -> None:
    capture = load_capture(capture_path)
    sid = capture.symbol_id
    config = make_config(tmp_path, exchanges=["binance"], symbols=[SYMBOL],
                         channels=["orderbook", "book_updates", "ticker"], stale_after_seconds=60.0)

    async def main() -> dict:
        server = await FakeBinance().start()
        snap = capture.snapshot
        # the REST answer is the capture's own snapshot: no diff is published before it is served
        server.books[sid] = ServerBook(dict(snap["bids"]), dict(snap["asks"]), snap["lastUpdateId"])
        try:
            async def scenario(emitter: Emitter) -> None:
                await server.wait_subscribed([f"{sid.lower()}@depth@100ms"])
                updates = lambda: emitter.counters.get(("ccxt", "book_updates"))  # noqa: E731
                await wait_until(lambda: updates() is not None and updates().received >= 2, 30, "the snapshot")
                await server.replay(capture, speed=0)
                applied = sum(1 for d in capture.depth_updates() if d["u"] > snap["lastUpdateId"])
                # snapshot + its checkpoint + one delta per applied diff
                await wait_until(lambda: updates().received >= applied + 2, 90, "every diff")

            return await run_pipeline(config, scenario, configure={"binance": lambda ex: server.configure(ex, [SYMBOL])})
        finally:
            await server.stop()

    summary = asyncio.run(main())
    assert summary["collector"]["dropped"] == 0
    got = sorted(rows(tmp_path, "ccxt", "book_updates"), key=lambda r: r["seq"])
    assert len({r["conn_id"] for r in got}) == 1
    kinds = [r["kind"] for r in got]
    assert kinds[:2] == ["snapshot", "checkpoint"] and set(kinds[2:]) == {"delta"}
    first = got[0]
    assert first["last_update_id"] == capture.snapshot["lastUpdateId"]
    assert len(first["bids"]) == len(first["asks"]) == 1000  # the depth the venue gave
    deltas = got[2:]
    # one row per applied diff, the venue's ids: U/u, no pu on spot
    want_ids = [(d["U"], d["u"]) for d in capture.depth_updates() if d["u"] > capture.snapshot["lastUpdateId"]]
    assert [(r["first_update_id"], r["last_update_id"]) for r in deltas] == want_ids
    assert all(r["prev_update_id"] is None for r in deltas)
    assert [r["timestamp"].value // 1_000_000 for r in deltas] == \
        [d["E"] for d in capture.depth_updates() if d["u"] > capture.snapshot["lastUpdateId"]]
    # changed levels only: an average diff of the capture touches tens of levels, not the book
    assert 10 < sum(len(r["bids"]) + len(r["asks"]) for r in deltas) / len(deltas) < 100

    # the book after every row equals the independent book at the same update id, at full depth
    independent = independent_books(capture)
    u, ib, ia = next(independent)
    compared = 0
    max_depth = 0
    for r, bids, asks in replay_rows(got):
        while u < r["last_update_id"]:
            u, ib, ia = next(independent)
        assert u == r["last_update_id"]
        assert bids == ib and asks == ia, f"book differs at u={u}"
        compared += 1
        max_depth = max(max_depth, len(bids), len(asks))
    assert compared == len(got) > 3000 and max_depth > 1000  # levels beyond the REST snapshot's depth kept

    # best bid/ask equal the exchange's bookTicker wherever the update ids match
    by_u = {bt["u"]: bt for bt in capture.book_tickers()}
    matched = 0
    for r, bids, asks in replay_rows(got):
        bt = by_u.get(r["last_update_id"])
        if bt is None:
            continue
        best_bid, best_ask = max(bids), min(asks)
        assert (best_bid, bids[best_bid]) == (float(bt["b"]), float(bt["B"]))
        assert (best_ask, asks[best_ask]) == (float(bt["a"]), float(bt["A"]))
        matched += 1
    assert matched > 500

    # the 20-level snapshots of the same run agree with the replayed book's top
    books = {b["nonce"]: b for b in rows(tmp_path, "ccxt", "orderbook")}
    checked = 0
    for r, bids, _ in replay_rows(got):
        b = books.get(r["last_update_id"])
        if b is not None and r["kind"] == "delta":
            top = sorted(bids.items(), reverse=True)[:20]
            assert [(lvl["price"], lvl["size"]) for lvl in b["bids"]] == top
            checked += 1
    assert checked > 3000
