"""Bronze `book_updates` written straight from the real Binance capture, and the books a plain dict
replay of that capture holds after each of them (until the collector's own replay path lands).

Binance's rule ("How to manage a local order book correctly"): buffer diffs until the REST snapshot;
drop diffs with u ≤ lastUpdateId; the first applied diff has U ≤ lastUpdateId + 1 ≤ u; then each
U = previous u + 1. Rows, in the order a collector applies them: the REST snapshot as `snapshot`
(1,000 levels a side, no exchange time, last_update_id = lastUpdateId), then every applied diff as a
`delta` (first/last_update_id = U/u, timestamp = E, the changed levels with absolute sizes, 0 =
delete). `seq` counts those rows in that order. The conn_id is daedalus.devkit.capture's, so a lake holding
both channels of the capture exercises the rule that updates win over snapshots of one connection.
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


def capture_rows(path: Path, conn_id: str) -> list[dict[str, Any]]:
    """The bronze book_updates rows of the capture, in applied order."""
    rows: list[dict[str, Any]] = []
    pending: list[tuple[int, dict[str, Any]]] = []
    snapshot_id: int | None = None
    last_u: int | None = None

    def add(
        recv: int, ts: int | None, kind: str, first: int | None, last: int | None, bids: Any, asks: Any
    ) -> None:
        rows.append(
            {
                "collected_at": recv // MS_NS,
                "capture_ts": recv,
                "exchange": "binance",
                "symbol": "BTC/USDT",
                "conn_id": conn_id,
                "seq": len(rows),
                "timestamp": ts,
                "kind": kind,
                "first_update_id": first,
                "last_update_id": last,
                "prev_update_id": None,
                "bids": _levels(bids),
                "asks": _levels(asks),
            }
        )

    def diff(recv: int, d: dict[str, Any]) -> None:
        nonlocal last_u
        assert snapshot_id is not None and last_u is not None
        if d["u"] <= snapshot_id:
            return
        ok = d["U"] <= snapshot_id + 1 <= d["u"] if last_u == snapshot_id else d["U"] == last_u + 1
        assert ok, f"capture out of sync at U={d['U']}"
        add(recv, d["E"] * MS_NS, "delta", d["U"], d["u"], d["b"], d["a"])
        last_u = d["u"]

    with gzip.open(path, "rt") as fh:
        for line in fh:
            stamp, _, body = line.partition(" ")
            recv, msg = int(stamp), json.loads(body)
            if "lastUpdateId" in msg:
                snapshot_id = last_u = int(msg["lastUpdateId"])
                add(recv, None, "snapshot", None, snapshot_id, msg["bids"], msg["asks"])
                for item in pending:
                    diff(*item)
                pending.clear()
            elif msg.get("stream", "").endswith("@depth@100ms"):
                if snapshot_id is None:
                    pending.append((recv, msg["data"]))
                else:
                    diff(recv, msg["data"])
    return rows


def write_book_updates(rows: list[dict[str, Any]], root: Path) -> Path:
    """One bronze file (all rows fall on 2024-08-08 UTC) under root."""
    out = root / "bronze" / "book_updates" / "exchange=binance" / "date=2024-08-08"
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{rows[0]['conn_id']}.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=BOOK_UPDATES), target, compression="zstd")
    return target


def expected_books(rows: list[dict[str, Any]], levels: int, edges: list[float]) -> list[dict[str, Any]]:
    """After each row, from dicts: top `levels` per side and the band sums (None = not visible)."""
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    out = []
    for r in rows:
        if r["kind"] == "snapshot":
            bids = {lv["price"]: lv["size"] for lv in r["bids"] if lv["size"] > 0}
            asks = {lv["price"]: lv["size"] for lv in r["asks"] if lv["size"] > 0}
        else:
            for side, changes in ((bids, r["bids"]), (asks, r["asks"])):
                for lv in changes:
                    if lv["size"] == 0:
                        side.pop(lv["price"], None)
                    else:
                        side[lv["price"]] = lv["size"]
        bb, aa = sorted(bids, reverse=True), sorted(asks)
        mid = (bb[0] + aa[0]) / 2
        out.append(
            {
                "seq": r["seq"],
                "bids": [(p, bids[p]) for p in bb[:levels]],
                "asks": [(p, asks[p]) for p in aa[:levels]],
                "bid_bands": bands_of(bids, bb, mid, edges),
                "ask_bands": bands_of(asks, aa, mid, edges),
            }
        )
    return out
