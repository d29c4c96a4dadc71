"""One build of silver.orderbook and silver.orderbook_unserved replays each book once: the unserved
model's kernel calls are answered by what silver.orderbook's pass filed (udfs/unserved_memo.py), and
its rows equal those of the model built alone (which replays)."""

from __future__ import annotations

from pathlib import Path

import duckdb

from daedalus.build import build
from daedalus.config import load_config
from daedalus.devkit.synth import generate
from daedalus.udfs import unserved_memo


def _rows(lake: Path) -> list[tuple]:
    return (
        duckdb.connect()
        .execute(
            f"SELECT conn_id, seq, ts, kind, last_update_id, reason FROM read_parquet('{lake}/silver/orderbook_unserved/**/*.parquet') "
            "ORDER BY conn_id, seq"
        )
        .fetchall()
    )


def test_unserved_rows_come_from_the_served_pass(tmp_path: Path) -> None:
    day = {"start": "2024-03-02", "hours": 2, "snapshot_ms": 2_000, "levels": 5, "gaps_per_day": 4}
    lake = tmp_path / "lake"
    generate(lake, symbols=["ETH/USDT"], exchange="bybit", book_updates=True, book_depth=40, **day)
    cfg = load_config(
        overrides={
            "storage.root": str(lake),
            "duckdb.temp_directory": str(tmp_path / "t"),
            "etl.slice_hours": 1,
        }
    )
    unserved_memo.clear()
    before = unserved_memo.hits()
    build(cfg, select="orderbook orderbook_unserved", full_refresh=True, catalog=False)
    # every connection slice the served pass filed was taken by the unserved model: no second replay
    hits = unserved_memo.hits() - before
    assert hits >= 2 and unserved_memo.pending() == 0 and unserved_memo.held() == 0
    together = _rows(
        lake
    )  # (values with unserved rows: tests/unit/test_register_book.py, test_book_accounting)
    build(cfg, select="orderbook_unserved", full_refresh=True, catalog=False, run_tests=False)
    assert unserved_memo.hits() - before == hits  # built alone: replayed
    assert _rows(lake) == together
