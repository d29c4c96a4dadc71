"""silver.orderbook rebuilt from bronze `book_updates` of the real Binance capture (tests/data).

The capture's REST snapshot + applied diffs are written as update bronze (tests/reference/
capture_updates.py) beside what daedalus.devkit.capture writes today (20-level snapshots, trades, ticker,
events) for the same connection, so the updates must win. After every update the silver book must
equal a book rebuilt independently with dicts, at 20 and at 1,000 levels, and the 0–5, 5–10, 10–25
bps band depths must be non-NULL on every row and equal that book's sums over all its levels.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

from daedalus.build import build
from daedalus.config import load_config
from daedalus.devkit.capture import load_capture
from daedalus.lake import open_lake
from daedalus.lake.manifest import Manifest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds the reference package
from reference.book_reference import same_float  # noqa: E402
from reference.capture_updates import capture_rows, expected_books, write_book_updates  # noqa: E402

pytestmark = pytest.mark.slow
CAPTURE = Path(__file__).resolve().parents[1] / "data" / "binance-spot-btcusdt-20240808.jsonl.gz"
EDGES = [0.0, 5.0, 10.0, 25.0, 50.0, 100.0]
BANDS = ["0_5bps", "5_10bps", "10_25bps", "25_50bps", "50_100bps"]


@pytest.fixture(scope="module")
def capture_lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    root = tmp_path_factory.mktemp("updates-lake")
    summary = load_capture(CAPTURE, root)
    conn_id = Path(summary.files[0]).stem
    rows = capture_rows(CAPTURE, conn_id)
    assert rows[0]["kind"] == "snapshot" and len(rows) == summary.applied_diffs + 1
    write_book_updates(rows, root)
    return root, rows


def silver(root: Path, levels: int, select: str = "orderbook") -> tuple[Any, list[tuple]]:
    cfg = load_config(
        overrides={
            "storage.root": str(root),
            "duckdb.temp_directory": str(root / "_tmp"),
            "etl.features.max_levels": levels,
        }
    )
    build(cfg, select=select, full_refresh=True, catalog=False)
    lake = open_lake(cfg)
    files = [lake.url(f.path) for f in Manifest.load(lake).models["orderbook"].files()]
    cols = ", ".join(
        ["seq", "bids", "asks", "break_before", "break_reason", "full_book", "kind", "crossed"]
        + [f"{s}_depth_{b}" for b in BANDS for s in ("bid", "ask")]
    )
    got = (
        duckdb.connect()
        .execute(f"SELECT {cols} FROM read_parquet({files!r}, hive_partitioning=false) ORDER BY seq")
        .fetchall()
    )
    return lake, got


@pytest.mark.parametrize("levels", [20, 1000])
def test_silver_book_after_every_update_equals_the_dict_replay(
    capture_lake: tuple[Path, list], levels: int
) -> None:
    root, rows = capture_lake
    _, got = silver(root, levels)
    want = expected_books(rows, levels, EDGES)
    assert len(got) == len(want) == len(rows)  # every update served: none broke the book
    for g, w in zip(got, want, strict=True):
        seq, bids, asks, brk, reason, full, kind, crossed = g[:8]
        assert seq == w["seq"]
        assert [(lv["price"], lv["size"]) for lv in bids] == w["bids"]
        assert [(lv["price"], lv["size"]) for lv in asks] == w["asks"]
        assert full and not crossed
        assert brk == (seq == 0) and reason == ("snapshot" if seq == 0 else None)
        bands = g[8:]
        for i in range(len(BANDS)):
            assert same_float(bands[2 * i], w["bid_bands"][i]), (seq, BANDS[i])
            assert same_float(bands[2 * i + 1], w["ask_bands"][i]), (seq, BANDS[i])
    # the near bands are visible on every row of the real capture, at any stored depth
    for i in range(3):
        assert all(g[8 + 2 * i] is not None and g[9 + 2 * i] is not None for g in got)
    assert sum(1 for g in got if g[8] > 0) > len(got) * 0.9


def test_gold_takes_the_whole_book_bands_from_silver(capture_lake: tuple[Path, list]) -> None:
    root, rows = capture_lake
    lake, _ = silver(root, 20, select="+orderbook_hf")
    m = Manifest.load(lake).models
    hf = [lake.url(f.path) for f in m["orderbook_hf"].files()]
    sv = [lake.url(f.path) for f in m["orderbook"].files()]
    n, same, null_near = (
        duckdb.connect()
        .execute(f"""
        SELECT count(*),
               count(*) FILTER (WHERE g.bid_depth_0_5bps = s.bid_depth_0_5bps AND g.ask_depth_10_25bps = s.ask_depth_10_25bps
                                AND g.band_imbalance_5_10bps IS NOT DISTINCT FROM
                                    (s.bid_depth_5_10bps - s.ask_depth_5_10bps) / nullif(s.bid_depth_5_10bps + s.ask_depth_5_10bps, 0)),
               count(*) FILTER (WHERE g.bid_depth_0_5bps IS NULL OR g.ask_depth_0_5bps IS NULL)
        FROM read_parquet({hf!r}, hive_partitioning=false) g
        JOIN read_parquet({sv!r}, hive_partitioning=false) s USING (exchange, symbol, ts, seq)
    """)
        .fetchone()
    )
    # 20 stored levels reach ~2 bps: from levels alone 0–5 would be NULL on nearly every row
    assert n == len(rows) and same == n and null_near == 0
