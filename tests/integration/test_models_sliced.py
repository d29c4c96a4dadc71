"""Sliced = whole: the order-book models built in time slices (etl.slice_hours) give the same rows,
in the same file order, as the same day built in one piece.

Synthetic bronze over two UTC days with gaps and disconnects; slices of one hour put slice edges
inside rolling windows, inside gaps and at midnight, where the lookback of each slice must stand in
for the rows before it (the sequential windows, the break flags, the VPIN points of the day).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from daedalus.build import build, compile_sql
from daedalus.config import Config, load_config
from daedalus.devkit.synth import generate
from daedalus.lake import open_lake
from daedalus.lake.manifest import Manifest

pytestmark = pytest.mark.slow  # two real builds over two synthetic days
SLICED = ("orderbook", "orderbook_seq", "orderbook_hf")
DOWNSTREAM = ("orderbook_bars",)


def synth_lake(tmp_path: Path, **shape: Any) -> Any:
    """Synthetic bronze of one BTC/USDT book from 2024-01-06 in tmp_path/lake (`shape`: the
    generator's days, hours, rates and levels); returns the generator's summary."""
    return generate(tmp_path / "lake", symbols=["BTC/USDT"], start="2024-01-06", **shape)


def files_in_order(cfg: Config, model: str) -> list[str]:
    lake = open_lake(cfg)
    ps = Manifest.load(lake).models[model].partitions
    return [lake.url(f.path) for pid in sorted(ps) for f in sorted(ps[pid].files, key=lambda f: f.path)]


def rows(cfg: Config, model: str) -> pa.Table:
    """The model's rows in file-name order then file-row order: what a reader of the files sees."""
    files = files_in_order(cfg, model)
    return (
        duckdb.connect()
        .execute(
            f"SELECT * EXCLUDE (filename, file_row_number) FROM read_parquet({files!r}, hive_partitioning=false, "
            "filename=true, file_row_number=true) "
            f"ORDER BY list_position({files!r}, filename), file_row_number"
        )
        .to_arrow_table()
    )


def test_slices_equal_whole_days(tmp_path: Path) -> None:
    summary = synth_lake(
        tmp_path,
        days=2,
        snapshot_ms=5_000,
        levels=5,
        trades_per_sec=0.5,
        gaps_per_day=3,
        ticker_ms=20_000,
    )
    assert summary.rows["events"] > 0
    base = {"storage.root": str(tmp_path / "lake"), "duckdb.temp_directory": str(tmp_path / "tmp")}

    whole_cfg = load_config(overrides={**base, "etl.slice_hours": 24})
    whole_run = build(whole_cfg, catalog=False)
    assert all(t.passed for t in whole_run.tests)
    whole = {m: rows(whole_cfg, m) for m in SLICED + DOWNSTREAM}
    assert all(len(files_in_order(whole_cfg, m)) == 2 for m in SLICED)  # one file a day

    sliced_cfg = load_config(overrides={**base, "etl.slice_hours": 1})
    sliced_run = build(sliced_cfg, catalog=False, full_refresh=True)
    assert all(t.passed for t in sliced_run.tests)  # the monotonic tests read the files in name order
    for model in SLICED:
        assert len(files_in_order(sliced_cfg, model)) == 2, model  # 24 slices a day, merged into one file
    for model in SLICED + DOWNSTREAM:
        got = rows(sliced_cfg, model)
        assert got.num_rows == whole[model].num_rows > 0, model
        assert got.equals(whole[model]), f"{model}: sliced rows differ from the day built whole"
    seq = whole["orderbook_seq"]
    assert seq.column("ofi_sum_900s").null_count < seq.num_rows  # windows that span slice edges exist


def test_compile_prints_the_query_of_one_slice(tmp_path: Path) -> None:
    synth_lake(
        tmp_path,
        days=1,
        hours=3,
        snapshot_ms=60_000,
        levels=3,
        trades_per_sec=0.05,
        gaps_per_day=0,
        ticker_ms=60_000,
    )
    cfg = load_config(overrides={"storage.root": str(tmp_path / "lake"), "etl.slice_hours": 1})
    sql = compile_sql(cfg, "orderbook", "exchange=binance,symbol=BTC/USDT,date=2024-01-06", slice_no=2)
    header = sql.splitlines()[0]
    assert header.endswith("slice 2/24 [01:00, 02:00) UTC; the build runs one such query per slice"), header
    # the slice's rows, and the lookback (max_state_staleness_seconds = 300) before them
    assert (
        "\"ts\" >= TIMESTAMPTZ '2024-01-06 01:00:00.000000+00' AND \"ts\" < TIMESTAMPTZ '2024-01-06 02:00:00.000000+00'"
        in sql
    )
    assert "\"timestamp\" >= TIMESTAMPTZ '2024-01-06 00:55:00.000000+00'" in sql
    whole = compile_sql(
        cfg.model_copy(update={"etl": cfg.etl.model_copy(update={"slice_hours": 24})}),
        "orderbook",
        "exchange=binance,symbol=BTC/USDT,date=2024-01-06",
    )
    assert "slice" not in whole.splitlines()[0] and "TIMESTAMPTZ '2024-01-05 23:55:00.000000+00'" in whole


def test_auto_slices_follow_the_bronze_of_the_day(tmp_path: Path) -> None:
    """`slice_hours: auto` cuts a day by the bronze it holds: three busy hours of an otherwise empty
    day get the slices a busy day would (not 24 h because the day's total is small), a budget above
    the day builds it whole, and either way the rows equal the day built in one piece."""
    synth_lake(
        tmp_path,
        days=1,
        hours=3,
        snapshot_ms=2_000,
        levels=5,
        trades_per_sec=0.5,
        gaps_per_day=1,
        ticker_ms=20_000,
    )
    book = sum(f.stat().st_size for f in (tmp_path / "lake" / "bronze" / "orderbook").rglob("*.parquet"))
    base = {"storage.root": str(tmp_path / "lake"), "duckdb.temp_directory": str(tmp_path / "tmp")}
    part = "exchange=binance,symbol=BTC/USDT,date=2024-01-06"

    # a budget of 40 % of the day's book: one busy hour (a third) fits, two do not
    auto_cfg = load_config(overrides={**base, "etl.slice_bronze_mb": 0.4 * book / 1e6})
    assert auto_cfg.etl.slice_hours == "auto"  # the default
    for model in SLICED:
        header = compile_sql(auto_cfg, model, part, slice_no=2).splitlines()[0]
        assert "slice 2/24 [01:00, 02:00)" in header, (model, header)
    roomy_cfg = load_config(overrides={**base, "etl.slice_bronze_mb": 2 * book / 1e6})
    assert "slice" not in compile_sql(roomy_cfg, "orderbook", part).splitlines()[0]

    auto_run = build(auto_cfg, catalog=False)
    assert all(t.passed for t in auto_run.tests)
    auto = {m: rows(auto_cfg, m) for m in SLICED + DOWNSTREAM}
    whole_cfg = load_config(overrides={**base, "etl.slice_hours": 24})
    build(whole_cfg, catalog=False, full_refresh=True)
    for model in SLICED + DOWNSTREAM:
        whole = rows(whole_cfg, model)
        assert whole.num_rows > 0 and auto[model].equals(whole), model
