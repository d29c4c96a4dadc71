"""A lake that never collected one channel (here: no trades) still builds, and its catalog views —
including models whose SQL calls UDFs and so have no files — open and query without any UDF."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from daedalus.build import build
from daedalus.config import load_config
from daedalus.devkit.synth import generate

pytestmark = pytest.mark.slow


def test_no_trades_builds_and_catalog_needs_no_udf(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    generate(root, hours=0.1, snapshot_ms=500, gaps_per_day=0)
    shutil.rmtree(root / "bronze" / "trades")
    config = load_config(
        None, overrides={"storage.root": str(root), "duckdb.temp_directory": str(tmp_path / "t")}, environ={}
    )
    build(config)
    con = duckdb.connect(
        str(root / "catalog.duckdb"), read_only=True, config={"file_search_path": str(root)}
    )  # a plain reader: no UDFs registered
    n_buckets = con.execute("SELECT count(*) FROM gold.vpin_buckets").fetchone()[0]
    rows, tfi, vol, vpin = con.execute(
        "SELECT count(*), count(tfi_5s), sum(trade_volume_5s), count(vpin) FROM gold.orderbook_hf"
    ).fetchone()
    assert n_buckets == 0
    assert rows == 720  # 0.1 h at 500 ms
    assert (tfi, vpin) == (0, 0)  # docs/features.md: TFI NULL when B + S = 0; VPIN NULL until n buckets
    assert vol == 0  # no trade volume in any window
