"""carry_state (previous_partition, date order, later dates stale) and the `table` materialization."""

from __future__ import annotations

import duckdb
import pytest
from toy import make_toy, trade_rows

from daedalus.build import build

DAYS = ("2024-01-01", "2024-01-02", "2024-01-03")

CUM = """\
{{ config(materialized='partitioned', partition_by=['exchange', 'symbol', 'date'], carry_state=true,
          order_by=['ts', 'trade_id']) }}
-- Cumulative volume since the first day: the state crosses midnight through previous_partition().
WITH prev AS (
    SELECT max(cum_volume) AS base
    FROM {{ previous_partition(columns={'exchange': 'VARCHAR', 'symbol': 'VARCHAR', 'date': 'DATE',
                                         'ts': 'TIMESTAMPTZ', 'trade_id': 'VARCHAR', 'cum_volume': 'DOUBLE'}) }}
),
cur AS (
    SELECT exchange, symbol, date, ts, trade_id, amount FROM {{ ref('toy_trades') }} WHERE date = {{ partition.date }}
)
SELECT exchange, symbol, date, ts, trade_id,
       coalesce((SELECT base FROM prev), 0)
         + sum(amount) OVER (PARTITION BY exchange, symbol ORDER BY ts, trade_id) AS cum_volume
FROM cur
"""

SUMMARY = """\
{{ config(materialized='table', order_by=['symbol']) }}
SELECT symbol, count(*) AS n_trades, sum(amount) AS volume FROM {{ ref('toy_trades') }} GROUP BY ALL
"""


@pytest.fixture
def toy(tmp_path):
    t = make_toy(tmp_path)
    (t.project / "sql" / "gold" / "toy_cum.sql").write_text(CUM)
    (t.project / "sql" / "gold" / "toy_summary.sql").write_text(SUMMARY)
    for day in DAYS:
        t.write_bronze(
            "x", day, trade_rows("x", "BTC/USDT", day) + trade_rows("x", "ETH/USDT", day, price=10)
        )
    return t


def q(toy, sql: str):
    con = duckdb.connect(
        str(toy.root / "catalog.duckdb"), read_only=True, config={"file_search_path": str(toy.root)}
    )
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_carry_state_crosses_dates_and_rebuilds_later_dates(toy):
    cfg = toy.config()
    build(cfg, udfs=False)
    total = q(toy, "SELECT symbol, sum(amount) FROM silver.toy_trades GROUP BY ALL ORDER BY 1")
    last = q(toy, "SELECT symbol, max(cum_volume) FROM gold.toy_cum GROUP BY ALL ORDER BY 1")
    assert [(s, pytest.approx(v)) for s, v in total] == last

    # New trades on day 1 for BTC: every later date of BTC's series is stale; ETH's only through
    # its silver partition (bronze has no symbol key, so ETH's silver day 1 is rebuilt too).
    toy.write_bronze("x", "2024-01-01", trade_rows("x", "BTC/USDT", "2024-01-01", n=5, start_id=300), "late")
    result = build(cfg, select=["toy_cum"], udfs=False)
    cum = [(p.pid, p.reason) for p in result.plan]
    assert cum == []  # toy_trades is not selected, so nothing toy_cum reads has changed yet
    result = build(cfg, udfs=False)
    cum = [(p.pid.split("/", 1)[1], p.reason) for p in result.plan if p.model == "toy_cum"]
    assert cum == [
        ("symbol=BTC%2FUSDT/date=2024-01-01", "upstream rebuilt"),
        ("symbol=BTC%2FUSDT/date=2024-01-02", "earlier date rebuilt"),
        ("symbol=BTC%2FUSDT/date=2024-01-03", "earlier date rebuilt"),
        ("symbol=ETH%2FUSDT/date=2024-01-01", "upstream rebuilt"),
        ("symbol=ETH%2FUSDT/date=2024-01-02", "earlier date rebuilt"),
        ("symbol=ETH%2FUSDT/date=2024-01-03", "earlier date rebuilt"),
    ]
    incremental = q(toy, "SELECT symbol, date, trade_id, cum_volume FROM gold.toy_cum ORDER BY ALL")
    build(cfg, full_refresh=True, udfs=False)
    assert q(toy, "SELECT symbol, date, trade_id, cum_volume FROM gold.toy_cum ORDER BY ALL") == incremental
    total = q(toy, "SELECT symbol, sum(amount) FROM silver.toy_trades GROUP BY ALL ORDER BY 1")
    last = q(toy, "SELECT symbol, max(cum_volume) FROM gold.toy_cum GROUP BY ALL ORDER BY 1")
    assert [(s, pytest.approx(v)) for s, v in total] == last


