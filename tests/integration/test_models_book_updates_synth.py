"""silver.orderbook from synthetic `book_updates` (daedalus.devkit.synth with book_updates=True): partition
independence (a slice built alone = the day built from the connection's start; day by day = full
rebuild) and agreement with the snapshot path on the same books."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from daedalus.build import build
from daedalus.config import Config, load_config
from daedalus.devkit.synth import generate
from daedalus.lake import open_lake
from daedalus.lake.manifest import Manifest

pytestmark = pytest.mark.slow
BOOK = dict(
    symbols=["BTC/USDT"],
    start="2024-01-06",
    snapshot_ms=2_000,
    levels=10,
    trades_per_sec=0.2,
    ticker_ms=20_000,
    book_updates=True,
    book_depth=400,
)


def table(cfg: Config, model: str, order: str = "exchange, symbol, ts, seq") -> pa.Table:
    lake = open_lake(cfg)
    files = [lake.url(f.path) for f in Manifest.load(lake).models[model].files()]
    return (
        duckdb.connect()
        .execute(f"SELECT * FROM read_parquet({files!r}, hive_partitioning=false) ORDER BY {order}")
        .to_arrow_table()
    )


def config(root: Path, tmp: Path, **extra: object) -> Config:
    return load_config(
        overrides={
            "storage.root": str(root),
            "duckdb.temp_directory": str(tmp / "tmp"),
            "etl.features.max_levels": 10,
            **extra,
        }
    )


def link(src: Path, dst: Path, channels: set[str] | None = None, day: str | None = None) -> None:
    for f in src.glob("bronze/*/*/date=*/*.parquet"):
        rel = f.relative_to(src)
        if (channels is None or rel.parts[1] in channels) and (day is None or f"date={day}" in rel.parts):
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dst / rel)


@pytest.mark.parametrize("gaps", [0, 2])
def test_hourly_slices_equal_the_day_replayed_from_each_connection_start(tmp_path: Path, gaps: int) -> None:
    # 5 hours: with no gap, slices from 03:00 on start more than the 2 h anchor window after the
    # connection's snapshot, so only the hourly checkpoints can make them equal
    summary = generate(tmp_path / "lake", days=1, hours=5, gaps_per_day=gaps, **BOOK)
    assert summary.rows["book_updates"] > 0 and len(summary.gaps) == gaps
    whole_cfg = config(tmp_path / "lake", tmp_path, **{"etl.slice_hours": 24})
    assert all(t.passed for t in build(whole_cfg, select="orderbook", catalog=False).tests)
    whole = table(whole_cfg, "orderbook")
    sliced_cfg = config(tmp_path / "lake", tmp_path, **{"etl.slice_hours": 1})
    build(sliced_cfg, select="orderbook", catalog=False, full_refresh=True)
    sliced = table(sliced_cfg, "orderbook")
    assert sliced.num_rows == whole.num_rows > 0 and sliced.equals(whole)
    # the slices did start mid-connection: hourly checkpoints served as their anchors, and are
    # never served themselves (issue 28: they are the collector's storage rows, no market event)
    kinds = dict(duckdb.connect().execute("SELECT kind, count(*) FROM whole GROUP BY kind").fetchall())
    assert set(kinds) == {"snapshot", "delta"} and kinds["snapshot"] == len(summary.gaps) + 1
    bronze = str(tmp_path / "lake" / "bronze" / "book_updates" / "**" / "*.parquet")
    n_checkpoints, n_messages = (
        duckdb.connect()
        .execute(
            "SELECT count(*) FILTER (WHERE kind = 'checkpoint'), count(*) FILTER (WHERE kind <> 'checkpoint') "
            f"FROM read_parquet('{bronze}')"
        )
        .fetchone()
    )
    assert n_checkpoints >= 2 and n_messages == whole.num_rows  # every message served
    breaks = (
        duckdb.connect()
        .execute(
            "SELECT count(*) FILTER (WHERE break_before), count(*) FILTER (WHERE break_reason = 'snapshot'), "
            "count(*) FILTER (WHERE full_book AND bid_depth_0_5bps IS NULL) FROM whole"
        )
        .fetchone()
    )
    # every break is a connection start (its snapshot) here: checkpoints agree with the rebuilt book
    assert breaks[0] == breaks[1] == len(summary.gaps) + 1 and breaks[2] == 0


def test_updates_serve_the_same_top_levels_as_the_snapshots_of_the_same_book(tmp_path: Path) -> None:
    generate(tmp_path / "both", days=1, hours=2, gaps_per_day=1, **BOOK)
    snaps, upds = tmp_path / "snaps", tmp_path / "upds"
    link(tmp_path / "both", snaps, {"orderbook", "trades", "ticker", "events"})
    link(tmp_path / "both", upds, {"book_updates", "trades", "ticker", "events"})
    by_snaps = config(snaps, tmp_path)
    by_upds = config(upds, tmp_path)
    build(by_snaps, select="orderbook", catalog=False)
    build(by_upds, select="orderbook", catalog=False)
    s, u = table(by_snaps, "orderbook"), table(by_upds, "orderbook")
    con = duckdb.connect()
    n, same, extra = con.execute("""
        SELECT count(*), count(*) FILTER (WHERE s.bids = u.bids AND s.asks = u.asks AND s.break_before = u.break_before),
               (SELECT count(*) FROM u WHERE kind = 'checkpoint')
        FROM s JOIN u ON u.conn_id = s.conn_id AND u.seq = 2 * s.seq AND u.ts = s.ts
    """).fetchone()
    assert n == s.num_rows == u.num_rows - extra and same == n
    assert not any(s.column("full_book").to_pylist()) and all(u.column("full_book").to_pylist())


def test_day_by_day_equals_full_rebuild_from_updates(tmp_path: Path) -> None:
    staging, root = tmp_path / "staging", tmp_path / "lake"
    summary = generate(staging, days=2, gaps_per_day=2, **{**BOOK, "snapshot_ms": 20_000})
    cfg = config(root, tmp_path)
    for day in summary.dates:
        link(staging, root, day=day)
        assert all(t.passed for t in build(cfg, select="+orderbook_hf", catalog=False).tests)
    incremental = {m: table(cfg, m) for m in ("orderbook", "orderbook_hf")}
    build(cfg, select="+orderbook_hf", catalog=False, full_refresh=True)
    for model, rows in incremental.items():
        again = table(cfg, model)
        assert again.num_rows == rows.num_rows > 0 and again.equals(rows), model
    hf = incremental["orderbook_hf"]
    assert hf.column("bid_depth_0_5bps").null_count == 0  # whole-book bands: visible on every row
