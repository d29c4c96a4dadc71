"""Acceptance: the toy project (view → partitioned → partitioned) builds, a second build rebuilds
nothing, a new input file for one date rebuilds exactly that date's partitions and their dependents,
and an incremental build gives the same rows as a full rebuild."""

from __future__ import annotations

import duckdb
import pytest
from toy import make_toy, trade_rows

from daedalus.build import build, compile_sql, plan_build

DAYS = ("2024-01-01", "2024-01-02", "2024-01-03")


@pytest.fixture
def toy(tmp_path):
    t = make_toy(tmp_path)
    for day in DAYS:
        t.write_bronze(
            "x", day, trade_rows("x", "BTC/USDT", day) + trade_rows("x", "ETH/USDT", day, price=10)
        )
    return t


def pid(symbol: str, day: str) -> str:
    return f"exchange=x/symbol={symbol}/date={day}"


def rows_of(toy, model: str) -> list[tuple]:
    """Every row of a model through the catalog (the manifest's exact file lists)."""
    con = duckdb.connect(
        str(toy.root / "catalog.duckdb"), read_only=True, config={"file_search_path": str(toy.root)}
    )
    try:
        layer = "silver" if model.startswith("toy_trades") else "gold"
        cols = [r[0] for r in con.execute(f"DESCRIBE {layer}.{model}").fetchall()]
        cast = ", ".join(f'CAST("{c}" AS VARCHAR)' for c in cols)
        return con.execute(f"SELECT {cast} FROM {layer}.{model} ORDER BY ALL").fetchall()
    finally:
        con.close()


def test_build_then_nothing_then_one_date(toy):
    cfg = toy.config()
    first = build(cfg, udfs=False)
    expected = {
        (m, pid(s, d)) for m in ("toy_trades", "toy_bars") for s in ("BTC%2FUSDT", "ETH%2FUSDT") for d in DAYS
    }
    assert set(first.rebuilt) == expected
    assert all(t.passed for t in first.tests) and len(first.tests) == 8
    built_at = toy.built_at()
    assert set(built_at) == expected  # the view has no partitions

    second = build(cfg, udfs=False)
    assert second.rebuilt == []
    assert toy.built_at() == built_at, "a build with no new input must not rewrite any partition"

    # A new bronze file for 2024-01-02 with BTC trades only: BTC's silver partition of that date,
    # and the gold partitions that read it (the same date, and the next one through its 1-day lookback).
    toy.write_bronze(
        "x", "2024-01-02", trade_rows("x", "BTC/USDT", "2024-01-02", n=6, start_id=1000), name="seg-0002"
    )
    third = build(cfg, udfs=False)
    changed = {("toy_trades", pid(s, "2024-01-02")) for s in ("BTC%2FUSDT", "ETH%2FUSDT")}
    changed |= {
        ("toy_bars", pid(s, d)) for s in ("BTC%2FUSDT", "ETH%2FUSDT") for d in ("2024-01-02", "2024-01-03")
    }
    # ETH's silver partition of that date reads the same bronze partition (bronze has no symbol key).
    assert set(third.rebuilt) == changed
    after = toy.built_at()
    for key, t in built_at.items():
        assert (after[key] != t) == (key in changed), key
    # rebuilt in dependency order: silver before gold
    order = [m for m, _ in third.rebuilt]
    assert order == sorted(order, key=lambda m: m != "toy_trades")
    assert toy.manifest()["pending_deletions"] == []  # retain 0: replaced files are gone
    files = {p.name for p in (toy.root / "silver" / "toy_trades").rglob("*.parquet")}
    manifest_files = {
        f[0].rsplit("/", 1)[1]
        for p in toy.manifest()["models"]["toy_trades"]["partitions"].values()
        for f in p["files"]
    }
    assert files == manifest_files


def test_incremental_equals_full_rebuild(toy):
    cfg = toy.config()
    build(cfg, udfs=False)
    toy.write_bronze(
        "x", "2024-01-01", trade_rows("x", "BTC/USDT", "2024-01-01", n=8, start_id=500), name="late"
    )
    build(cfg, udfs=False)
    incremental = {m: rows_of(toy, m) for m in ("toy_trades", "toy_bars", "toy_trades_clean")}
    full = build(cfg, full_refresh=True, udfs=False)
    assert len(full.rebuilt) == 12
    assert {m: rows_of(toy, m) for m in incremental} == incremental
    assert len(incremental["toy_trades"]) == 2 * 3 * 30 + 8


