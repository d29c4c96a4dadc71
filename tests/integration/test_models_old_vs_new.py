"""A rewrite for speed changes no value: a small full symbol-day built with the models as they were
before issue 23's rewrite (tests/fixtures/pre_issue23: the old text of every model or macro file the
rewrite touched) and with today's, compared column by column, every model.

The bronze has what the rewritten paths decide on: re-delivered segments (the same rows twice on one
connection at one receive instant), the same snapshots again on another connection received earlier
(so the first received copy is another row than the first written), gaps and disconnects, book
updates with hourly checkpoints next to the snapshots.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import duckdb
import pytest

from daedalus.build import build
from daedalus.build.project import builtin_roots
from daedalus.config import load_config
from daedalus.devkit.synth import generate

pytestmark = pytest.mark.slow  # two full builds of a synthetic day

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "pre_issue23"
COMPARE = Path(__file__).resolve().parents[2] / "benchmarks" / "compare_lakes.py"


def old_project(dest: Path) -> Path:
    """The built-in models and macros with the pre-rewrite files laid over them (no built-ins)."""
    sql, macros = builtin_roots()
    shutil.copytree(sql, dest / "sql", ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    shutil.copytree(macros, dest / "macros", ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    for f in FIXTURE.rglob("*.sql"):
        target = dest / f.relative_to(FIXTURE)
        assert target.exists(), f"{f}: the fixture must replace an existing file"
        shutil.copyfile(f, target)
    (dest / "project.yml").write_text("name: pre_issue23\ninclude_builtin: false\n")
    return dest


def add_repeats(lake: Path) -> int:
    """Each snapshot-only orderbook file landed twice; the first file's rows also on a second connection, received 1 ms
    earlier (for even seq) or later (odd seq) than the original."""
    files = sorted((lake / "bronze" / "orderbook" / "exchange=binance").rglob("*.parquet"))
    assert files
    con = duckdb.connect()
    for f in files:
        shutil.copyfile(f, f.with_name(f.stem + "-again.parquet"))
    first = files[0]
    con.execute(
        f"""COPY (SELECT * REPLACE (conn_id || '-second' AS conn_id,
                    capture_ts + CASE WHEN seq % 2 = 0 THEN -INTERVAL '1 millisecond'
                                      ELSE INTERVAL '1 millisecond' END AS capture_ts)
                  FROM read_parquet('{first}'))
            TO '{first.with_name(first.stem + "-conn99.parquet")}' (FORMAT parquet)"""
    )
    return len(files)


def test_old_and_new_models_build_the_same_day(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    day = {
        "start": "2024-03-02",
        "hours": 3,
        "snapshot_ms": 2_000,
        "levels": 5,
        "trades_per_sec": 0.5,
        "gaps_per_day": 2,
        "ticker_ms": 10_000,
    }
    generate(lake, symbols=["BTC/USDT"], **day)  # snapshots only
    generate(lake, symbols=["ETH/USDT"], exchange="bybit", book_updates=True, book_depth=40, **day)
    assert add_repeats(lake) > 0
    old_lake, new_lake = tmp_path / "old", tmp_path / "new"
    shutil.copytree(lake, old_lake)
    shutil.copytree(lake, new_lake)
    project = old_project(tmp_path / "old_project")
    base = {"etl.slice_hours": 1}
    old_cfg = load_config(
        overrides={
            **base,
            "storage.root": str(old_lake),
            "duckdb.temp_directory": str(tmp_path / "t1"),
            "project_dir": str(project),
        }
    )
    new_cfg = load_config(
        overrides={**base, "storage.root": str(new_lake), "duckdb.temp_directory": str(tmp_path / "t2")}
    )
    old_run, new_run = build(old_cfg, catalog=False), build(new_cfg, catalog=False)
    assert all(t.passed for t in old_run.tests) and all(t.passed for t in new_run.tests)

    spec = importlib.util.spec_from_file_location("compare_lakes", COMPARE)
    compare_lakes = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare_lakes)
    old_models, new_models = compare_lakes.model_dirs(old_lake), compare_lakes.model_dirs(new_lake)
    assert set(old_models) == set(new_models)
    for must in ("orderbook", "orderbook_unserved", "orderbook_seq", "orderbook_hf", "rejects"):
        assert must in new_models, must
    con = duckdb.connect()
    problems = []
    for m in sorted(new_models):
        problems += compare_lakes.compare(con, old_models[m], new_models[m], m)
    assert problems == []
    # the paths the rewrite decides on were taken: repeats were dropped, the earlier copy won
    served = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE conn_id LIKE '%-second'), count(DISTINCT (ts, seq)) "
        f"FROM read_parquet('{new_models['orderbook']}/**/*.parquet') WHERE exchange = 'binance'"
    ).fetchone()
    assert served[0] == served[2] > 0 and served[1] > 0
