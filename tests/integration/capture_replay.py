"""Shared drivers of the tests that take a real capture (or documented frames) to silver: the replay
over the wire to the real ccxt.pro client once the collector has loaded its book, and the land +
build whose model files the test then reads."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fake_exchange import make_config, run_pipeline, wait_until

from daedalus.collector.connection import Emitter
from daedalus.devkit.simulator.binance_futures import FakeBinanceFutures
from daedalus.devkit.simulator.replay import Capture


async def replay_once_loaded(
    server: Any,
    emitter: Emitter,
    capture: Capture,
    streams: list[str],
    applied: int,
    diffs_within_s: float = 120,
    **replay: Any,
) -> None:
    """Wait for the subscriptions and the collector's book load, replay the whole capture at once,
    then wait for every applied diff (the load and its checkpoint are the 2 rows beyond them)."""
    await server.wait_subscribed(streams)
    updates = lambda: emitter.counters.get(("ccxt", "book_updates"))  # noqa: E731
    await wait_until(lambda: updates() is not None and updates().received >= 2, 30, "the load")
    await server.replay(capture, speed=0, **replay)
    await wait_until(lambda: updates().received >= applied + 2, diffs_within_s, "every diff")


def futures_config(root: Path, exchange: str, symbol: str) -> Any:
    """One futures symbol's trades and book updates; a minute before a feed counts as stale, for a
    replay that pauses while the collector loads its book."""
    return make_config(
        root,
        exchanges=[exchange],
        symbols=[symbol],
        channels=["trades", "book_updates"],
        stale_after_seconds=60.0,
    )


def replay_futures_capture(root: Path, exchange: str, symbol: str, capture: Capture, kind: str) -> Any:
    """The capture's diffs and trades through a fake Binance futures venue (`kind`: linear or
    inverse) whose REST depth answers the capture's own snapshot, collected as `exchange` into raw
    segments under `root`; returns the stopped server once every applied diff and every trade was
    received."""
    config = futures_config(root, exchange, symbol)
    sid, snap = capture.symbol_id, capture.snapshot
    applied = sum(1 for d in capture.depth_updates() if d["u"] >= snap["lastUpdateId"])

    async def main() -> FakeBinanceFutures:
        server = await FakeBinanceFutures(kind).start()
        server.books[sid] = server.new_book(snap)
        try:

            async def scenario(emitter: Emitter) -> None:
                streams = [f"{sid.lower()}@depth@100ms", f"{sid.lower()}@trade"]
                await replay_once_loaded(server, emitter, capture, streams, applied, with_ticker=False)
                trades = lambda: emitter.counters[("ccxt", "trades")].received  # noqa: E731
                await wait_until(lambda: trades() >= len(capture.trades()), 30, "every trade")
                await asyncio.sleep(0.3)

            await run_pipeline(
                config, scenario, configure={exchange: lambda ex: server.configure(ex, [symbol])}
            )
            return server
        finally:
            await server.stop()

    return asyncio.run(main())


def land_and_build(root: Path, select: str) -> tuple[Any, Any]:
    """Land the raw files under `root` and build `select` from scratch (no catalog): the config and
    the build result."""
    from daedalus.build import build
    from daedalus.config import load_config
    from daedalus.land.landing import land

    cfg = load_config(
        None,
        {
            "storage.root": str(root),
            "duckdb.temp_directory": str(root / "_tmp"),
            "etl.features.max_levels": 20,
        },
        environ={},
    )
    assert not land(cfg).errors
    return cfg, build(cfg, select=select, full_refresh=True, catalog=False)


def model_rows(
    cfg: Any, name: str, cols: str, order: str, where: str = "TRUE", group: bool = False
) -> list[tuple]:
    """`cols` of the built model `name`'s files (grouped by the others where `group`), ordered by
    `order`; none when the model has no file."""
    import duckdb

    from daedalus.lake import open_lake
    from daedalus.lake.manifest import Manifest

    lake = open_lake(cfg)
    files = [lake.url(f.path) for f in Manifest.load(lake).models[name].files()]
    if not files:
        return []
    sql = (
        f"SELECT {cols} FROM read_parquet({files!r}, hive_partitioning=false, union_by_name=true) "
        f"WHERE {where} {'GROUP BY ALL ' if group else ''}ORDER BY {order}"
    )
    return duckdb.connect().execute(sql).fetchall()


def assert_reference_books(got: list[tuple], want: list[dict], at: int) -> None:
    """Each served orderbook row equals the book the documented rule keeps at the same update id
    (tests/reference/futures_capture.py): from column `at` on, nonce, bids, asks, break_before (only
    on the first row), then each band's bid and ask depth."""
    from reference.book_reference import same_float

    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        nonce, bids, asks, broken, *bands = g[at:]
        assert nonce == w["last_update_id"], i
        assert [(lv["price"], lv["size"]) for lv in bids] == w["bids"], i
        assert [(lv["price"], lv["size"]) for lv in asks] == w["asks"], i
        assert broken == (i == 0), i
        for b in range(len(w["bid_bands"])):
            assert same_float(bands[2 * b], w["bid_bands"][b]), (i, b)
            assert same_float(bands[2 * b + 1], w["ask_bands"][b]), (i, b)
