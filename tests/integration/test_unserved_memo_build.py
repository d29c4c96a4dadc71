"""One build of silver.orderbook and silver.orderbook_unserved replays each book once: the unserved
model's slices are answered by what silver.orderbook's stream filed (udfs/unserved_memo.py), without
reading bronze or calling the kernel again, and its rows equal those of the model built alone (which
replays), also after a bronze file changed under the same name."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from daedalus.build import build
from daedalus.config import load_config
from daedalus.devkit.synth import generate
from daedalus.udfs import register_book, unserved_memo


def _rows(lake: Path) -> list[tuple]:
    return (
        duckdb.connect()
        .execute(
            f"SELECT conn_id, seq, ts, kind, last_update_id, reason FROM read_parquet('{lake}/silver/orderbook_unserved/**/*.parquet') "
            "ORDER BY conn_id, seq"
        )
        .fetchall()
    )


def test_unserved_rows_come_from_the_served_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
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
    replays = [0]
    replay = register_book.rebuild_connection

    def counted(*args, **kwargs):  # the unserved model's kernel call (the served model streams)
        replays[0] += 1
        return replay(*args, **kwargs)

    monkeypatch.setattr(register_book, "rebuild_connection", counted)
    unserved_memo.clear()
    before = unserved_memo.hits()
    build(cfg, select="orderbook orderbook_unserved", full_refresh=True, catalog=False)
    # every slice the served stream filed was taken by the unserved model: no second read, no replay
    hits = unserved_memo.hits() - before
    assert hits >= 2 and unserved_memo.pending() == 0 and unserved_memo.held() == 0
    assert replays[0] == 0
    together = _rows(
        lake
    )  # (values with unserved rows: tests/unit/test_register_book.py, test_book_accounting)
    build(cfg, select="orderbook_unserved", full_refresh=True, catalog=False, run_tests=False)
    assert unserved_memo.hits() - before == hits and replays[0] >= 2  # built alone: replayed
    assert _rows(lake) == together
    # a bronze file rewritten under its name (here: the same rows, so the same result): the served
    # stream's slice entries name the old file, so the unserved model reads bronze and calls the
    # kernel (whose per-connection digests of the same rows may still answer it)
    build(cfg, select="orderbook", full_refresh=True, catalog=False, run_tests=False)
    bronze = sorted((lake / "bronze" / "book_updates").rglob("*.parquet"))
    for f in bronze:
        duckdb.execute(f"COPY (FROM '{f}') TO '{f}.tmp' (FORMAT parquet)")
        Path(f"{f}.tmp").replace(f)
    replays[0] = 0
    build(cfg, select="orderbook_unserved", full_refresh=True, catalog=False, run_tests=False)
    assert replays[0] >= 2
    assert _rows(lake) == together
    unserved_memo.clear()
