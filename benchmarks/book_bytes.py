"""Bronze bytes of full-depth `book_updates` against today's 20-level `orderbook` snapshots (issue 13).

Default: the shared real capture (tests/data/binance-spot-btcusdt-20240808.jsonl.gz, 5.8 minutes
of Binance spot BTCUSDT) is replayed through the real collector (ccxt.pro against the fake Binance
server) with both channels on, landed, and the landed bytes are extrapolated to a symbol-day:
  orderbook/day    = landed orderbook bytes × (24 h / span)
  book_updates/day = landed delta rows' bytes × (24 h / span) + 24 × one checkpoint's bytes
(the day's 24 hourly checkpoints, each the full book as held; a resync adds a snapshot + checkpoint).
The landed delta rows are also rewritten with other Parquet encodings, one line each, so the choice
in collector/encoding.py can be checked.

`--lake PATH`: the same ratio for any landed lake (e.g. the synthetic day): bronze bytes of
book_updates vs orderbook per (exchange, date) partition and in total.

    .venv/bin/python benchmarks/book_bytes.py [--capture PATH] [--keep DIR]
    .venv/bin/python benchmarks/book_bytes.py --lake /tmp/daedalus-bench
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from daedalus.collector.encoding import parquet_options

CAPTURE = Path(__file__).resolve().parents[1] / "tests" / "data" / "binance-spot-btcusdt-20240808.jsonl.gz"
DAY_NS = 86_400 * 10**9
SYMBOL = "BTC/USDT"


def collect(capture_path: Path, exchange: str, symbol: str, channels: list[str], root: Path) -> None:
    """Replay a Binance capture (spot, or COIN-M for a `:` symbol) through the real collector with
    `channels` and land it (benchmarks/book_channels_bytes.py uses it too)."""
    from daedalus.collector.pipeline import run_collect
    from daedalus.config import load_config
    from daedalus.devkit.simulator.binance import FakeBinance
    from daedalus.devkit.simulator.binance_futures import FakeBinanceFutures
    from daedalus.devkit.simulator.replay import load_capture
    from daedalus.land.landing import land

    capture = load_capture(capture_path)
    config = load_config(
        None,
        {
            "storage.root": str(root),
            "ingestion.exchanges": [exchange],
            "ingestion.symbols": [symbol],
            "ingestion.channels": channels,
            "ingestion.stale_after_seconds": 120.0,
        },
        environ={},
    )
    snap = capture.snapshot
    futures = ":" in symbol
    applied = sum(
        1
        for d in capture.depth_updates()
        if (d["u"] >= snap["lastUpdateId"] if futures else d["u"] > snap["lastUpdateId"])
    )

    async def main() -> None:
        server = await (FakeBinanceFutures("inverse") if futures else FakeBinance()).start()
        server.books[capture.symbol_id] = server.new_book(snap)
        stop = asyncio.Event()
        started: asyncio.Future = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(
            run_collect(
                config,
                stop,
                configure={exchange: lambda ex: server.configure(ex, [symbol])},
                on_started=started.set_result,
            )
        )
        emitter = await started
        try:
            await server.wait_subscribed([f"{capture.symbol_id.lower()}@depth@100ms"])
            while emitter.counters.get(("ccxt", "book_updates")) is None:
                await asyncio.sleep(0.05)
            await server.replay(capture, speed=0)
            # + the load, its checkpoint, midnight's
            while emitter.counters[("ccxt", "book_updates")].received < applied + 3:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # the other channels' last rows
        finally:
            stop.set()
            await task
            await server.stop()

    asyncio.run(main())
    report = land(config)
    if report.errors:
        raise SystemExit(f"land failed: {report.errors}")


def collect_capture(capture_path: Path, root: Path) -> None:
    """Replay the spot capture with orderbook + book_updates on, and land it."""
    collect(capture_path, "binance", SYMBOL, ["orderbook", "book_updates"], root)


def _files(root: Path, channel: str) -> list[Path]:
    return sorted((root / "bronze" / channel).glob("exchange=*/date=*/*.parquet"))


def _bytes(files: list[Path]) -> int:
    return sum(f.stat().st_size for f in files)


def written_bytes(table: pa.Table, **options: object) -> int:
    buf = io.BytesIO()
    pq.write_table(table, buf, **options)
    return buf.tell()


LEVEL_DOUBLES = [f"{side}.list.element.{f}" for side in ("bids", "asks") for f in ("price", "size")]
ENCODINGS: list[tuple[str, dict]] = [
    ("pyarrow defaults (snappy, dictionary)", {}),
    ("zstd 3, dictionary", {"compression": "zstd", "compression_level": 3}),
    ("zstd 3, no dictionary", {"compression": "zstd", "compression_level": 3, "use_dictionary": False}),
    (
        "zstd 3, byte_stream_split doubles",
        {
            "compression": "zstd",
            "compression_level": 3,
            "use_dictionary": False,
            "use_byte_stream_split": LEVEL_DOUBLES,
        },
    ),
    ("zstd 9, dictionary", {"compression": "zstd", "compression_level": 9}),
    ("zstd 19, dictionary", {"compression": "zstd", "compression_level": 19}),
    (
        "zstd 19, byte_stream_split doubles",
        {
            "compression": "zstd",
            "compression_level": 19,
            "use_dictionary": False,
            "use_byte_stream_split": LEVEL_DOUBLES,
        },
    ),
    ("zstd 9, no dictionary", {"compression": "zstd", "compression_level": 9, "use_dictionary": False}),
    ("zstd 19, no dictionary", {"compression": "zstd", "compression_level": 19, "use_dictionary": False}),
    (
        "brotli 11, no dictionary (slow: ~5 s here)",
        {"compression": "brotli", "compression_level": 11, "use_dictionary": False},
    ),
]


def _ticks(col: pa.ChunkedArray, tick: float = 0.01, lot: float = 1e-5) -> pa.Array:
    """Levels as int64 (price / tick, size / lot): BTCUSDT's tick and lot on Binance spot."""
    col = col.combine_chunks()
    flat = col.flatten()
    price = pc.round(pc.divide(flat.field("price"), tick)).cast(pa.int64())
    size = pc.round(pc.divide(flat.field("size"), lot)).cast(pa.int64())
    return pa.ListArray.from_arrays(
        col.offsets, pa.StructArray.from_arrays([price, size], names=["price", "size"])
    )


