"""Helpers for the fake-exchange integration tests: config for a temp lake, reading raw segments,
running the real pipeline while a scenario drives the fake exchange."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from daedalus.config import Config, load_config

DATA = Path(__file__).resolve().parents[1] / "data"
CAPTURE = DATA / "binance-spot-btcusdt-20240808.jsonl.gz"


def make_config(root: Path, **ingestion: Any) -> Config:
    """A config for a temp lake: fast flushes, short stale deadline and backoff unless overridden."""
    overrides = {
        "storage.root": str(root),
        "ingestion.flush_interval_seconds": 0.2,
        "ingestion.stale_after_seconds": 3.0,
        "ingestion.backoff_initial_seconds": 0.05,
        "ingestion.backoff_max_seconds": 0.2,
    }
    overrides.update({f"ingestion.{k}": v for k, v in ingestion.items()})
    return load_config(None, overrides, environ={})


def read_ready(root: Path, source: str, channel: str) -> pa.Table | None:
    """Every closed raw segment of a stream, concatenated in name (= time) order."""
    files = sorted((root / "raw" / "ready" / source / channel).glob("segment_*.parquet"))
    if not files:
        return None
    return pa.concat_tables([pq.read_table(f) for f in files])


def rows(root: Path, source: str, channel: str) -> list[dict]:
    """Rows as dicts; ns timestamps as pandas Timestamps. Built column by column: the collector ran in
    this process and made pyarrow take pandas as absent (collector/quarantine.py), so pyarrow's own
    to_pylist cannot return ns timestamps any more."""
    return table_rows(read_ready(root, source, channel))


def bronze_rows(root: Path, channel: str) -> list[dict]:
    """Every landed bronze row of a channel (all exchanges and dates), as `rows` gives them."""
    files = sorted((root / "bronze" / channel).glob("exchange=*/date=*/*.parquet"))
    return table_rows(pa.concat_tables([pq.read_table(f) for f in files]) if files else None)


def table_rows(t: pa.Table | None) -> list[dict]:
    import pandas as pd

    if t is None:
        return []
    cols: dict[str, list] = {}
    for name in t.column_names:
        col = t[name]
        if pa.types.is_timestamp(col.type):
            cols[name] = [
                None if v is None else pd.Timestamp(v, unit="ns", tz="UTC")
                for v in col.cast(pa.int64()).to_pylist()
            ]
        else:
            cols[name] = col.to_pylist()
    return [dict(zip(cols, vals, strict=True)) for vals in zip(*cols.values(), strict=True)]


async def wait_until(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


async def run_pipeline(
    config: Config,
    scenario: Callable[[Any], Awaitable[None]],
    **kwargs: Any,
) -> dict:
    """Run `run_collect` while `scenario(emitter)` drives the fake exchange; stop when it returns."""
    from daedalus.collector.pipeline import run_collect

    stop = asyncio.Event()
    started: asyncio.Future = asyncio.get_running_loop().create_future()
    task = asyncio.ensure_future(run_collect(config, stop, on_started=started.set_result, **kwargs))
    done, _ = await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        return task.result()  # failed before starting: raise its error
    try:
        await scenario(started.result())
    finally:
        stop.set()
    return await task


def book_replay(update_rows: list[dict]) -> Any:
    """Yield (row, bids, asks) after each bronze `book_updates` row, replayed with plain dicts: a
    snapshot or checkpoint replaces the book, a delta sets absolute sizes; a delete must name a level
    the book holds (the collector never writes any other)."""
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    for r in update_rows:
        if r["kind"] in ("snapshot", "checkpoint"):
            bids = {lvl["price"]: lvl["size"] for lvl in r["bids"]}
            asks = {lvl["price"]: lvl["size"] for lvl in r["asks"]}
        else:
            assert r["kind"] == "delta", r["kind"]
            for side, levels in ((bids, r["bids"]), (asks, r["asks"])):
                for lvl in levels:
                    if lvl["size"] == 0:
                        assert lvl["price"] in side, f"delete of a level not held (seq {r['seq']})"
                        del side[lvl["price"]]
                    else:
                        side[lvl["price"]] = lvl["size"]
        yield r, bids, asks


def top(side: dict[float, float], n: int, bids: bool) -> list[tuple[float, float]]:
    return sorted(side.items(), reverse=bids)[:n]


def updates_match_snapshots(update_rows: list[dict], book_rows: list[dict], levels: int) -> int:
    """Merge one series' book_updates and orderbook rows in emission order (capture_ts, then the
    connection's seq) and check that every `orderbook` row equals the top `levels` of the book replayed
    from the updates before it. Returns the number of rows checked."""
    merged = sorted([*update_rows, *book_rows], key=lambda r: (r["capture_ts"].value, r["seq"]))
    updates = [r for r in merged if "kind" in r]
    replay = book_replay(updates)
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    checked = 0
    for r in merged:
        if "kind" in r:
            _, bids, asks = next(replay)
            continue
        assert [(lv["price"], lv["size"]) for lv in r["bids"]] == top(bids, levels, True), r["seq"]
        assert [(lv["price"], lv["size"]) for lv in r["asks"]] == top(asks, levels, False), r["seq"]
        checked += 1
    return checked


def record_sent(server: Any) -> list[dict]:
    """Make a fake venue (daedalus.devkit.simulator.wsfake.FakeVenue) keep every frame it would send,
    to one peer or to a topic's subscribers, in the list returned: its frames without a socket."""
    sent: list[dict] = []

    async def send(peer: object, payload: dict) -> None:
        sent.append(payload)

    async def publish(topic: str, payload: dict) -> None:
        sent.append(payload)

    server.send = send
    server.publish = publish
    return sent


def venue_frames(
    make_venue: Callable[[], Any],
    market: Any,
    topic: str,
    steps: int = 0,
    until: Callable[[list], bool] | None = None,
) -> list[dict]:
    """What a fake venue made by `make_venue` sends, no socket: its snapshot of `topic`, then the
    frames of `market`'s steps, at least `steps` of them and on until `until(sent)` holds."""

    async def run() -> list[dict]:
        server = make_venue()
        server.load_market(market)
        sent = record_sent(server)
        await server._snapshot(None, topic)
        done = 0
        while done < steps or (until is not None and not until(sent)):
            for ev in market.step():
                await server.publish_market_event(ev, market)
            done += 1
        return sent

    return asyncio.run(run())


def libfaketime_or_skip() -> str:
    """libfaketime, or a failure in CI (`.ci/run` installs Debian's libfaketime), a skip elsewhere."""
    from daedalus.devkit.soak.clock import libfaketime

    lib = libfaketime()
    if lib is None:
        message = "libfaketime is not installed (Debian: apt-get install -y libfaketime; .ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return lib
