"""`daedalus build` reports like `dbt build`: a line per model, PASS/WARN/ERROR/SKIP, models downstream
of a failure skipped; a partition whose tests failed stays failed (rebuilt and re-tested, left out
of the catalog) until its tests pass; `daedalus retry` (issue #16). Real CLI, real DuckDB lake."""

from __future__ import annotations

import json

import duckdb
import pytest
from toy import make_toy, trade_rows

ENV = {"DAEDALUS_NO_UDFS": "1"}
BAD_DAY, GOOD_DAY = "2024-01-01", "2024-01-02"


def _catalog_count(toy, view: str) -> list[tuple]:
    con = duckdb.connect(
        str(toy.root / "catalog.duckdb"), read_only=True, config={"file_search_path": str(toy.root)}
    )
    try:
        return con.execute(
            f"SELECT CAST(date AS VARCHAR), count(*) FROM {view} GROUP BY ALL ORDER BY 1"
        ).fetchall()
    finally:
        con.close()


@pytest.fixture
def failing(tmp_path):
    toy = make_toy(tmp_path)
    bad = trade_rows("x", "BTC/USDT", BAD_DAY)
    bad[3]["side"] = "sideways"  # fails accepted_values(side) of silver.toy_trades on BAD_DAY only
    toy.write_bronze("x", BAD_DAY, bad)
    toy.write_bronze("x", GOOD_DAY, trade_rows("x", "BTC/USDT", GOOD_DAY))
    return toy


def test_failure_is_sticky_skips_downstream_and_is_left_out_of_the_catalog(failing):
    toy = failing
    first = toy.cli("build", env=ENV)
    assert first.returncode == 4
    lines = first.stdout.splitlines()
    assert lines[0].startswith("1 of 2 ERROR silver.toy_trades ")
    assert "accepted_values(side) failed on model 'toy_trades': 1 offending row(s)" in lines[0]
    assert lines[1] == "2 of 2 SKIP  gold.toy_bars upstream silver.toy_trades failed"
    assert lines[-1] == "Done. PASS=0 WARN=0 ERROR=1 SKIP=1 TOTAL=2"
    failed = json.loads((toy.root / "_state" / "failed_tests.json").read_text())
    assert failed == {
        "toy_trades": {f"exchange=x/symbol=BTC%2FUSDT/date={BAD_DAY}": ["accepted_values(side)"]}
    }
    # the failed partition is out of the catalog; the good day is in it
    assert _catalog_count(toy, "silver.toy_trades") == [(GOOD_DAY, 30)]
    assert (
        "toy_bars" not in json.loads((toy.root / "_state" / "manifest.json").read_text())["models"]
        or not json.loads((toy.root / "_state" / "manifest.json").read_text())["models"]["toy_bars"][
            "partitions"
        ]
    )

    # nothing changed, yet the next build is not "up to date": the failed partition is planned again
    dry = toy.cli("build", "--dry-run", env=ENV, check=False)
    assert f"toy_trades exchange=x/symbol=BTC%2FUSDT/date={BAD_DAY} (tests failed)" in dry.stdout.splitlines()
    again = toy.cli("build", env=ENV)
    assert again.returncode == 4 and "Done. PASS=0 WARN=0 ERROR=1 SKIP=1 TOTAL=2" in again.stdout

    # fix the data: the partition's tests pass, it is no longer failed, downstream builds
    rows = trade_rows("x", "BTC/USDT", BAD_DAY)
    (toy.root / "bronze" / "trades").mkdir(exist_ok=True)
    for f in (toy.root / "bronze" / "trades").rglob(f"date={BAD_DAY}/*.parquet"):
        f.unlink()
    toy.write_bronze("x", BAD_DAY, rows, name="fixed")
    retry = toy.cli("retry", env=ENV)
    assert retry.returncode == 0, retry.stdout + retry.stderr
    assert "retrying 2 model(s): toy_trades toy_bars" in retry.stderr
    assert retry.stdout.splitlines()[-1] == "Done. PASS=2 WARN=0 ERROR=0 SKIP=0 TOTAL=2"
    assert json.loads((toy.root / "_state" / "failed_tests.json").read_text()) == {}
    assert _catalog_count(toy, "silver.toy_trades") == [(BAD_DAY, 30), (GOOD_DAY, 30)]
    assert (
        toy.cli("retry", env=ENV, check=True).stderr.splitlines()[-1]
        == "nothing to retry: every model of the last build passed"
    )