def test_lookback_warms_up_across_midnight(toy):
    """The first bar of a day has a moving average over the previous day's last bars."""
    cfg = toy.config()
    build(cfg, udfs=False)
    con = duckdb.connect(
        str(toy.root / "catalog.duckdb"), read_only=True, config={"file_search_path": str(toy.root)}
    )
    r = con.execute("""
        SELECT vwap, vwap_ma FROM gold.toy_bars
        WHERE symbol = 'BTC/USDT' AND date = DATE '2024-01-02' ORDER BY bar_ts LIMIT 1""").fetchone()
    first_day = con.execute("""
        SELECT vwap, vwap_ma FROM gold.toy_bars
        WHERE symbol = 'BTC/USDT' AND date = DATE '2024-01-01' ORDER BY bar_ts LIMIT 1""").fetchone()
    con.close()
    assert first_day[0] == pytest.approx(first_day[1])  # nothing before the first day
    assert r[0] != pytest.approx(r[1])  # warmed up with 2024-01-01's last bars


def test_start_end_limit_dates(toy):
    cfg = toy.config()
    plan = plan_build(cfg, start="2024-01-02", end="2024-01-02", udfs=False)
    assert {p.pid.rsplit("=", 1)[1] for p in plan} == {"2024-01-02"}
    result = build(cfg, start="2024-01-02", end="2024-01-02", udfs=False)
    assert len(result.rebuilt) == 4
    rest = build(cfg, udfs=False)
    days = {(m, p.rsplit("=", 1)[1]) for m, p in rest.rebuilt}
    # silver: the two dates left out; gold: those too, and 01-02, whose lookback reads silver 01-01
    assert days == {
        ("toy_trades", "2024-01-01"),
        ("toy_trades", "2024-01-03"),
        ("toy_bars", "2024-01-01"),
        ("toy_bars", "2024-01-02"),
        ("toy_bars", "2024-01-03"),
    }


def test_empty_input_compiles_to_empty_relation(toy):
    """A partition whose lookback date has no files reads an empty relation of the right columns."""
    cfg = toy.config()
    sql = compile_sql(cfg, "toy_bars", "exchange=x,symbol=BTC/USDT,date=2024-01-01")
    assert "WHERE false" in sql and "read_parquet([])" not in sql
    build(cfg, udfs=False)
    sql = compile_sql(cfg, "toy_bars", "exchange=x,symbol=BTC/USDT,date=2024-01-02")
    assert "date=2024-01-01" in sql and "date=2024-01-02" in sql and "WHERE false" not in sql
    # A date with no bronze at all: the whole chain is empty but still binds and runs.
    sql = compile_sql(cfg, "toy_bars", "exchange=x,symbol=BTC/USDT,date=2023-06-01")
    con = duckdb.connect()
    assert con.execute(f"SELECT count(*) FROM ({sql.split(chr(10), 1)[1]})").fetchone() == (0,)


def test_source_compiles_to_exact_files_with_hive(toy):
    sql = compile_sql(toy.config(), "toy_trades", "exchange=x,symbol=ETH/USDT,date=2024-01-03")
    assert "bronze/trades/exchange=x/date=2024-01-03/seg-0001.parquet'], hive_partitioning=true" in sql
    assert "date=2024-01-02" not in sql  # no lookback configured
    assert "'ETH/USDT'" in sql and "DATE '2024-01-03'" in sql


def test_first_build_without_bronze_builds_nothing(tmp_path):
    toy = make_toy(tmp_path)
    result = build(toy.config(), udfs=False)
    assert result.rebuilt == []
    con = duckdb.connect(
        str(toy.root / "catalog.duckdb"), read_only=True, config={"file_search_path": str(toy.root)}
    )
    assert con.execute("SELECT count(*) FROM gold.toy_bars").fetchone() == (0,)
    assert "vwap_ma" in [r[0] for r in con.execute("DESCRIBE gold.toy_bars").fetchall()]
    con.close()