def test_day_by_day_equals_full(toy):
    """Building one date at a time (carry_state reads the previous day's output) = one full build."""
    cfg = toy.config()
    for day in DAYS:
        build(cfg, start=day, end=day, udfs=False)
    day_by_day = q(toy, "SELECT symbol, date, trade_id, cum_volume FROM gold.toy_cum ORDER BY ALL")
    build(cfg, full_refresh=True, udfs=False)
    assert q(toy, "SELECT symbol, date, trade_id, cum_volume FROM gold.toy_cum ORDER BY ALL") == day_by_day


def test_table_rebuilds_whole_only_when_inputs_change(toy):
    cfg = toy.config()
    build(cfg, udfs=False)
    assert q(toy, "SELECT symbol, n_trades FROM gold.toy_summary") == [("BTC/USDT", 90), ("ETH/USDT", 90)]
    assert [p for p in build(cfg, udfs=False).plan] == []
    toy.write_bronze("x", "2024-01-03", trade_rows("x", "SOL/USDT", "2024-01-03", n=3), "sol")
    plan = build(cfg, udfs=False).plan
    assert [(p.model, p.pid, p.reason) for p in plan if p.model == "toy_summary"] == [
        ("toy_summary", "", "upstream rebuilt")
    ]
    assert q(toy, "SELECT symbol, n_trades FROM gold.toy_summary") == [
        ("BTC/USDT", 90),
        ("ETH/USDT", 90),
        ("SOL/USDT", 3),
    ]
    files = list((toy.root / "gold" / "toy_summary").glob("*.parquet"))
    assert len(files) == 1  # the replaced file is gone (retain 0)


def test_custom_sql_test_reads_the_partitions_just_built(toy):
    """A custom test failing on old data only does not fail a build that did not rewrite it."""
    cfg = toy.config()
    build(cfg, udfs=False)
    (toy.project / "tests" / "sql" / "no_sol.sql").write_text(
        "SELECT * FROM {{ ref('toy_trades') }} WHERE symbol = 'ETH/USDT' AND date = DATE '2024-01-01'\n"
    )
    toy.write_bronze("x", "2024-01-03", trade_rows("x", "SOL/USDT", "2024-01-03", n=3), "sol")
    result = build(cfg, udfs=False)  # rewrites 01-03 only: the ETH rows of 01-01 are not looked at
    assert [t.passed for t in result.tests if t.name == "no_sol"] == [True]
    from daedalus.build import test as run_tests
    from daedalus.errors import BuildError

    failing = [r for r in run_tests(cfg, udfs=False) if not r.passed]
    assert [r.name for r in failing] == ["no_sol"]  # `daedalus test` reads every partition
    with pytest.raises(BuildError, match=r"no_sol.sql:1: data test no_sol failed on model 'toy_trades'"):
        build(cfg, full_refresh=True, udfs=False)


