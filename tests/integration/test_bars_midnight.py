"""A bar length that does not divide a day: the bar holding midnight is cut there, and the piece after
midnight is labelled by that midnight, so every bar's label and `date` are those of its partition and
no key repeats (docs/features.md "Bars")."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from daedalus.build import build
from daedalus.collector.schemas import SCHEMAS
from daedalus.config import load_config
from daedalus.lake import open_lake
from daedalus.lake.manifest import Manifest

pytestmark = pytest.mark.slow  # a real build

D = 420  # 7 minutes: 86,400 / 420 is not whole
MIDNIGHT = dt.datetime(2024, 3, 2, tzinfo=dt.UTC)


def _trades(root: Path) -> list[dt.datetime]:
    times = [MIDNIGHT + dt.timedelta(seconds=s) for s in range(-600, 600, 30)]  # 23:50 … 00:09:30
    by_day: dict[dt.date, list[dict[str, Any]]] = {}
    for i, t in enumerate(times):
        by_day.setdefault(t.date(), []).append(
            {
                "collected_at": int(t.timestamp() * 1000) + 5,
                "capture_ts": t + dt.timedelta(milliseconds=5),
                "exchange": "binance",
                "conn_id": "c1",
                "symbol": "BTC/USDT",
                "seq": i,
                "timestamp": t,
                "trade_id": str(i),
                "side": "buy",
                "price": 100.0 + i,
                "amount": 1.0,
            }
        )
    for day, rows in by_day.items():
        out = root / "bronze" / "trades" / "exchange=binance" / f"date={day.isoformat()}"
        out.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMAS["trades"]), out / "seg.parquet")
    return times


def test_a_bar_cut_at_midnight_is_labelled_by_its_partition(tmp_path: Path) -> None:
    times = _trades(tmp_path)
    cfg = load_config(
        overrides={
            "storage.root": str(tmp_path),
            "duckdb.temp_directory": str(tmp_path / "_tmp"),
            "etl.features.bar_durations": [D],
        }
    )
    result = build(cfg, select="+trade_bars", catalog=False)
    assert all(t.passed for t in result.tests)
    lake = open_lake(cfg)
    files = [lake.url(f.path) for f in Manifest.load(lake).models["trade_bars"].files()]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    rows = con.execute(
        f"SELECT date, bar_start, trade_count, filename FROM read_parquet({files!r}, hive_partitioning=false, "
        "filename=true) ORDER BY bar_start"
    ).fetchall()
    starts = [r[1] for r in rows]
    assert len(set(starts)) == len(starts)  # no key twice
    assert sum(r[2] for r in rows) == len(times)
    for date, start, _n, filename in rows:
        assert start.date() == date and f"date={date.isoformat()}" in filename
    cut = int(MIDNIGHT.timestamp()) // D * D  # the 7-minute bar that holds midnight
    before = [r for r in rows if r[1] < MIDNIGHT]
    after = [r for r in rows if r[1] >= MIDNIGHT]
    assert before[-1][1] == dt.datetime.fromtimestamp(cut, dt.UTC)
    assert after[0][1] == MIDNIGHT  # the piece after midnight, labelled by it
    want_after = sum(1 for t in times if MIDNIGHT <= t < dt.datetime.fromtimestamp(cut + D, dt.UTC))
    assert after[0][2] == want_after
