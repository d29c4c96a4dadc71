"""`daedalus land`: ready segments → bronze hive partitions; idempotent under a crash at every step."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from test_segment import sample_row  # tests/unit is on sys.path (rootdir import mode)
from typer.testing import CliRunner

from daedalus.collector.ndjson_segment import NdjsonSegmentWriter
from daedalus.collector.quarantine import convert_rows
from daedalus.collector.schemas import SCHEMAS
from daedalus.collector.segment import StreamingParquetWriter
from daedalus.config import Config, StorageConfig
from daedalus.errors import StorageError
from daedalus.land.landing import STEPS, land

MIDNIGHT = 1_723_075_200_000_000_000  # 2024-08-08T00:00:00Z


def cfg(root: Path, retirement: str = "delete") -> Config:
    return Config(storage=StorageConfig(root=str(root), raw_retirement=retirement))


def trade(i: int, exchange: str, ts: int | None, capture: int) -> dict:
    row = sample_row("trades", i)
    row.update(exchange=exchange, timestamp=ts, capture_ts=capture, trade_id=f"{exchange}-{i}")
    return row


def write_segment(root: Path, channel: str, rows: list[dict], source: str = "ccxt") -> Path:
    w = StreamingParquetWriter(root, source, channel, SCHEMAS[channel])
    conv = convert_rows(channel, rows, SCHEMAS[channel])
    assert not conv.rejected
    w.write(conv.table)
    path = w.close()
    assert path is not None
    return path


def bronze_rows(root: Path, channel: str) -> list[dict]:
    files = sorted((root / "bronze" / channel).rglob("*.parquet"))
    return [r for f in files for r in pq.read_table(f).to_pylist()]


def raw_left(root: Path, state: str) -> list[Path]:
    return sorted(p for p in (root / "raw" / state).rglob("segment_*") if p.is_file())


def three_segments(root: Path) -> int:
    """Three trades segments, each spanning two exchanges and midnight; returns the row count."""
    n = 0
    for s in range(3):
        rows = []
        for i in range(40):
            k = s * 100 + i
            ts = MIDNIGHT + (i - 20) * 1_000_000_000  # half before midnight, half after
            rows.append(trade(k, ("binance", "okx")[i % 2], ts, ts + 5_000_000))
        write_segment(root, "trades", rows)
        n += len(rows)
    return n


def test_rows_land_in_exchange_and_utc_date_partitions(tmp_path) -> None:
    seg = write_segment(
        tmp_path,
        "trades",
        [
            trade(1, "binance", MIDNIGHT - 1, MIDNIGHT + 10),  # exchange time decides: 2024-08-07
            trade(2, "binance", MIDNIGHT, MIDNIGHT - 10),  # 2024-08-08 though captured the day before
            trade(3, "binance", None, MIDNIGHT - 1),  # no exchange time: capture_ts decides → 08-07
            trade(4, "okx", MIDNIGHT + 86_400 * 10**9, MIDNIGHT),  # 2024-08-09
        ],
    )
    ev = write_segment(tmp_path, "events", [sample_row("events", 0) | {"capture_ts": MIDNIGHT + 1}])
    report = land(cfg(tmp_path))
    assert report.segments == 2 and report.rows == 5 and report.recovered == 0 and not report.errors
    name = f"ccxt_{seg.stem}.parquet"
    expected = {
        f"bronze/trades/exchange=binance/date=2024-08-07/{name}": ["binance-1", "binance-3"],
        f"bronze/trades/exchange=binance/date=2024-08-08/{name}": ["binance-2"],
        f"bronze/trades/exchange=okx/date=2024-08-09/{name}": ["okx-4"],
    }
    for rel, ids in expected.items():
        t = pq.read_table(tmp_path / rel)
        assert t.column("trade_id").to_pylist() == ids
        assert "date" not in t.column_names and t.schema.equals(SCHEMAS["trades"])
    assert (tmp_path / f"bronze/events/exchange=binance/date=2024-08-08/ccxt_{ev.stem}.parquet").exists()
    assert sorted(report.files) == sorted(
        [*expected, f"bronze/events/exchange=binance/date=2024-08-08/ccxt_{ev.stem}.parquet"]
    )
    assert report.partitions == {
        ("trades", "binance", "2024-08-07"),
        ("trades", "binance", "2024-08-08"),
        ("trades", "okx", "2024-08-09"),
        ("events", "binance", "2024-08-08"),
    }
    assert raw_left(tmp_path, "ready") == [] and raw_left(tmp_path, "processing") == []
    again = land(cfg(tmp_path))
    assert again.segments == 0 and len(bronze_rows(tmp_path, "trades")) == 4


class SimulatedCrash(Exception):
    pass


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("occurrence", [1, 2])
def test_crash_after_any_step_then_rerun_lands_each_row_exactly_once(
    tmp_path, step: str, occurrence: int
) -> None:
    total = three_segments(tmp_path)
    seen = Counter()

    def crash(s: str, segment: str) -> None:
        seen[s] += 1
        if s == step and seen[s] == occurrence:
            raise SimulatedCrash(f"{s} #{occurrence} of {segment}")

    with pytest.raises(SimulatedCrash):
        land(cfg(tmp_path), on_step=crash)
    report = land(cfg(tmp_path))
    assert not report.errors
    rows = bronze_rows(tmp_path, "trades")
    ids = [r["trade_id"] for r in rows]
    assert len(ids) == total and len(set(ids)) == total  # none lost, none twice
    assert raw_left(tmp_path, "ready") == [] and raw_left(tmp_path, "processing") == []
    assert not list((tmp_path / "bronze").rglob(".land-*"))  # no temp file left behind
    # every file is named after its segment: 3 segments × 2 exchanges × 2 dates
    assert len(list((tmp_path / "bronze" / "trades").rglob("*.parquet"))) == 12
    if step != "retired":
        assert report.recovered + report.segments >= 1


def test_truncated_segment_is_quarantined_and_the_others_land(tmp_path) -> None:
    good = write_segment(tmp_path, "trades", [trade(1, "binance", MIDNIGHT, MIDNIGHT)])
    bad = write_segment(tmp_path, "trades", [trade(i, "binance", MIDNIGHT, MIDNIGHT) for i in range(100)])
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    report = land(cfg(tmp_path))
    # issue 24: the cut is in the footer (most of a small file): its one row group is whole and kept
    assert report.segments == 2 and report.rows == 101
    assert report.quarantined == [f"raw/quarantine/ccxt/trades/{bad.name}"]
    assert (tmp_path / "raw" / "quarantine" / "ccxt" / "trades" / bad.name).read_bytes() == data[
        : len(data) // 2
    ]
    assert sorted(r["trade_id"] for r in bronze_rows(tmp_path, "trades")) == sorted(
        ["binance-1"] + [f"binance-{i}" for i in range(100)]
    )
    (event,) = bronze_rows(tmp_path, "events")
    assert event["event_type"] == "quarantine" and event["channel"] == "trades"
    assert event["exchange"] == "binance"  # the exchange of its readable rows, not the source `ccxt`
    assert bad.name in event["detail"] and "footer lost" in event["detail"]
    assert not (tmp_path / "bronze" / "events" / "exchange=ccxt").exists()
    assert not good.exists() and raw_left(tmp_path, "processing") == []


def test_schema_drift_extra_column_lands_and_reads_by_name(tmp_path) -> None:
    write_segment(tmp_path, "trades", [trade(1, "binance", MIDNIGHT, MIDNIGHT)])
    drifted = pa.Table.from_pylist([trade(2, "binance", MIDNIGHT + 1, MIDNIGHT)], schema=SCHEMAS["trades"])
    drifted = drifted.append_column("is_maker", pa.array([True]))
    ready = tmp_path / "raw" / "ready" / "ccxt" / "trades"
    pq.write_table(drifted, ready / "segment_20240808T000000000000Z_drifted00000.parquet")
    report = land(cfg(tmp_path))
    assert report.segments == 2 and not report.quarantined
    glob = str(tmp_path / "bronze" / "trades" / "**" / "*.parquet")
    got = duckdb.sql(
        f"SELECT trade_id, is_maker, exchange, date::VARCHAR AS d FROM read_parquet('{glob}', "
        "union_by_name=true, hive_partitioning=true) ORDER BY trade_id"
    ).fetchall()
    assert got == [("binance-1", None, "binance", "2024-08-08"), ("binance-2", True, "binance", "2024-08-08")]
    # pyarrow readers see it too, with a unified schema
    files = sorted((tmp_path / "bronze" / "trades").rglob("*.parquet"))
    schema = pa.unify_schemas([pq.read_schema(f) for f in files])
    table = ds.dataset(files, schema=schema).to_table()
    assert sorted(table.column("is_maker").to_pylist(), key=str) == [None, True]


def test_archive_retirement_and_ndjson_segments(tmp_path) -> None:
    w = NdjsonSegmentWriter(tmp_path, "coinbase", "orderbook", SCHEMAS["orderbook"])
    rows = [sample_row("orderbook", i) for i in range(5)]
    w.write(convert_rows("orderbook", rows, SCHEMAS["orderbook"]).table)
    seg = w.close()
    report = land(cfg(tmp_path, retirement="archive"))
    assert report.segments == 1 and report.rows == 5
    assert (tmp_path / "raw" / "archive" / "coinbase" / "orderbook" / seg.name).exists()
    (f,) = (tmp_path / "bronze" / "orderbook").rglob("*.parquet")
    assert f.name == f"coinbase_{seg.stem}.parquet"
    t = pq.read_table(f)
    assert t.schema.equals(SCHEMAS["orderbook"])
    assert t.column("bids").to_pylist()[0][0] == {"price": 100.0, "size": 1.0}


def test_quarantine_dir_of_the_collector_is_left_alone(tmp_path) -> None:
    qdir = tmp_path / "raw" / "ready" / "ccxt" / "quarantine"
    qdir.mkdir(parents=True)
    (qdir / "segment_x.parquet").write_bytes(b"rejected records live here")
    report = land(cfg(tmp_path))
    assert report.segments == 0 and (qdir / "segment_x.parquet").exists()


def test_s3_root_is_a_clear_error() -> None:
    with pytest.raises(StorageError, match="storage.root"):
        land(Config(storage=StorageConfig(root="s3://bucket/lake")))


def test_cli_land(tmp_path) -> None:
    from daedalus.cli.app import app

    three_segments(tmp_path)
    result = CliRunner().invoke(app, ["--root", str(tmp_path), "land"])
    assert result.exit_code == 0, result.output
    assert "landed 3 segments (120 rows, 12 files, 4 partitions)" in result.output


LAND_CHILD = """
import sys
from daedalus.config import Config, StorageConfig
from daedalus.land.landing import land

def step(name, segment):
    print(name, segment, flush=True)

land(Config(storage=StorageConfig(root=sys.argv[1])), on_step=step)
"""


@pytest.mark.parametrize("kill_after", [1, 4, 9])
def test_kill_9_during_land_then_rerun(tmp_path, kill_after: int) -> None:
    """A real SIGKILL (no cleanup code runs) part-way through a land of many segments."""
    import os
    import signal
    import subprocess
    import sys

    total = three_segments(tmp_path) + three_segments(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-c", LAND_CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    for _ in range(kill_after):
        assert proc.stdout.readline()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    land(cfg(tmp_path))
    ids = [r["trade_id"] for r in bronze_rows(tmp_path, "trades")]
    assert (
        len(ids) == total == 240 and len(set(ids)) == 120
    )  # each segment's rows once (ids repeat across the two sets)
    assert Counter(ids) == Counter({i: 2 for i in set(ids)})
    assert raw_left(tmp_path, "ready") == [] and raw_left(tmp_path, "processing") == []
    assert not list((tmp_path / "bronze").rglob(".land-*"))