def test_changed_partitioning_drops_the_old_partitions(toy):
    cfg = toy.config()
    build(cfg, udfs=False)
    before = q(toy, "SELECT count(*) FROM gold.toy_bars")[0][0]
    bars = toy.project / "sql" / "gold" / "toy_bars.sql"
    bars.write_text(
        bars.read_text().replace(
            "partition_by=['exchange', 'symbol', 'date']", "partition_by=['exchange', 'date']"
        )
    )
    dry = toy.cli("build", "--dry-run", env={"DAEDALUS_NO_UDFS": "1"}, check=True).stdout.splitlines()
    assert (
        "toy_bars exchange=x/symbol=BTC%2FUSDT/date=2024-01-01 (drop: partitioning or materialization changed)"
        in dry
    )
    assert "toy_bars exchange=x/date=2024-01-01 (new)" in dry
    result = build(cfg, udfs=False)
    assert len(result.dropped) == 6 and {p for m, p in result.rebuilt if m == "toy_bars"} == {
        f"exchange=x/date={d}" for d in DAYS
    }
    assert q(toy, "SELECT count(*) FROM gold.toy_bars")[0][0] == before  # no duplicates
    assert sorted(p.parent.name for p in (toy.root / "gold" / "toy_bars").rglob("*.parquet")) == [
        f"date={d}" for d in DAYS
    ]
    assert set(toy.manifest()["models"]["toy_bars"]["partitions"]) == {f"exchange=x/date={d}" for d in DAYS}

    # partitioned → view: its files are dropped, the catalog view computes from silver
    bars.write_text(
        bars.read_text()
        .replace("materialized='partitioned', partition_by=['exchange', 'date'], ", "")
        .replace("lookback='1 day', order_by=['bar_ts']", "materialized='view'")
        .replace("WHERE {{ in_window('ts') }}", "")
    )
    result = build(cfg, udfs=False)
    assert len(result.dropped) == 3 and not list((toy.root / "gold" / "toy_bars").rglob("*.parquet"))
    assert q(toy, "SELECT count(*) FROM gold.toy_bars")[0][0] == before


def test_a_new_partition_sorting_first_causes_no_spurious_rebuild(toy):
    """Input file order is part of the fingerprint: it must not depend on when a partition appeared."""
    cfg = toy.config()
    build(cfg, udfs=False)
    toy.write_bronze("x", "2024-01-03", trade_rows("x", "AAA/USDT", "2024-01-03", n=3), "aaa")
    assert {m for m, _ in build(cfg, udfs=False).rebuilt} >= {"toy_trades", "toy_summary"}
    assert build(cfg, udfs=False).rebuilt == []


def test_builds_leave_no_empty_staging_folders(toy, monkeypatch):
    """Issue 24: each build left an empty folder tree under _staging/<build-id>/ (780 after 4 builds)."""
    import time

    from daedalus.build.layout import STAGING_MAX_AGE_S

    monkeypatch.setenv("DAEDALUS_NO_UDFS", "1")
    staging = toy.root / "_staging"
    stale = staging / f"{int(time.time() - STAGING_MAX_AGE_S - 60)}-deadbeef00" / "silver" / "x"
    stale.mkdir(parents=True)  # what a build killed long ago left
    young = staging / f"{int(time.time())}-0123456789" / "silver" / "y"
    young.mkdir(parents=True)  # a shard building right now: not ours to touch
    cfg = toy.config()
    build(cfg, udfs=False)
    build(cfg, full_refresh=True, udfs=False)
    left = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*"))
    assert left == [
        young.parent.parent.name,
        f"{young.parent.parent.name}/silver",
        f"{young.parent.parent.name}/silver/y",
    ]


def test_a_killed_builds_staging_folders_go_with_the_next_build(toy):
    """Found by `bench soak`: a build killed by SIGKILL left its (young) staging tree for a day."""
    env = {"DAEDALUS_NO_UDFS": "1", "DAEDALUS_TEST_KILL": "after_write:2"}
    killed = toy.cli("build", env=env)
    assert killed.returncode == -9
    staging = toy.root / "_staging"
    assert any(p.is_dir() for p in staging.rglob("*"))  # what the killed build left
    toy.cli("build", env={"DAEDALUS_NO_UDFS": "1"}, check=True)
    assert not staging.exists() or not [p for p in staging.rglob("*") if p.is_dir() and not any(p.iterdir())]
