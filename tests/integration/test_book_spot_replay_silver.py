"""The real Binance spot capture replayed over the wire to the real collector (fake Binance, real
ccxt.pro), landed and built (issue 28): silver.orderbook serves one row per applied diff — never the
collector's checkpoints — each equal (top 20 levels, every band over the whole book) to the book
rebuilt independently from the capture by Binance's spot rule; no break after the first row; the
accounting data tests pass. As `binance` and as `binanceus`.

The REST load has no exchange time and the replay's receive clock runs in today's date while the
capture's exchange clock says 2024-08-08: no slice reads the load with a stamped row, so it is not
served but counted (`no_exchange_time`, at its receive time); the checkpoint the collector writes
after it (stamped with the first diff's time) seeds the rebuild. In a live run the two clocks agree
within a second and the load is served, dated by the next row."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from capture_replay import land_and_build, model_rows, replay_once_loaded
from fake_exchange import make_config, rows, run_pipeline
from test_book_updates_binance import SYMBOL, independent_books

from daedalus.collector.connection import Emitter
from daedalus.devkit.simulator.binance import FakeBinance, ServerBook
from daedalus.devkit.simulator.replay import load_capture

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds the reference package
from reference.book_reference import bands_of, same_float  # noqa: E402

pytestmark = [pytest.mark.network, pytest.mark.slow]
EDGES = [0.0, 5.0, 10.0, 25.0, 50.0, 100.0]
BANDS = ["0_5bps", "5_10bps", "10_25bps", "25_50bps", "50_100bps"]


@pytest.mark.parametrize("exchange", ["binance", "binanceus"])
def test_spot_capture_through_the_collector_serves_one_row_per_applied_diff(
    tmp_path: Path, capture_path: Path, exchange: str
) -> None:
    capture = load_capture(capture_path)
    sid, snap = capture.symbol_id, capture.snapshot
    config = make_config(
        tmp_path, exchanges=[exchange], symbols=[SYMBOL], channels=["book_updates"], stale_after_seconds=60.0
    )
    applied = sum(1 for d in capture.depth_updates() if d["u"] > snap["lastUpdateId"])

    async def main() -> None:
        server = await FakeBinance().start()
        server.books[sid] = ServerBook(dict(snap["bids"]), dict(snap["asks"]), snap["lastUpdateId"])
        try:

            async def scenario(emitter: Emitter) -> None:
                streams = [f"{sid.lower()}@depth@100ms"]
                await replay_once_loaded(server, emitter, capture, streams, applied, diffs_within_s=90)
                await asyncio.sleep(0.3)

            await run_pipeline(
                config, scenario, configure={exchange: lambda ex: server.configure(ex, [SYMBOL])}
            )
        finally:
            await server.stop()

    asyncio.run(main())
    bronze = rows(tmp_path, "ccxt", "book_updates")
    n_checkpoints = sum(1 for r in bronze if r["kind"] == "checkpoint")
    assert n_checkpoints >= 2 and len(bronze) == applied + 1 + n_checkpoints

    cfg, result = land_and_build(tmp_path, "orderbook orderbook_unserved rejects")
    assert {"book_messages_accounted", "book_unserved_share"} <= {t.name for t in result.tests}
    assert all(t.passed for t in result.tests), [t.name for t in result.tests if not t.passed]
    cols = ", ".join(
        ["exchange", "kind", "nonce", "bids", "asks", "break_before"]
        + [f"{s}_depth_{b}" for b in BANDS for s in ("bid", "ask")]
    )
    got = model_rows(cfg, "orderbook", cols, "ts, seq")
    # one row per applied diff: the checkpoints are not served (before issue 28 they added
    # n_checkpoints rows repeating the book)
    assert len(got) == applied and {g[0] for g in got} == {exchange}
    assert [g[1] for g in got] == ["delta"] * applied
    books = independent_books(capture)
    next(books)  # the load
    for i, ((u, bids, asks), g) in enumerate(zip(books, got, strict=True)):
        bb, aa = sorted(bids, reverse=True), sorted(asks)
        mid = (bb[0] + aa[0]) / 2
        assert g[2] == u, i
        assert [(lv["price"], lv["size"]) for lv in g[3]] == [(p, bids[p]) for p in bb[:20]], i
        assert [(lv["price"], lv["size"]) for lv in g[4]] == [(p, asks[p]) for p in aa[:20]], i
        assert g[5] == (i == 0), i
        want_b, want_a = bands_of(bids, bb, mid, EDGES), bands_of(asks, aa, mid, EDGES)
        for b in range(len(BANDS)):
            assert same_float(g[6 + 2 * b], want_b[b]) and same_float(g[7 + 2 * b], want_a[b]), (i, BANDS[b])
    got_unserved = model_rows(cfg, "orderbook_unserved", "kind, last_update_id, reason", "1")
    assert got_unserved == [("snapshot", snap["lastUpdateId"], "no_exchange_time")]
