"""Bronze `book_updates` from the real Binance capture replayed through the real collector (ccxt.pro
against the fake Binance server): the book replayed from the landed rows equals, at full depth and
after every update, the book rebuilt independently from the capture by Binance's documented rule."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fake_exchange import book_replay, make_config, rows, run_pipeline, wait_until

from daedalus.collector.ccxt_capture import Hooks
from daedalus.collector.connection import Emitter
from daedalus.collector.venue_binance import Venue as BinanceVenue
from daedalus.collector.venue_ccxt import CcxtVenue
from daedalus.devkit.simulator.binance import FakeBinance, ServerBook
from daedalus.devkit.simulator.replay import Capture, load_capture

pytestmark = pytest.mark.network
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


@pytest.mark.slow
def test_replayed_updates_equal_independent_book_at_full_depth(tmp_path: Path, capture_path: Path) -> None:
    capture = load_capture(capture_path)
    sid = capture.symbol_id
    config = make_config(
        tmp_path,
        exchanges=["binance"],
        symbols=[SYMBOL],
        channels=["orderbook", "book_updates", "ticker"],
        stale_after_seconds=60.0,
    )

    async def main() -> dict:
        server = await FakeBinance().start()
        snap = capture.snapshot
        # the REST answer is the capture's own snapshot: no diff is published before it is served
        server.books[sid] = ServerBook(dict(snap["bids"]), dict(snap["asks"]), snap["lastUpdateId"])
        try:

            async def scenario(emitter: Emitter) -> None:
                await server.wait_subscribed([f"{sid.lower()}@depth@100ms"])
                updates = lambda: emitter.counters.get(("ccxt", "book_updates"))  # noqa: E731
                await wait_until(
                    lambda: updates() is not None and updates().received >= 2, 30, "the snapshot"
                )
                await server.replay(capture, speed=0)
                applied = sum(1 for d in capture.depth_updates() if d["u"] > snap["lastUpdateId"])
                # snapshot + its checkpoint + one delta per applied diff
                await wait_until(lambda: updates().received >= applied + 2, 90, "every diff")

            return await run_pipeline(
                config, scenario, configure={"binance": lambda ex: server.configure(ex, [SYMBOL])}
            )
        finally:
            await server.stop()

    summary = asyncio.run(main())
    assert summary["collector"]["dropped"] == 0
    got = sorted(rows(tmp_path, "ccxt", "book_updates"), key=lambda r: r["seq"])
    assert len({r["conn_id"] for r in got}) == 1
    kinds = [r["kind"] for r in got]
    assert kinds[:2] == ["snapshot", "checkpoint"] and set(kinds[2:]) == {"delta", "checkpoint"}
    first = got[0]
    assert first["last_update_id"] == capture.snapshot["lastUpdateId"]
    assert len(first["bids"]) == len(first["asks"]) == 1000  # the depth the venue gave
    # the load has no exchange time (dated by the collector's 2026 clock); the first diff, dated 2024 by
    # the exchange, is preceded by a checkpoint stamped with its time, so 2024-08-08 rebuilds alone
    hourly = [i for i, r in enumerate(got) if i > 1 and r["kind"] == "checkpoint"]
    assert len(hourly) == 2 and hourly[0] == 2 and got[2]["timestamp"] == got[3]["timestamp"]
    assert got[2]["last_update_id"] == capture.snapshot["lastUpdateId"]
    # the exchange clock passes midnight near the capture's end: a checkpoint stamped 2024-08-09
    # 00:00:00 (so it lands in that day's partition), right before the first diff at/after it
    midnight = pd.Timestamp("2024-08-09", tz="UTC")
    i = hourly[1]
    assert got[i]["timestamp"] == midnight
    assert got[i - 1]["timestamp"] < midnight <= got[i + 1]["timestamp"]
    assert got[i]["last_update_id"] == got[i - 1]["last_update_id"]
    deltas = [r for r in got if r["kind"] == "delta"]
    # one row per applied diff, the venue's ids: U/u, no pu on spot
    want_ids = [
        (d["U"], d["u"]) for d in capture.depth_updates() if d["u"] > capture.snapshot["lastUpdateId"]
    ]
    assert [(r["first_update_id"], r["last_update_id"]) for r in deltas] == want_ids
    assert all(r["prev_update_id"] is None for r in deltas)
    assert [r["timestamp"].value // 1_000_000 for r in deltas] == [
        d["E"] for d in capture.depth_updates() if d["u"] > capture.snapshot["lastUpdateId"]
    ]
    # changed levels only: an average diff of the capture touches tens of levels, not the book
    assert 10 < sum(len(r["bids"]) + len(r["asks"]) for r in deltas) / len(deltas) < 100

    # the book after every row equals the independent book at the same update id, at full depth
    independent = independent_books(capture)
    u, ib, ia = next(independent)
    compared = 0
    max_depth = 0
    for r, bids, asks in book_replay(got):
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
    for r, bids, asks in book_replay(got):
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
    for r, bids, _ in book_replay(got):
        b = books.get(r["last_update_id"])
        if b is not None and r["kind"] == "delta":
            top = sorted(bids.items(), reverse=True)[:20]
            assert [(lvl["price"], lvl["size"]) for lvl in b["bids"]] == top
            checked += 1
    assert checked > 3000


HOUR_MS = 3_600_000
T0 = 1_723_165_200_000  # 2024-08-09 01:00:00.000 UTC


class _FramelessBinance(BinanceVenue):
    """Binance's module without the exchange time read from the frame: the path of every venue whose
    module gives none (ccxt dates the row only once it applied the message)."""

    book_update = CcxtVenue.book_update


def _frameless(exchange: Any) -> None:
    c = exchange.daedalus_hooks.c
    c.venue = _FramelessBinance()
    exchange.daedalus_hooks = Hooks(c)


def _hand_built(tmp_path: Path, steps: Any, frameless: bool = False) -> list[dict]:
    """Run the collector against the fake Binance holding a 3-level book (lastUpdateId 100) and
    publish `steps(server, publish)`; returns the book_updates rows in emission order. `frameless`:
    the collector's venue reads no exchange time from the frames (set before any network use)."""
    config = make_config(
        tmp_path, exchanges=["binance"], symbols=[SYMBOL], channels=["book_updates"], stale_after_seconds=60.0
    )

    async def main() -> dict:
        server = await FakeBinance().start()
        server.books["BTCUSDT"] = ServerBook(
            {"100.0": "1", "99.0": "2", "98.0": "3"}, {"101.0": "1", "102.0": "2", "103.0": "3"}, 100
        )
        try:

            async def scenario(emitter: Emitter) -> None:
                await server.wait_subscribed(["btcusdt@depth@100ms"])
                received = lambda: emitter.counters[("ccxt", "book_updates")].received  # noqa: E731
                await wait_until(
                    lambda: ("ccxt", "book_updates") in emitter.counters and received() >= 2,
                    30,
                    "the snapshot",
                )

                async def publish(u: int, e_ms: int, bids: list, asks: list, expect: int) -> None:
                    await server.publish(
                        "btcusdt@depth@100ms",
                        {"e": "depthUpdate", "E": e_ms, "s": "BTCUSDT", "U": u, "u": u, "b": bids, "a": asks},
                    )
                    await wait_until(lambda: received() >= expect, 30, f"row {expect} after u={u}")

                await steps(server, publish)

            def configure(ex: Any) -> None:
                server.configure(ex, [SYMBOL])
                if frameless:  # the collector sets its hooks after this: swap them on the next turn
                    asyncio.get_running_loop().call_soon(_frameless, ex)

            return await run_pipeline(config, scenario, configure={"binance": configure})
        finally:
            await server.stop()

    assert asyncio.run(main())["collector"]["dropped"] == 0
    got = rows(tmp_path, "ccxt", "book_updates")
    return sorted(got, key=lambda r: (r["capture_ts"].value, r["seq"]))


