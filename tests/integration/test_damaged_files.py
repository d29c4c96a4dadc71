"""Issue 24: a raw segment or a bronze file cut short keeps its complete row groups, its loss is a
`quarantine` event naming the real exchange (not the source `ccxt`), and the rest of the lake builds."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from s3_helpers import make_lakehouse
from toy import trade_rows

from daedalus.collector.schemas import SCHEMAS

DAY = "2024-08-08"


def _segment(spool: Path, name: str, n: int = 120, group: int = 10) -> Path:
    """A raw trades segment of two symbols on kraken, `group` rows per row group (one per flush)."""
    rows = trade_rows("kraken", "BTC/USDT", DAY, n=n // 2) + trade_rows(
        "kraken", "ETH/USDT", DAY, n=n // 2, start_id=5000
    )
    rows.sort(key=lambda r: r["capture_ts"])
    d = spool / "raw" / "ready" / "ccxt" / "trades"
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"segment_{name}.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMAS["trades"]), path, row_group_size=group)
    return path


def _events(root: Path) -> list[dict]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return [
        dict(zip(("exchange", "symbol", "channel", "count", "detail"), r, strict=True))
        for r in con.execute(
            "SELECT exchange, symbol, channel, count, detail "
            f"FROM read_parquet('{root}/bronze/events/**/*.parquet', hive_partitioning = false) "
            "WHERE event_type = 'quarantine' ORDER BY symbol NULLS LAST"
        ).fetchall()
    ]


def _silver_rows(root: Path) -> int:
    return duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{root}/silver/toy_trades/**/*.parquet')"
    ).fetchone()[0]


def test_truncated_raw_segment_lands_its_complete_row_groups_and_names_its_exchange(tmp_path: Path) -> None:
    h = make_lakehouse(tmp_path)
    seg = _segment(h.spool, "0001")
    data = seg.read_bytes()
    seg.write_bytes(data[: len(data) // 2])
    out = h.cli("land")
    assert out.returncode == 0, out.stderr
    bronze = [
        r for f in (h.spool / "bronze" / "trades").rglob("*.parquet") for r in pq.read_table(f).to_pylist()
    ]
    full = pq.read_table(pa.BufferReader(data))  # the segment as written, for the expected prefix
    assert 40 <= len(bronze) < 120 and len(bronze) % 10 == 0  # whole row groups, not all lost
    assert [r["trade_id"] for r in bronze] == full.column("trade_id").to_pylist()[: len(bronze)]
    events = _events(h.spool)
    assert events and {e["exchange"] for e in events} == {"kraken"}  # not the source "ccxt"
    assert {e["channel"] for e in events} == {"trades"}
    cut = [e for e in events if e["symbol"] is not None]  # the row group the cut went through
    assert sum(e["count"] for e in cut) == 10 and {e["symbol"] for e in cut} <= {"BTC/USDT", "ETH/USDT"}
    assert (h.spool / "raw" / "quarantine" / "ccxt" / "trades" / seg.name).exists()
    assert not (h.spool / "bronze" / "events" / "exchange=ccxt").exists()


def test_bronze_file_cut_in_half_is_repaired_and_every_build_goes_on(tmp_path: Path) -> None:
    h = make_lakehouse(tmp_path)
    _segment(h.spool, "0001")
    assert h.cli("land").returncode == 0
    assert h.cli("build").returncode == 0
    (bronze_file,) = (h.spool / "bronze" / "trades").rglob("*.parquet")
    data = bronze_file.read_bytes()
    bronze_file.write_bytes(data[: len(data) // 2])

    out = h.cli("build")
    assert out.returncode == 0, out.stderr
    assert "damaged bronze file repaired" in out.stderr and "quarantine/bronze/trades" in out.stderr
    kept = pq.read_table(bronze_file).num_rows
    assert 40 <= kept < 120 and kept % 10 == 0
    assert _silver_rows(h.spool) == kept
    moved = h.spool / "quarantine" / bronze_file.relative_to(h.spool)
    assert moved.read_bytes() == data[: len(data) // 2]  # the damaged original, whole, set aside
    events = _events(h.spool)
    assert {(e["exchange"], e["channel"]) for e in events} == {("kraken", "trades")}
    detail = json.loads(events[-1]["detail"])
    assert detail["rows_kept"] == kept and "rows lost" in detail["error"]
    again = h.cli("build")
    assert again.returncode == 0 and "up to date" in again.stderr, again.stdout + again.stderr
    assert not list((h.spool / "bronze").rglob(".guard-*"))


def test_bronze_file_with_a_bad_page_is_repaired_when_a_build_meets_it(tmp_path: Path) -> None:
    """The footer is fine, one column chunk does not decompress: the footer check cannot see it, the
    build's read names the file; that file is repaired (its other row groups kept) and the build goes on."""
    h = make_lakehouse(tmp_path)
    _segment(h.spool, "0001")
    assert h.cli("land").returncode == 0
    (bronze_file,) = (h.spool / "bronze" / "trades").rglob("*.parquet")
    meta = pq.ParquetFile(bronze_file).metadata
    col = meta.row_group(3).column(meta.schema.to_arrow_schema().names.index("price"))
    start = col.dictionary_page_offset or col.data_page_offset
    data = bytearray(bronze_file.read_bytes())
    for k in range(start + 20, start + col.total_compressed_size - 4):
        data[k] = (k * 31 + 7) % 256
    bronze_file.write_bytes(bytes(data))

    out = h.cli("build")
    assert out.returncode == 0, out.stderr
    assert "damaged bronze file repaired (110 readable rows kept, 10 rows lost" in out.stderr
    assert _silver_rows(h.spool) == 110
    events = _events(h.spool)
    assert {e["exchange"] for e in events} == {"kraken"}
    assert sum(e["count"] for e in events) == 10  # exact: the footer counts the lost row group
