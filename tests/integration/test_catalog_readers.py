"""Acceptance: processes holding `catalog.duckdb` READ_ONLY — plain duckdb, and SQLAlchemy through
duckdb-engine (the driver BI tools like Superset use) — query gold while builds run and after them:
no lock error ever, and every connection, new or held across the builds, sees the new data (views
glob the model folders, relative to the lake root: `file_search_path` = the catalog's folder)."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import time

import duckdb
import pytest
from toy import make_toy, trade_rows

ENV = {"DAEDALUS_NO_UDFS": "1"}

READER = r"""
import json, os, sys, time, pathlib
mode, catalog, stop, out = sys.argv[1:5]
cfg = {"file_search_path": os.path.dirname(catalog)}
seen, errors = [], []
held = None
if mode == "sqlalchemy":
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool
    engine = create_engine(f"duckdb:///{catalog}", connect_args={"read_only": True, "config": cfg},
                           poolclass=NullPool)
import duckdb
while True:
    done = pathlib.Path(stop).exists()
    try:
        if mode == "duckdb":
            con = duckdb.connect(catalog, read_only=True, config=cfg)
            n = con.execute("SELECT count(*) FROM gold.toy_bars").fetchone()[0]
            con.close()
        elif mode == "held":  # one connection for the whole run
            if held is None:
                held = duckdb.connect(catalog, read_only=True, config=cfg)
            n = held.execute("SELECT count(*) FROM gold.toy_bars").fetchone()[0]
        else:
            with engine.connect() as con:
                n = con.execute(text("SELECT count(*) FROM gold.toy_bars")).scalar()
        if not seen or seen[-1] != n:
            seen.append(n)
        pathlib.Path(out + ".ready").touch()
    except Exception as e:  # any error is a failure of the contract
        errors.append(f"{type(e).__name__}: {e}")
    if done:
        break
    time.sleep(0.01)
pathlib.Path(out).write_text(json.dumps({"seen": seen, "errors": errors[:5], "n_errors": len(errors)}))
"""


@pytest.mark.slow
def test_readers_never_see_a_lock_and_see_new_data(tmp_path):
    toy = make_toy(tmp_path, retain_minutes=0)  # nothing a reader names is ever deleted
    toy.write_bronze("x", "2024-01-01", trade_rows("x", "BTC/USDT", "2024-01-01"))
    toy.cli("build", env=ENV, check=True)
    catalog = toy.root / "catalog.duckdb"
    script = tmp_path / "reader.py"
    script.write_text(READER)
    stop = tmp_path / "stop"
    readers = {}
    for mode in ("duckdb", "sqlalchemy", "held"):
        out = tmp_path / f"{mode}.json"
        readers[mode] = (
            subprocess.Popen([sys.executable, str(script), mode, str(catalog), str(stop), str(out)]),
            out,
        )
    deadline = time.monotonic() + 120
    while not all(pathlib.Path(f"{out}.ready").exists() for _, out in readers.values()):
        assert time.monotonic() < deadline, "readers did not start"
        assert all(p.poll() is None for p, _ in readers.values()), "a reader died"
        time.sleep(0.05)
    counts = []
    for i, day in enumerate(("2024-01-02", "2024-01-03", "2024-01-04")):
        toy.write_bronze("x", day, trade_rows("x", "BTC/USDT", day, n=30 + 10 * i))
        toy.cli("build", env=ENV, check=True)
        con = duckdb.connect()  # count straight from the manifest's files
        files = [
            str(toy.root / f[0])
            for p in toy.manifest()["models"]["toy_bars"]["partitions"].values()
            for f in p["files"]
        ]
        counts.append(con.execute(f"SELECT count(*) FROM read_parquet({files!r})").fetchone()[0])
        con.close()
        time.sleep(0.5)
    stop.write_text("stop")
    results = {}
    for mode, (proc, out) in readers.items():
        assert proc.wait(timeout=60) == 0
        results[mode] = json.loads(out.read_text())
    for mode, r in results.items():
        assert r["n_errors"] == 0, (mode, r["errors"])
    for mode in ("duckdb", "sqlalchemy", "held"):
        assert results[mode]["seen"][-1] == counts[-1], (mode, results[mode], counts)
        assert len(results[mode]["seen"]) >= 2, results[mode]  # it saw the data change under it

    # After the builds, a SQLAlchemy connection sees the final data and column comments.
    from sqlalchemy import create_engine, text

    engine = create_engine(
        f"duckdb:///{catalog}",
        connect_args={"read_only": True, "config": {"file_search_path": str(toy.root)}},
    )
    with engine.connect() as con:
        assert con.execute(text("SELECT count(*) FROM gold.toy_bars")).scalar() == counts[-1]
        comment = con.execute(
            text(
                "SELECT comment FROM duckdb_columns() WHERE schema_name='gold' AND table_name='toy_bars' "
                "AND column_name='bar_ts'"
            )
        ).scalar()
        assert comment == "Start of the minute."
        views = {
            tuple(r)
            for r in con.execute(
                text("SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal")
            ).fetchall()
        }
    engine.dispose()
    assert {
        ("bronze", "trades"),
        ("silver", "toy_trades_clean"),
        ("silver", "toy_trades"),
        ("gold", "toy_bars"),
    } <= views


def test_catalog_holds_no_data_and_globs_relative_paths(tmp_path):
    toy = make_toy(tmp_path)
    toy.write_bronze("x", "2024-01-01", trade_rows("x", "BTC/USDT", "2024-01-01"))
    toy.cli("build", env=ENV, check=True)
    con = duckdb.connect(
        str(toy.root / "catalog.duckdb"), read_only=True, config={"file_search_path": str(toy.root)}
    )
    tables = con.execute("SELECT count(*) FROM duckdb_tables() WHERE NOT internal").fetchone()[0]
    sql = con.execute(
        "SELECT sql FROM duckdb_views() WHERE schema_name='silver' AND view_name='toy_trades'"
    ).fetchone()[0]
    assert con.execute("SELECT count(*) FROM silver.toy_trades").fetchone()[0] == 30
    assert con.execute("SELECT DISTINCT symbol FROM silver.toy_trades").fetchall() == [("BTC/USDT",)]
    con.close()
    assert tables == 0
    # relative to file_search_path when set, else to the catalog file's folder (catalog_paths.pattern_sql)
    assert "THEN ('silver/toy_trades/*/*/*/*.parquet')" in sql and str(toy.root) not in sql
    assert "hive_partitioning = CAST('f' AS BOOLEAN)" in sql
    assert [p.name for p in (toy.root / "silver" / "toy_trades").rglob("*.parquet")] == ["data.parquet"]
    assert not list(toy.root.glob(".catalog-*"))