def _levels(book: dict, bids: bool) -> list[dict]:
    return [{"price": p, "size": s} for p, s in sorted(book.items(), reverse=bids)]


@pytest.mark.parametrize("frameless", [False, True], ids=["frame-time", "frameless"])
def test_checkpoint_at_the_first_update_past_an_hour_boundary(tmp_path: Path, frameless: bool) -> None:
    async def steps(server: FakeBinance, publish: Any) -> None:
        await publish(101, T0 - 100, [["99.5", "4"]], [], 3)  # 00:59:59.900
        await publish(102, T0 - 1, [["98.0", "0"]], [["101.0", "0.5"]], 4)  # 00:59:59.999
        await publish(103, T0 + 100, [["100.0", "0"]], [], 6)  # 01:00:00.100: checkpoint, then the delta
        await publish(104, T0 + 200, [], [["104.0", "1"]], 7)
        await publish(105, T0 + HOUR_MS, [["97.0", "1"]], [], 9)  # 02:00:00.000 exactly: a boundary too

    got = _hand_built(tmp_path, steps, frameless)
    # (the load has no exchange time: it is dated by the collector's clock, and the first diff, dated
    # by the exchange in 2024, steps back: a checkpoint stamped with that diff's time)
    assert [(r["kind"], r["last_update_id"]) for r in got] == [
        ("snapshot", 100),
        ("checkpoint", 100),
        ("checkpoint", 100),
        ("delta", 101),
        ("delta", 102),
        ("checkpoint", 102),
        ("delta", 103),
        ("delta", 104),
        ("checkpoint", 104),
        ("delta", 105),
    ]
    assert got[2]["timestamp"].value == (T0 - 100) * 1_000_000
    got = got[:2] + got[3:]
    hourly = got[4]
    # the exact book held before the first 01:00 update, stamped at the boundary (its partition's hour)
    assert hourly["timestamp"].value == T0 * 1_000_000 and hourly["first_update_id"] is None
    assert hourly["bids"] == _levels({100.0: 1.0, 99.5: 4.0, 99.0: 2.0}, True)
    assert hourly["asks"] == _levels({101.0: 0.5, 102.0: 2.0, 103.0: 3.0}, False)
    assert got[7]["timestamp"].value == (T0 + HOUR_MS) * 1_000_000
    assert got[7]["bids"] == _levels({99.5: 4.0, 99.0: 2.0}, True)
    assert got[7]["asks"] == _levels({101.0: 0.5, 102.0: 2.0, 103.0: 3.0, 104.0: 1.0}, False)
    delta = got[5]
    assert (delta["first_update_id"], delta["bids"], delta["asks"]) == (
        None if frameless else 103,  # the frame's ids come from the venue module
        [{"price": 100.0, "size": 0.0}],
        [],
    )
    # the 01:00 hour alone (from its checkpoint) rebuilds the same books as the stream from its start
    *_, (_, full_b, full_a) = book_replay(got)
    *_, (_, hour_b, hour_a) = book_replay(got[4:])
    assert (hour_b, hour_a) == (full_b, full_a)