class UpdatesDay:
    """Landed book_updates split into delta rows and checkpoints, with the factor that scales the
    span of exchange time the deltas cover to a day and the largest checkpoint's bytes."""

    def __init__(self, files: list[Path], options: dict) -> None:
        updates = pa.concat_tables([pq.read_table(f) for f in files])
        kind = updates.column("kind")
        self.deltas = updates.filter(pc.equal(kind, "delta"))
        self.checkpoints = updates.filter(pc.equal(kind, "checkpoint"))
        ts = self.deltas.column("timestamp").cast(pa.int64())
        self.span = pc.max(ts).as_py() - pc.min(ts).as_py()
        self.scale = DAY_NS / self.span
        self.checkpoint_bytes = max(
            written_bytes(self.checkpoints.slice(i, 1), **options) for i in range(self.checkpoints.num_rows)
        )
        self.delta_bytes = written_bytes(self.deltas, **options)

    def per_day(self) -> float:
        """book_updates bytes per day: the deltas scaled, plus the day's 24 hourly checkpoints."""
        return self.delta_bytes * self.scale + 24 * self.checkpoint_bytes


def capture_report(root: Path) -> None:
    ob_files, up_files = _files(root, "orderbook"), _files(root, "book_updates")
    options = parquet_options("book_updates")
    day = UpdatesDay(up_files, options)
    deltas, checkpoints, span, scale = day.deltas, day.checkpoints, day.span, day.scale
    delta_bytes, checkpoint_bytes = day.delta_bytes, day.checkpoint_bytes
    levels = pc.add(pc.list_value_length(deltas.column("bids")), pc.list_value_length(deltas.column("asks")))
    book = checkpoints.slice(checkpoints.num_rows - 1, 1)
    depth = len(book.column("bids")[0]) + len(book.column("asks")[0])
    ob_day = _bytes(ob_files) * scale
    up_day = day.per_day()
    print(
        f"capture: {deltas.num_rows} delta rows over {span / 60e9:.2f} min of exchange time "
        f"(x{scale:.1f} to a day), {pc.mean(levels).as_py():.1f} changed levels per delta on average; "
        f"held book at the end {depth} levels"
    )
    print(f"landed orderbook (20 levels) : {_bytes(ob_files):>10,} B  -> {ob_day / 1e6:8.2f} MB/symbol-day")
    print(
        f"landed book_updates (all rows): {_bytes(up_files):>10,} B  "
        "(snapshot + checkpoints + deltas as landed)"
    )
    print(f"  delta rows alone           : {delta_bytes:>10,} B  -> {delta_bytes * scale / 1e6:8.2f} MB/day")
    print(
        f"  one checkpoint (full book) : {checkpoint_bytes:>10,} B  "
        f"-> x24 = {24 * checkpoint_bytes / 1e6:.2f} MB/day"
    )
    print(
        f"book_updates/day = {up_day / 1e6:.2f} MB vs orderbook/day = {ob_day / 1e6:.2f} MB: "
        f"ratio {up_day / ob_day:.2f} (target <= 0.50)"
    )
    print("\ndelta rows rewritten with other encodings (one file, one row group unless noted):")
    for name, opts in ENCODINGS:
        b = written_bytes(deltas, **opts)
        print(f"  {name:<45} {b:>10,} B  -> ratio {(b * scale + 24 * checkpoint_bytes) / ob_day:.2f}")
    chosen = written_bytes(deltas, **options)
    print(
        f"  {'chosen (collector/encoding.py)':<45} {chosen:>10,} B  -> ratio "
        f"{(chosen * scale + 24 * checkpoint_bytes) / ob_day:.2f}"
    )
    small = sum(written_bytes(deltas.slice(i, 1000), **options) for i in range(0, deltas.num_rows, 1000))
    print(f"  {'chosen, in files of 1,000 rows':<45} {small:>10,} B")
    # for information, not the contract: the same rows with integer ticks/lots instead of doubles
    as_ints = (
        deltas.drop(["bids", "asks"])
        .append_column("bids", _ticks(deltas.column("bids")))
        .append_column("asks", _ticks(deltas.column("asks")))
    )
    b = written_bytes(as_ints, **options)
    print(
        f"  {'(schema change) int64 ticks 0.01 / lots 1e-5':<45} {b:>10,} B  -> ratio "
        f"{(b * scale + 24 * checkpoint_bytes) / ob_day:.2f}"
    )
    # the same encoding would shrink today's snapshots too: the ratio at equal encoding
    obt = pa.concat_tables([pq.read_table(f) for f in ob_files])
    ob_same = written_bytes(obt, **options)
    print(
        f"orderbook rows rewritten with the chosen encoding: {ob_same:,} B "
        f"(as landed {_bytes(ob_files):,} B); "
        f"ratio at equal encoding {up_day / (ob_same * scale):.2f}"
    )
    levels_total = pc.sum(levels).as_py()
    print(
        f"bytes per changed level (chosen): {chosen / levels_total:.2f}; the target needs "
        f"{(0.5 * ob_day - 24 * checkpoint_bytes) / scale / levels_total:.2f}"
    )