def test_run_does_not_clear_a_failed_partition(failing):
    toy = failing
    assert toy.cli("build", env=ENV).returncode == 4
    run = toy.cli("run", env=ENV)  # no tests: builds, but proves nothing about the failed partition
    assert run.returncode == 0, run.stderr
    assert json.loads((toy.root / "_state" / "failed_tests.json").read_text())["toy_trades"]


def test_independent_models_still_build_unless_fail_fast(failing):
    """A model that fails to run skips only its descendants; --fail-fast stops at once."""
    toy = failing
    # first in build order (no parents, first by name: daedalus/build/dag.py), so --fail-fast has
    # models left to skip
    other = toy.project / "sql" / "gold" / "toy_aa.sql"
    other.write_text("{{ config(materialized='table') }}\nSELECT no_such_column FROM (SELECT 1 AS one)\n")
    proc = toy.cli("run", env=ENV)
    assert proc.returncode == 4
    out = proc.stdout.splitlines()
    statuses = {line.split()[4]: line.split()[3] for line in out[:-1]}
    assert statuses == {"silver.toy_trades": "PASS", "gold.toy_bars": "PASS", "gold.toy_aa": "ERROR"}
    assert out[-1] == "Done. PASS=2 WARN=0 ERROR=1 SKIP=0 TOTAL=3"
    assert "no_such_column" in proc.stderr and proc.stderr.count("error:") == 1

    ff = toy.cli("run", "--fail-fast", "--full-refresh", env=ENV)
    assert ff.returncode == 4
    assert ff.stdout.splitlines() == [ff.stdout.splitlines()[0], "Done. PASS=0 WARN=0 ERROR=1 SKIP=0 TOTAL=1"]
    assert "ERROR gold.toy_aa" in ff.stdout


def test_daedalus_test_remembers_failures_for_the_next_build_and_the_catalog(tmp_path):
    """Issue 24: `test` failed (exit 4) but forgot it: the next build was "up to date" and the
    catalog kept serving the failing rows."""
    toy = make_toy(tmp_path)
    for day in (BAD_DAY, GOOD_DAY):
        toy.write_bronze("x", day, trade_rows("x", "BTC/USDT", day))
    assert toy.cli("build", env=ENV).returncode == 0
    pid = f"exchange=x/symbol=BTC%2FUSDT/date={BAD_DAY}"
    (path,) = (toy.root / "silver" / "toy_trades" / pid).glob("*.parquet")
    con = duckdb.connect()
    con.execute(  # damage the published rows behind the build's back
        f"COPY (SELECT * REPLACE (CASE WHEN trade_id LIKE '%-3' THEN 'sideways' ELSE side END AS side) "
        f"FROM read_parquet('{path}')) TO '{path}.new' (FORMAT parquet)"
    )
    path.with_name(path.name + ".new").replace(path)

    out = toy.cli("test", env=ENV)
    assert out.returncode == 4, out.stdout + out.stderr
    failed = json.loads((toy.root / "_state" / "failed_tests.json").read_text())
    assert failed == {"toy_trades": {pid: ["accepted_values(side)"]}}
    assert _catalog_count(toy, "silver.toy_trades") == [(GOOD_DAY, 30)]  # no longer served

    again = toy.cli("build", env=ENV)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "up to date" not in again.stderr
    assert json.loads((toy.root / "_state" / "failed_tests.json").read_text()) == {}
    assert _catalog_count(toy, "silver.toy_trades") == [(BAD_DAY, 30), (GOOD_DAY, 30)]
    assert toy.cli("test", env=ENV).returncode == 0


def test_progress_reaches_a_log_file_as_it_happens_even_if_killed(tmp_path):
    """Issue 24: `build > f` showed nothing until the build ended; a killed build left no trace."""
    import os
    import subprocess

    toy = make_toy(tmp_path)
    for day in (BAD_DAY, GOOD_DAY):
        toy.write_bronze("x", day, trade_rows("x", "BTC/USDT", day))
    log = tmp_path / "build.log"
    with log.open("w") as f:  # not a terminal: a file, as `daedalus build > build.log 2>&1`
        proc = subprocess.run(
            [*toy.cli_prefix(), "--config", str(toy.config_path), "build"],
            stdout=f,
            stderr=subprocess.STDOUT,
            env={**os.environ, **ENV, "DAEDALUS_TEST_KILL": "after_write:3"},  # SIGKILL in model 2
            cwd=toy.dir,
            timeout=300,
        )
    assert proc.returncode == -9
    text = log.read_text()
    assert "building 4 partition(s) of 2 model(s)" in text
    assert "built toy_trades: 2 partition(s)" in text and "built toy_bars" not in text