def test_gap_resyncs_with_a_snapshot_row_and_a_checkpoint(tmp_path: Path) -> None:
    async def steps(server: FakeBinance, publish: Any) -> None:
        await publish(101, T0, [["99.5", "4"]], [], 3)
        server.skip_depth("BTCUSDT")  # u=102 moves the server's book but is not sent: a gap
        await server.publish(
            "btcusdt@depth@100ms",
            {
                "e": "depthUpdate",
                "E": T0 + 1,
                "s": "BTCUSDT",
                "U": 102,
                "u": 102,
                "b": [["99.0", "0"]],
                "a": [],
            },
        )
        # u=103 shows the gap; ccxt reloads the REST snapshot (now at 103), written with its checkpoint
        await publish(103, T0 + 2, [], [["101.5", "7"]], 5)
        await publish(104, T0 + 3, [["100.0", "3"]], [], 6)

    got = _hand_built(tmp_path, steps)
    # each load is dated by the collector's clock, the diffs by the exchange's (2024): a checkpoint
    # stamped with the first diff's time follows each load
    assert [(r["kind"], r["last_update_id"]) for r in got] == [
        ("snapshot", 100),
        ("checkpoint", 100),
        ("checkpoint", 100),
        ("delta", 101),
        ("snapshot", 103),
        ("checkpoint", 103),
        ("checkpoint", 103),
        ("delta", 104),
    ]
    got = [r for i, r in enumerate(got) if i not in (2, 6)]
    reload = got[3]
    assert reload["bids"] == _levels({100.0: 1.0, 99.5: 4.0, 98.0: 3.0}, True)
    assert reload["asks"] == _levels({101.0: 1.0, 101.5: 7.0, 102.0: 2.0, 103.0: 3.0}, False)
    assert got[4]["bids"] == reload["bids"] and got[4]["asks"] == reload["asks"]
    events = [e for e in rows(tmp_path, "ccxt", "events") if e["event_type"] in ("gap", "resync")]
    assert [(e["event_type"], e["channel"], e["symbol"]) for e in events] == [
        ("gap", "orderbook", SYMBOL),
        ("resync", "orderbook", SYMBOL),
    ]
    # the events lie between the last row of the broken book and the reload
    assert got[2]["capture_ts"] <= events[0]["capture_ts"] <= got[3]["capture_ts"]
    *_, (_, bids, asks) = book_replay(got)
    assert bids == {100.0: 3.0, 99.5: 4.0, 98.0: 3.0}
