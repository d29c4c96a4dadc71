"""Segments: exact bronze schemas, zstd, one row group per flush, size/hour rotation, unique names."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from daedalus.collector.ndjson_segment import NdjsonSegmentWriter, ndjson_to_table
from daedalus.collector.quarantine import convert_rows
from daedalus.collector.schemas import SCHEMAS
from daedalus.collector.segment import StreamingParquetWriter, publish, segment_name
from daedalus.errors import StorageError

T0 = 1_723_075_200_000_000_000  # 2024-08-08T00:00:00Z in ns


def envelope(i: int) -> dict:
    return {
        "collected_at": T0 // 1_000_000 + i,
        "capture_ts": T0 + i * 1_000_000,
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "conn_id": "conn-1",
        "seq": i,
    }


def sample_row(channel: str, i: int) -> dict:
    row = envelope(i)
    if channel == "ticker":
        row.update(timestamp=T0 + i, bid=100.0 + i, ask=100.5 + i, last=100.2, info_json="{}")
    elif channel == "trades":
        row.update(timestamp=T0 + i, trade_id=f"t{i}", side="buy", price=100.0 + i, amount=0.5, cost=50.0)
    elif channel == "orderbook":
        row.update(
            timestamp=T0 + i,
            nonce=1000 + i,
            bids=[{"price": 100.0 - k, "size": 1.0 + k} for k in range(3)],
            asks=[{"price": 101.0 + k, "size": 2.0 + k} for k in range(3)],
        )
    elif channel == "book_updates":
        row.update(
            timestamp=T0 + i,
            kind="delta",
            first_update_id=1000 + i,
            last_update_id=1000 + i,
            bids=[{"price": 100.0 - i, "size": 0.0}],
            asks=[{"price": 101.0 + i, "size": 2.0}],
        )
    elif channel == "ohlcv":
        row.update(
            timestamp=T0 + i * 60_000_000_000,
            timeframe="1m",
            open=100.0 + i,
            high=101.0 + i,
            low=99.0 + i,
            close=100.5 + i,
            volume=2.0,
            source="rest",
        )
    else:
        assert channel == "events", channel  # a new channel needs its sample row here
        row.update(event_type="connect", channel="orderbook", detail=f"connect {i}")
    return row


def table_of(channel: str, start: int, n: int) -> pa.Table:
    conv = convert_rows(channel, [sample_row(channel, i) for i in range(start, start + n)], SCHEMAS[channel])
    assert not conv.rejected
    return conv.table


def ready_files(root, source: str, channel: str) -> list:
    return sorted((root / "raw" / "ready" / source / channel).glob("segment_*"))


@pytest.mark.parametrize("channel", list(SCHEMAS))
def test_segment_has_exact_schema_zstd_and_one_row_group_per_flush(tmp_path, channel: str) -> None:
    w = StreamingParquetWriter(
        tmp_path, "ccxt", channel, SCHEMAS[channel], compression="zstd", compression_level=5
    )
    w.write(table_of(channel, 0, 10))
    w.write(table_of(channel, 10, 7))
    assert w.active_path is not None and w.active_path.with_suffix(".arrow").exists()  # the journal
    ready = w.close()
    assert ready is not None and ready.parent == tmp_path / "raw" / "ready" / "ccxt" / channel
    assert not list((tmp_path / "raw" / "active" / "ccxt" / channel).iterdir())  # journal gone too
    pf = pq.ParquetFile(ready)
    assert pf.schema_arrow.equals(SCHEMAS[channel])
    assert pf.num_row_groups == 2
    assert [pf.metadata.row_group(i).num_rows for i in range(2)] == [10, 7]
    assert pf.metadata.row_group(0).column(0).compression == "ZSTD"
    table = pq.read_table(ready)
    assert table.column("seq").to_pylist() == list(range(17))
    expected = table_of(channel, 0, 17)
    assert table.equals(expected)


def test_orderbook_levels_roundtrip_best_first(tmp_path) -> None:
    w = StreamingParquetWriter(tmp_path, "coinbase", "orderbook", SCHEMAS["orderbook"])
    w.write(table_of("orderbook", 0, 1))
    row = pq.read_table(w.close()).to_pylist()[0]
    assert row["bids"] == [
        {"price": 100.0, "size": 1.0},
        {"price": 99.0, "size": 2.0},
        {"price": 98.0, "size": 3.0},
    ]
    assert row["asks"][0] == {"price": 101.0, "size": 2.0}


def test_rotation_by_size_on_disk(tmp_path) -> None:
    max_mb = 0.02  # ~20 KB
    w = StreamingParquetWriter(tmp_path, "ccxt", "trades", SCHEMAS["trades"], segment_max_mb=max_mb)
    for b in range(60):
        w.write(table_of("trades", b * 100, 100))
    w.close()
    files = ready_files(tmp_path, "ccxt", "trades")
    assert len(files) >= 3
    limit = max_mb * 1024 * 1024
    for f in files[:-1]:
        # The open file reached the limit with its last flush and not before: data bytes on disk
        # (file minus footer) ≥ limit, and without the last row group < limit.
        md = pq.ParquetFile(f).metadata
        data_bytes = f.stat().st_size - md.serialized_size - 8
        last = md.row_group(md.num_row_groups - 1)
        last_bytes = sum(last.column(j).total_compressed_size for j in range(last.num_columns))
        assert data_bytes >= limit > data_bytes - last_bytes - 64
    assert pq.ParquetFile(files[-1]).metadata.num_rows < 6000
    seqs = pq.ParquetDataset(files).read().column("seq").to_pylist()
    assert sorted(seqs) == list(range(6000)) and len(seqs) == 6000
    assert w.segments_closed == len(files) and w.rows_written == 6000


def test_rotation_on_hour_boundary(tmp_path) -> None:
    w = StreamingParquetWriter(tmp_path, "ccxt", "trades", SCHEMAS["trades"])
    w.write(table_of("trades", 0, 5), now=dt.datetime(2024, 8, 8, 10, 59, 59, tzinfo=dt.UTC))
    w.write(table_of("trades", 5, 5), now=dt.datetime(2024, 8, 8, 10, 59, 59, 900000, tzinfo=dt.UTC))
    w.write(table_of("trades", 10, 5), now=dt.datetime(2024, 8, 8, 11, 0, 0, tzinfo=dt.UTC))
    w.rotate_if_hour_changed(dt.datetime(2024, 8, 8, 12, 0, 1, tzinfo=dt.UTC))  # idle stream closes too
    assert w.active_path is None
    files = ready_files(tmp_path, "ccxt", "trades")
    assert [pq.read_metadata(f).num_rows for f in files] == [10, 5]
    assert files[0].name.startswith("segment_20240808T105959") and files[1].name.startswith(
        "segment_20240808T110000"
    )


def test_segment_names_never_repeat_across_restarts(tmp_path) -> None:
    now = dt.datetime(2024, 8, 8, 0, 0, tzinfo=dt.UTC)
    names = {segment_name(now) for _ in range(2000)}
    assert len(names) == 2000
    # Three "restarts" in the same microsecond, each writing then closing one segment.
    for _ in range(3):
        w = StreamingParquetWriter(tmp_path, "ccxt", "trades", SCHEMAS["trades"])
        w.write(table_of("trades", 0, 3), now=now)
        w.close()
    assert len(ready_files(tmp_path, "ccxt", "trades")) == 3


def test_publish_refuses_to_overwrite(tmp_path) -> None:
    a, b = tmp_path / "a.parquet", tmp_path / "ready" / "x.parquet"
    a.write_bytes(b"new")
    b.parent.mkdir()
    b.write_bytes(b"old")
    with pytest.raises(StorageError, match="refusing to overwrite"):
        publish(a, b)
    assert b.read_bytes() == b"old" and a.read_bytes() == b"new"


def test_ndjson_segments_same_lifecycle(tmp_path) -> None:
    w = NdjsonSegmentWriter(tmp_path, "ccxt", "orderbook", SCHEMAS["orderbook"], segment_max_mb=0.01)
    for b in range(10):
        w.write(table_of("orderbook", b * 20, 20))
        if b == 0:
            assert w.active_path is not None and w.active_path.suffix == ".ndjson"
    w.close()
    files = ready_files(tmp_path, "ccxt", "orderbook")
    assert len(files) >= 2 and all(f.suffix == ".ndjson" for f in files)
    back = pa.concat_tables([ndjson_to_table(f.read_bytes(), SCHEMAS["orderbook"]) for f in files])
    assert back.schema.equals(SCHEMAS["orderbook"])
    assert back.equals(table_of("orderbook", 0, 200))  # timestamps exact to the ns


@pytest.mark.parametrize(
    ("codec", "level", "expected"),
    [
        ("zstd", 19, "ZSTD"),
        ("snappy", 3, "SNAPPY"),
        ("gzip", 12, "GZIP"),
        ("lz4", 3, "LZ4"),
        ("none", 3, "UNCOMPRESSED"),
    ],
)
def test_every_configured_codec_writes_valid_segments(
    tmp_path, codec: str, level: int, expected: str
) -> None:
    w = StreamingParquetWriter(
        tmp_path, "ccxt", "ticker", SCHEMAS["ticker"], compression=codec, compression_level=level
    )
    w.write(table_of("ticker", 0, 5))
    pf = pq.ParquetFile(w.close())
    assert pf.metadata.row_group(0).column(0).compression == expected
    assert pf.read().equals(table_of("ticker", 0, 5))
