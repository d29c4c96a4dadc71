"""Load a recorded Binance spot stream (`<recv ns> <json>` per line, gzip) directly into bronze.

The capture in `tests/data` holds the combined `depth@100ms`, `trade` and `bookTicker` streams
plus one REST depth snapshot. The order book is rebuilt with Binance's documented procedure
("How to manage a local order book correctly", Binance spot WebSocket streams docs):
buffer diffs; on the snapshot drop every diff with u ≤ lastUpdateId; the first applied diff must have
U ≤ lastUpdateId + 1 ≤ u; afterwards each diff's U must equal the previous u + 1 (otherwise the book
is out of sync: a `gap` row goes to `events` and diffs are ignored until the end of the capture,
since a recording cannot ask for a new snapshot). Quantities are absolute; "0" removes the level.

After every applied diff, one bronze snapshot of the top `levels` per side is written with
`nonce = u` and `timestamp = E` (exchange time). `capture_ts`/`collected_at` come from the local
receive clock, which in this capture runs ~1.27 s behind exchange time, so the two are never mixed:
features use `timestamp`. Trades: `timestamp = T`, aggressor `side = 'sell'` when `m` (buyer is
maker) is true. bookTicker carries no exchange time, so its ticker rows have `timestamp` NULL and its
update id `u` in `info_json` (where the real-data test matches it against the book's `nonce`).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from daedalus.collector.schemas import SCHEMAS
from daedalus.errors import StorageError

MS_NS = 1_000_000


@dataclass
class CaptureSummary:
    rows: dict[str, int]
    files: list[str]
    applied_diffs: int
    dropped_diffs: int
    out_of_sync: bool
    last_update_id: int


@dataclass
class _Book:
    bids: dict[float, float] = field(default_factory=dict)
    asks: dict[float, float] = field(default_factory=dict)

    def load(self, bids: list[list[str]], asks: list[list[str]]) -> None:
        self.bids = {float(p): float(q) for p, q in bids if float(q) > 0}
        self.asks = {float(p): float(q) for p, q in asks if float(q) > 0}

    def apply(self, bids: list[list[str]], asks: list[list[str]]) -> None:
        for side, updates in ((self.bids, bids), (self.asks, asks)):
            for p, q in updates:
                price, qty = float(p), float(q)
                if qty == 0:
                    side.pop(price, None)
                else:
                    side[price] = qty

    def top(self, levels: int) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
        bids = sorted(self.bids, reverse=True)[:levels]
        asks = sorted(self.asks)[:levels]
        return (
            [{"price": p, "size": self.bids[p]} for p in bids],
            [{"price": p, "size": self.asks[p]} for p in asks],
        )


def _utc_date(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).date().isoformat()


class _Rows:
    """Rows per (channel, date), with the envelope filled the same way for every channel."""

    def __init__(self, exchange: str, symbol: str, conn_id: str) -> None:
        self.exchange, self.symbol, self.conn_id = exchange, symbol, conn_id
        self.by_part: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)

    def add(self, kind: str, recv_ns: int, seq: int, ts_ns: int | None, **cols: Any) -> None:
        row = {
            "collected_at": recv_ns // MS_NS,
            "capture_ts": recv_ns,
            "exchange": self.exchange,
            "symbol": self.symbol,
            "conn_id": self.conn_id,
            "seq": seq,
            **cols,
        }
        if kind != "events":
            row["timestamp"] = ts_ns
        # The bronze date is the UTC date of the exchange time, or of capture_ts where that is NULL.
        self.by_part[(kind, _utc_date(ts_ns if ts_ns is not None else recv_ns))].append(row)


def load_capture(
    path: str | Path,
    root: str | Path,
    levels: int = 20,
    exchange: str = "binance",
    symbol: str = "BTC/USDT",
) -> CaptureSummary:
    """Rebuild the book of a recorded Binance stream and write bronze orderbook/trades/ticker/events."""
    path = Path(path)
    if not path.exists():
        raise StorageError(f"{path}: capture file not found")
    rows = _Rows(exchange, symbol, conn_id=f"capture-{path.name.split('.')[0]}")
    book = _Book()
    pending: list[tuple[int, int, dict[str, Any]]] = []
    last_u: int | None = None  # None until the REST snapshot arrives
    snapshot_id = -1
    applied = dropped = 0
    out_of_sync = False

    def apply_diff(recv: int, seq: int, d: dict[str, Any]) -> None:
        nonlocal last_u, applied, dropped, out_of_sync
        assert last_u is not None
        if out_of_sync or d["u"] <= snapshot_id:
            dropped += 1
            return
        first = last_u == snapshot_id
        ok = d["U"] <= snapshot_id + 1 <= d["u"] if first else d["U"] == last_u + 1
        if not ok:
            out_of_sync = True
            dropped += 1
            rows.add(
                "events",
                recv,
                seq,
                None,
                event_type="gap",
                channel="orderbook",
                detail=json.dumps({"expected_U": last_u + 1, "U": d["U"], "u": d["u"]}),
            )
            return
        book.apply(d["b"], d["a"])
        last_u = d["u"]
        applied += 1
        bids, asks = book.top(levels)
        rows.add("orderbook", recv, seq, d["E"] * MS_NS, nonce=d["u"], bids=bids, asks=asks)

    with gzip.open(path, "rt") as fh:
        for seq, line in enumerate(fh):
            stamp, _, body = line.partition(" ")
            recv = int(stamp)
            msg = json.loads(body)
            if seq == 0:
                rows.add(
                    "events",
                    recv,
                    seq,
                    None,
                    event_type="connect",
                    channel=None,
                    detail=json.dumps({"source": path.name}),
                )
            if "lastUpdateId" in msg:
                snapshot_id = int(msg["lastUpdateId"])
                book.load(msg["bids"], msg["asks"])
                last_u = snapshot_id
                for item in pending:
                    apply_diff(*item)
                pending.clear()
                continue
            stream, data = msg.get("stream", ""), msg.get("data", {})
            if stream.endswith("@depth@100ms") or stream.endswith("@depth"):
                if last_u is None:
                    pending.append((recv, seq, data))
                else:
                    apply_diff(recv, seq, data)
            elif stream.endswith("@trade"):
                price, qty = float(data["p"]), float(data["q"])
                rows.add(
                    "trades",
                    recv,
                    seq,
                    data["T"] * MS_NS,
                    trade_id=str(data["t"]),
                    side="sell" if data["m"] else "buy",
                    price=price,
                    amount=qty,
                    cost=price * qty,
                    info_json=json.dumps(data, separators=(",", ":")),
                )
            elif stream.endswith("@bookTicker"):
                rows.add(
                    "ticker",
                    recv,
                    seq,
                    None,
                    bid=float(data["b"]),
                    ask=float(data["a"]),
                    bid_volume=float(data["B"]),
                    ask_volume=float(data["A"]),
                    info_json=json.dumps(data, separators=(",", ":")),
                )

    files: list[str] = []
    counts: dict[str, int] = {c: 0 for c in SCHEMAS}
    for (channel, date), items in sorted(rows.by_part.items()):
        schema = SCHEMAS[channel]
        table = pa.Table.from_pylist(items, schema=schema)
        out = Path(root) / "bronze" / channel / f"exchange={exchange}" / f"date={date}"
        out.mkdir(parents=True, exist_ok=True)
        target = out / f"{rows.conn_id}.parquet"
        pq.write_table(table, target, compression="zstd")
        files.append(str(target))
        counts[channel] += len(items)
    return CaptureSummary(counts, files, applied, dropped, out_of_sync, last_u or -1)
