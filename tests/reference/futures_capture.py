"""Bronze `book_updates` straight from the real Binance COIN-M capture (tests/data), and an
independent plain-dict book kept by Binance's futures rule, written from its documentation (Binance
derivatives API, "How to manage a local order book correctly"), not from the kernel:

1. buffer the diff events until the REST depth snapshot (`lastUpdateId`) arrives;
2. drop any event with u < lastUpdateId;
3. the first processed event has U <= lastUpdateId AND u >= lastUpdateId;
4. each new event's pu equals the previous event's u, else reinitialise from step 1;
5. quantities are absolute; 0 removes the price level.

Rows, in the order a collector applies them: the REST snapshot as `snapshot` (its exchange time E,
last_update_id = lastUpdateId), then the diffs buffered before it (stale ones included: the kernel
must skip and count them), then every later diff, each a `delta` with U / u / pu and sync_rule
`prev_chain`.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from daedalus.collector.schemas import BOOK_UPDATES

from .book_reference import bands_of

MS_NS = 1_000_000


def _levels(pairs: list[list[str]]) -> list[dict[str, float]]:
    return [{"price": float(p), "size": float(q)} for p, q in pairs]


def _messages(path: Path) -> list[tuple[int, dict[str, Any]]]:
    out = []
    with gzip.open(path, "rt") as fh:
        for line in fh:
            stamp, _, body = line.partition(" ")
            msg = json.loads(body)
            if "lastUpdateId" in msg or msg.get("stream", "").endswith("@depth@0ms"):
                out.append((int(stamp), msg))
    return out


def capture_rows(path: Path, exchange: str, symbol: str, conn_id: str) -> list[dict[str, Any]]:
    """The bronze rows of the capture, in applied order (buffered diffs right after the snapshot)."""
    rows: list[dict[str, Any]] = []
    buffered: list[tuple[int, dict[str, Any]]] = []
    loaded = False

    def add(recv: int, ts: int, kind: str, d: dict[str, Any], bids: Any, asks: Any) -> None:
        rows.append(
            {
                "collected_at": recv // MS_NS,
                "capture_ts": recv,
                "exchange": exchange,
                "symbol": symbol,
                "conn_id": conn_id,
                "seq": len(rows),
                "timestamp": ts,
                "kind": kind,
                "first_update_id": d.get("U"),
                "last_update_id": d.get("u", d.get("lastUpdateId")),
                "prev_update_id": d.get("pu"),
                "bids": _levels(bids),
                "asks": _levels(asks),
                "sync_rule": "prev_chain",
            }
        )

    for recv, msg in _messages(path):
        if "lastUpdateId" in msg:
            add(recv, msg["E"] * MS_NS, "snapshot", msg, msg["bids"], msg["asks"])
            for r, d in buffered:
                add(r, d["E"] * MS_NS, "delta", d, d["b"], d["a"])
            loaded = True
        elif loaded:
            d = msg["data"]
            add(recv, d["E"] * MS_NS, "delta", d, d["b"], d["a"])
        else:
            buffered.append((recv, msg["data"]))
    return rows


def write_rows(rows: list[dict[str, Any]], root: Path, date: str) -> Path:
    """One bronze file of `rows` (one exchange, one UTC date) under root, with `sync_rule`."""
    schema = BOOK_UPDATES
    if schema.get_field_index("sync_rule") < 0:
        schema = schema.append(pa.field("sync_rule", pa.string()))
    out = root / "bronze" / "book_updates" / f"exchange={rows[0]['exchange']}" / f"date={date}"
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{rows[0]['conn_id']}.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), target, compression="zstd")
    return target


def reference_books(path: Path, levels: int, edges: list[float]) -> tuple[list[dict[str, Any]], int]:
    """Steps 1–5 over the capture's messages: the book after the snapshot and after every processed
    event (top `levels` a side, band sums over the whole book, None = not visible), and the number
    of events dropped by step 2."""
    buffered: list[dict[str, Any]] = []
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    books: list[dict[str, Any]] = []
    last_id: int | None = None
    prev_u: int | None = None
    dropped = 0

    def record(update_id: int) -> None:
        bb, aa = sorted(bids, reverse=True), sorted(asks)
        mid = (bb[0] + aa[0]) / 2
        books.append(
            {
                "last_update_id": update_id,
                "bids": [(p, bids[p]) for p in bb[:levels]],
                "asks": [(p, asks[p]) for p in aa[:levels]],
                "bid_bands": bands_of(bids, bb, mid, edges),
                "ask_bands": bands_of(asks, aa, mid, edges),
            }
        )

    def process(d: dict[str, Any]) -> None:
        nonlocal prev_u, dropped
        assert last_id is not None
        if d["u"] < last_id:
            dropped += 1
            return
        if prev_u is None:
            assert d["U"] <= last_id <= d["u"], "first event does not span lastUpdateId"
        else:
            assert d["pu"] == prev_u, f"pu {d['pu']} != previous u {prev_u}: reinitialise"
        for side, changes in ((bids, d["b"]), (asks, d["a"])):
            for p, q in changes:
                if float(q) == 0:
                    side.pop(float(p), None)
                else:
                    side[float(p)] = float(q)
        prev_u = d["u"]
        record(d["u"])

    for _, msg in _messages(path):
        if "lastUpdateId" in msg:
            last_id = int(msg["lastUpdateId"])
            bids = {float(p): float(q) for p, q in msg["bids"] if float(q) > 0}
            asks = {float(p): float(q) for p, q in msg["asks"] if float(q) > 0}
            record(last_id)
            for d in buffered:
                process(d)
            buffered.clear()
        elif last_id is None:
            buffered.append(msg["data"])
        else:
            process(msg["data"])
    return books, dropped