def lake_report(root: Path) -> None:
    """book_updates vs orderbook bytes per (exchange, date) of a landed lake."""
    parts: dict[tuple[str, str], list[int]] = {}
    for i, channel in enumerate(("book_updates", "orderbook")):
        for f in _files(root, channel):
            key = (f.parent.parent.name.split("=", 1)[1], f.parent.name.split("=", 1)[1])
            parts.setdefault(key, [0, 0])[i] += f.stat().st_size
    if not parts:
        raise SystemExit(f"{root}: no bronze book_updates or orderbook files under bronze/")
    total = [0, 0]
    print(f"{'exchange':<12} {'date':<10} {'book_updates':>14} {'orderbook':>14} {'ratio':>7}")
    for (ex, date), (up, ob) in sorted(parts.items()):
        total[0] += up
        total[1] += ob
        ratio = f"{up / ob:.2f}" if ob else "-"
        print(f"{ex:<12} {date:<10} {up:>14,} {ob:>14,} {ratio:>7}")
    print(
        f"{'total':<23} {total[0]:>14,} {total[1]:>14,} "
        f"{total[0] / total[1] if total[1] else float('nan'):>7.2f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lake", type=Path, help="report a landed lake instead of replaying the capture")
    ap.add_argument("--capture", type=Path, default=CAPTURE)
    ap.add_argument("--keep", type=Path, help="lake directory for the capture replay (default: a temp dir)")
    args = ap.parse_args()
    if args.lake is not None:
        lake_report(args.lake)
        return
    if not args.capture.exists():
        raise SystemExit(f"capture not found: {args.capture}")
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        collect_capture(args.capture, args.keep)
        capture_report(args.keep)
        return
    with tempfile.TemporaryDirectory() as tmp:
        collect_capture(args.capture, Path(tmp))
        capture_report(Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
