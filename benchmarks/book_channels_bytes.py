"""Bronze bytes per symbol-day: the old default channels (ticker, trades, orderbook, book_updates)
against the new default (ticker, trades, book_updates: one book channel; issue 28).

Both shared real captures are replayed through the real collector (ccxt.pro against the fake Binance
servers) once per channel set and landed:
- tests/data/binance-spot-btcusdt-20240808.jsonl.gz as `binance` BTC/USDT,
- tests/data/binance-coinm-btcusdperp-20240808.jsonl.gz as `binancecoinm` BTC/USD:BTC.
Landed bytes are extrapolated to a day by the span of exchange time the delta rows cover:
  channel/day = landed bytes × (24 h / span), except book_updates, whose load and checkpoints are not
  per-message: delta rows' bytes × (24 h / span) + 24 × one checkpoint's bytes (the day's hourly
  checkpoints; benchmarks/book_bytes.py does the same for book_updates alone).

    .venv/bin/python benchmarks/book_channels_bytes.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from book_bytes import UpdatesDay, collect  # the replay and the day extrapolation, one copy

from daedalus.collector.encoding import parquet_options

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
CAPTURES = {
    "binance spot BTC/USDT": (DATA / "binance-spot-btcusdt-20240808.jsonl.gz", "binance", "BTC/USDT"),
    "binance COIN-M BTC/USD:BTC": (
        DATA / "binance-coinm-btcusdperp-20240808.jsonl.gz",
        "binancecoinm",
        "BTC/USD:BTC",
    ),
}
OLD_DEFAULT = ["ticker", "trades", "orderbook", "book_updates"]


def per_day(root: Path) -> dict[str, float]:
    """Bytes per symbol-day of each landed bronze channel (events left out: a handful of rows)."""
    files = {c: sorted((root / "bronze" / c).glob("exchange=*/date=*/*.parquet")) for c in OLD_DEFAULT}
    updates = UpdatesDay(files["book_updates"], parquet_options("book_updates"))
    out = {c: sum(f.stat().st_size for f in fs) for c, fs in files.items() if c != "book_updates"}
    out = {c: b * updates.scale for c, b in out.items()}
    out["book_updates"] = updates.per_day()
    return out


def main() -> None:
    from daedalus.config import IngestionConfig

    new_default = IngestionConfig().channels
    print(f"old default: {', '.join(OLD_DEFAULT)}\nnew default: {', '.join(new_default)}\n")
    print(f"{'capture':28} {'channels':12} " + " ".join(f"{c:>13}" for c in OLD_DEFAULT) + f" {'total':>10}")
    for name, (path, exchange, symbol) in CAPTURES.items():
        for label, channels in (("old default", OLD_DEFAULT), ("new default", new_default)):
            with tempfile.TemporaryDirectory() as tmp:
                collect(path, exchange, symbol, channels, Path(tmp))
                day = per_day(Path(tmp))
            cells = " ".join(f"{day.get(c, 0) / 1e6:10.2f} MB" for c in OLD_DEFAULT)
            print(f"{name:28} {label:12} {cells} {sum(day.values()) / 1e6:7.2f} MB", flush=True)


if __name__ == "__main__":
    main()
