"""A damaged raw segment lands its readable part; the rest is one `quarantine` event per lost series
with its exchange, symbol, channel, row count and the receive-time hole (issue 17, case 3)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from daedalus.collector.ndjson_segment import table_to_ndjson
from daedalus.collector.quarantine import convert_rows
from daedalus.collector.schemas import SCHEMAS
from daedalus.config import Config, StorageConfig
from daedalus.land.landing import land

T0 = 1_723_075_200_000_000_000  # 2024-08-08T00:00:00Z
SEC = 1_000_000_000


def trades(n: int) -> pa.Table:
    rows = []
    for i in range(n):  # two symbols interleaved, one trade a second
        sym = ("BTC/USDT", "ETH/USDT")[i % 2]
        rows.append(
            {
                "collected_at": (T0 + i * SEC) // 1_000_000,
                "capture_ts": T0 + i * SEC + 5,
                "exchange": "binance",
                "symbol": sym,
                "conn_id": "c1",
                "seq": i,
                "timestamp": T0 + i * SEC,
                "trade_id": str(i),
                "side": "buy",
                "price": 100.0 + i,
                "amount": 0.5,
            }
        )
    conv = convert_rows("trades", rows, SCHEMAS["trades"])
    assert not conv.rejected
    return conv.table


def ready(root: Path, name: str) -> Path:
    d = root / "raw" / "ready" / "ccxt" / "trades"
    d.mkdir(parents=True, exist_ok=True)
    return d / name


def bronze(root: Path, channel: str) -> list[dict]:
    files = sorted((root / "bronze" / channel).rglob("*.parquet"))
    return [r for f in files for r in pq.read_table(f).to_pylist()]


def corrupt_column_chunk(path: Path, row_group: int, column: str) -> None:
    """Overwrite the compressed pages of one column chunk with garbage: that chunk cannot decode."""
    meta = pq.ParquetFile(path).metadata
    col = meta.row_group(row_group).column(meta.schema.to_arrow_schema().names.index(column))
    start = col.dictionary_page_offset or col.data_page_offset
    data = bytearray(path.read_bytes())
    for k in range(start + 20, start + col.total_compressed_size - 4):
        data[k] = (k * 31 + 7) % 256
    path.write_bytes(bytes(data))


def test_parquet_keeps_its_readable_row_groups(tmp_path: Path) -> None:
    seg = ready(tmp_path, "segment_20240808T000000000000Z_aaaa.parquet")
    pq.write_table(trades(500), seg, row_group_size=100, compression="zstd")
    corrupt_column_chunk(seg, 2, "price")  # rows 200..299 (100: 50 BTC, 50 ETH) are lost
    report = land(Config(storage=StorageConfig(root=str(tmp_path))))
    got = sorted(int(r["trade_id"]) for r in bronze(tmp_path, "trades"))
    assert got == [*range(200), *range(300, 500)]
    assert report.rows == 400 and report.quarantined == [f"raw/quarantine/ccxt/trades/{seg.name}"]
    events = sorted(bronze(tmp_path, "events"), key=lambda r: r["symbol"])
    assert [(e["event_type"], e["exchange"], e["symbol"], e["channel"], e["count"]) for e in events] == [
        ("quarantine", "binance", "BTC/USDT", "trades", 50),
        ("quarantine", "binance", "ETH/USDT", "trades", 50),
    ]
    for e in events:  # on the receive clock: after row 199, before row 300
        assert (
            e["interval_start"].value == T0 + 199 * SEC + 5 and e["interval_end"].value == T0 + 300 * SEC + 5
        )
        assert e["capture_ts"].value == e["interval_start"].value and "row group 2" in e["detail"]
    assert (tmp_path / "bronze" / "events" / "exchange=binance" / "date=2024-08-08").is_dir()
    assert not seg.exists()


def test_ndjson_keeps_its_good_lines_and_quarantines_only_the_bad_one(tmp_path: Path) -> None:
    seg = ready(tmp_path, "segment_20240808T000000000000Z_bbbb.ndjson")
    lines = table_to_ndjson(trades(1000)).splitlines()
    lines[500] = lines[500][:40] + b'"price":oops,"exchange":"binance","symbol":"BTC/USDT"'
    seg.write_bytes(b"\n".join(lines) + b"\n")
    report = land(Config(storage=StorageConfig(root=str(tmp_path))))
    got = sorted(int(r["trade_id"]) for r in bronze(tmp_path, "trades"))
    assert got == [i for i in range(1000) if i != 500] and report.rows == 999
    (e,) = bronze(tmp_path, "events")
    assert (e["event_type"], e["exchange"], e["symbol"], e["channel"], e["count"]) == (
        "quarantine",
        "binance",
        "BTC/USDT",
        "trades",
        1,
    )
    assert e["interval_start"].value == T0 + 499 * SEC + 5 and e["interval_end"].value == T0 + 501 * SEC + 5
    kept = (tmp_path / "raw" / "quarantine" / "ccxt" / "trades" / seg.name).read_bytes()
    assert kept == lines[500] + b"\n"  # only the bad part is set aside
    assert not seg.exists()


def test_line_without_keys_takes_the_segments_only_exchange(tmp_path: Path) -> None:
    seg = ready(tmp_path, "segment_20240808T000000000000Z_cccc.ndjson")
    lines = table_to_ndjson(trades(10)).splitlines()
    lines[3] = b"\x00\x01garbage"
    seg.write_bytes(b"\n".join(lines) + b"\n")
    land(Config(storage=StorageConfig(root=str(tmp_path))))
    (e,) = bronze(tmp_path, "events")
    assert (e["exchange"], e["symbol"], e["count"]) == ("binance", None, 1)  # symbol unknown: whole exchange
    assert len(bronze(tmp_path, "trades")) == 9
