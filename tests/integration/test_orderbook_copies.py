"""silver.orderbook from snapshots when bronze holds copies of one snapshot (sql/silver/orderbook.sql).

The winner of a key (exchange, symbol, exchange time, seq) is picked on the narrow keys and its
lists are joined back from bronze by the winner's (conn_id, receive time). Copies that share those
too: a good copy landed twice (kept once), and a refused copy (NaN level) beside a good one (the good
one is served, the refused one still counts as a break of the series). A copy of another snapshot on
a second connection received later loses to the first. Built in 1 h slices with a snapshot on each
side of a slice start, so the lookback rows decide the first rows' `break_before` only.
"""

from __future__ import annotations

import datetime as dt
import math
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

pytestmark = pytest.mark.slow  # one real build of silver.orderbook

DAY = dt.date(2024, 3, 1)
T0 = dt.datetime(2024, 3, 1, 10, 59, 57, tzinfo=dt.UTC)  # seq 4 is the first row of the 11:00 slice


def at(s: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=s)


def book(seq: int, bid: float, conn: str = "c1", late: float = 0.0) -> dict[str, Any]:
    return {
        "collected_at": int((at(seq) + dt.timedelta(milliseconds=5 + late * 1000)).timestamp() * 1000),
        "capture_ts": at(seq) + dt.timedelta(milliseconds=5) + dt.timedelta(seconds=late),
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "conn_id": conn,
        "seq": seq,
        "timestamp": at(seq),
        "nonce": seq,
        "bids": [{"price": bid, "size": 1.0}, {"price": bid - 1, "size": 2.0}],
        "asks": [{"price": bid + 1, "size": 1.5}],
    }


def write(root: Path, name: str, rows: list[dict[str, Any]]) -> None:
    out = root / "bronze" / "orderbook" / "exchange=binance" / f"date={DAY.isoformat()}"
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMAS["orderbook"]), out / f"{name}.parquet")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    root = tmp_path_factory.mktemp("lake")
    write(root, "seg-1", [book(s, 1000.0 + s) for s in range(1, 9)])
    write(
        root,
        "seg-2",
        [
            book(2, math.nan),  # a refused copy of seq 2 (same connection, same receive time)
            book(5, 1000.0 + 5),  # seq 5 landed twice on c1 at one instant
            book(6, 2000.0, conn="c2", late=0.5),  # seq 6 again on c2, received later: loses
        ],
    )
    cfg = load_config(
        overrides={
            "storage.root": str(root),
            "duckdb.temp_directory": str(root / "_tmp"),
            "etl.slice_hours": 1,
        }
    )
    build(cfg, select="silver.orderbook", catalog=False)
    lake = open_lake(cfg)
    urls = [lake.url(f.path) for f in Manifest.load(lake).models["orderbook"].files()]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return (
        con.execute(f"SELECT * FROM read_parquet({urls!r}, hive_partitioning=false)")
        .to_arrow_table()
        .to_pylist()
    )


def test_each_snapshot_once_in_order(served: list[dict[str, Any]]) -> None:
    assert [r["seq"] for r in served] == list(range(1, 9))


def test_the_good_copy_and_the_first_connection_serve(served: list[dict[str, Any]]) -> None:
    by_seq = {r["seq"]: r for r in served}
    assert by_seq[2]["bids"][0] == {"price": 1002.0, "size": 1.0}  # not the refused NaN copy
    assert by_seq[5]["bids"][0]["price"] == 1005.0
    assert by_seq[6]["conn_id"] == "c1" and by_seq[6]["bids"][0]["price"] == 1006.0


def test_breaks(served: list[dict[str, Any]]) -> None:
    # seq 1 starts the series; the refused copy of seq 2 (received with it) breaks the row after it
    # (seq 3). seq 4 opens the 11:00 slice: its predecessor comes from the lookback, so no break.
    assert [r["seq"] for r in served if r["break_before"]] == [1, 3]
