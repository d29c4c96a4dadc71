"""The build and serve commands end to end: ls, compile, docs, query formats, shell, init, help texts."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import duckdb
import pytest
from toy import make_toy, trade_rows

ENV = {"DAEDALUS_NO_UDFS": "1"}
VERBS = ("build", "run", "test", "compile", "ls", "docs", "query", "shell", "init", "catalog")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    toy = make_toy(tmp_path_factory.mktemp("cli"))
    for day in ("2024-01-01", "2024-01-02"):
        toy.write_bronze("x", day, trade_rows("x", "BTC/USDT", day))
    toy.cli("build", env=ENV, check=True)
    return toy


def test_every_verb_has_help_with_an_example(built):
    for verb in VERBS:
        proc = built.cli(verb, "--help", env=ENV, check=True)
        assert "Example: daedalus" in proc.stdout, verb


def test_ls(built):
    rows = json.loads(built.cli("ls", "--json", env=ENV, check=True).stdout)
    assert [(r["relation"], r["materialized"], r["partitions"]) for r in rows] == [
        ("silver.toy_trades_clean", "view", 0),
        ("silver.toy_trades", "partitioned", 2),
        ("gold.toy_bars", "partitioned", 2),
    ]
    assert rows[2]["depends_on"] == ["toy_trades"] and rows[0]["depends_on"] == ["source:trades"]
    table = built.cli("ls", "--select", "tag:bars", env=ENV, check=True).stdout
    assert "gold.toy_bars" in table and "toy_trades_clean" not in table


def test_compile_prints_the_exact_sql_that_runs(built):
    sql = built.cli(
        "compile",
        "toy_bars",
        "--partition",
        "exchange=x,symbol=BTC/USDT,date=2024-01-02",
        env=ENV,
        check=True,
    ).stdout
    assert sql.startswith("-- gold.toy_bars (partitioned) exchange=x/symbol=BTC%2FUSDT/date=2024-01-02\n")
    con = duckdb.connect()
    n = con.execute(f"SELECT count(*) FROM ({sql.split(chr(10), 1)[1]})").fetchone()[0]
    manifest = built.manifest()["models"]["toy_bars"]["partitions"][
        "exchange=x/symbol=BTC%2FUSDT/date=2024-01-02"
    ]
    assert n == manifest["rows"] > 0
    view = built.cli("compile", "toy_trades_clean", env=ENV, check=True).stdout
    assert "date=2024-01-01" in view and "date=2024-01-02" in view  # a view over every bronze file
    bad = built.cli("compile", "toy_bars", "--partition", "exchange=x", env=ENV)
    assert bad.returncode == 2 and "missing keys ['symbol', 'date']" in bad.stderr  # usage, README's table


def test_query_formats(built, tmp_path):
    sql = "SELECT symbol, count(*) AS n FROM gold.toy_bars GROUP BY ALL"
    csv = built.cli("query", sql, "--format", "csv", env=ENV, check=True).stdout
    assert csv.splitlines() == ["symbol,n", "BTC/USDT,40"]
    js = json.loads(built.cli("query", sql, "--format", "json", env=ENV, check=True).stdout)
    assert js == [{"symbol": "BTC/USDT", "n": 40}]
    table = built.cli("query", sql, env=ENV, check=True).stdout
    assert "BTC/USDT" in table and "40" in table
    out = tmp_path / "q.parquet"
    built.cli(
        "query",
        "SELECT * FROM silver.toy_trades",
        "--format",
        "parquet",
        "--output",
        str(out),
        env=ENV,
        check=True,
    )
    assert duckdb.sql(f"SELECT count(*) FROM '{out}'").fetchone() == (60,)
    bad = built.cli("query", "SELECT * FROM gold.nope", env=ENV)
    assert bad.returncode == 2 and "error: query: Catalog Error" in bad.stderr
    assert built.cli("query", sql, "--format", "xml", env=ENV).returncode == 2


def test_query_without_catalog(tmp_path):
    toy = make_toy(tmp_path)
    proc = toy.cli("query", "SELECT 1", env=ENV)
    assert proc.returncode == 5 and "no catalog yet; run `daedalus build` first" in proc.stderr


def test_shell_runs_the_duckdb_cli_read_only(built, tmp_path):
    from daedalus.serve.catalog import duckdb_cli_path, shell_argv, shell_init_sql

    init = tmp_path / "init.sql"
    init.write_text(shell_init_sql(built.config()))
    argv = shell_argv(built.config(), str(init))
    assert argv[0] == duckdb_cli_path() and "-readonly" in argv and argv[-1].endswith("catalog.duckdb")
    proc = subprocess.run(
        [*argv[:-1], "-csv", argv[-1], "-c", "SELECT count(*) AS n FROM gold.toy_bars"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-2:] == ["n", "40"]
    proc = subprocess.run([*argv, "-c", "CREATE TABLE t (a INT)"], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "read-only" in (proc.stdout + proc.stderr).lower()


def test_shell_removes_its_init_file_on_exit(built):
    spill = Path(built.config().duckdb.temp_directory)
    before = set(spill.glob("shell_init*")) if spill.exists() else set()
    proc = subprocess.run(
        [*built.cli_prefix(), "--config", str(built.config_path), "shell"],
        input="SELECT 42 AS answer;\n.quit\n",
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **ENV},
        cwd=built.dir,
    )
    assert proc.returncode == 0, proc.stderr
    assert "42" in proc.stdout
    assert (set(spill.glob("shell_init*")) if spill.exists() else set()) == before  # it held the S3 secret


def test_docs_page(built, tmp_path):
    out = built.cli("docs", "--output", str(tmp_path / "site"), env=ENV, check=True).stdout.strip()
    page = (tmp_path / "site" / "index.html").read_text()
    assert out == str(tmp_path / "site" / "index.html")
    assert page.startswith("<!doctype html>") and "<svg" in page and "<script" not in page
    assert "http" not in page.replace("http://www.w3.org/2000/svg", "")  # self-contained
    for text in (
        "gold.toy_bars",
        "silver.toy_trades",
        "bronze.trades",
        "One-minute bars",
        "Start of the minute.",
        "accepted_values",
        "2 partition(s)",
        "lookback 1 day",
    ):
        assert text in page, text


def test_init_scaffolds_a_project_beside_the_builtin_models(tmp_path):
    toy = make_toy(tmp_path)
    target = tmp_path / "mine"
    proc = toy.cli("init", str(target), env=ENV, check=True)
    assert "daedalus.yaml" in proc.stdout
    assert (target / "sql" / "gold" / "my_model.sql").exists()
    env = {k: v for k, v in __import__("os").environ.items() if k != "DAEDALUS_CONFIG"}
    ls = subprocess.run(  # no --config: the project's daedalus.yaml is found from a subfolder
        [*toy.cli_prefix(), "ls", "--json"],
        capture_output=True,
        text=True,
        env={**env, **ENV},
        timeout=120,
        cwd=target / "sql",
    )
    assert ls.returncode == 0, ls.stderr
    rows = {r["name"]: r for r in json.loads(ls.stdout)}
    assert "my_model" in rows and not rows["my_model"]["builtin"]
    assert "orderbook_hf" in rows and rows["orderbook_hf"]["builtin"]
    assert rows["my_model"]["depends_on"] == ["orderbook_hf"]
    again = toy.cli("init", str(target), env=ENV)
    assert again.returncode == 2 and "folder is not empty" in again.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (["compile", "nosuch"], "unknown model 'nosuch'"),
        (["build", "--start", "2024-13-45"], "'2024-13-45' is not a date"),
        (["ls", "--partition-missing-option"], "No such option"),
    ],
)
def test_usage_mistakes_exit_2_as_the_readme_says(built, args, message):
    """Issue 24: these exited 3 (the compile code); README: 2 usage/config/selection."""
    proc = built.cli(*args, env=ENV)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_missing_project_dir_is_a_config_error(built, tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"project_dir: {tmp_path / 'nosuch'}\nstorage:\n  root: {built.root}\n")
    proc = subprocess.run(
        [*built.cli_prefix(), "--config", str(cfg), "ls"],
        capture_output=True,
        text=True,
        env={**os.environ, **ENV},
    )
    assert proc.returncode == 2 and "nosuch: not a directory" in proc.stderr, proc.stderr


def test_docs_output_mistakes_are_one_line(built, tmp_path):
    """Issue 24: `docs -o /proc/x` and `docs -o <existing file>` ended in tracebacks."""
    existing = tmp_path / "notes.txt"
    existing.write_text("mine")
    bad = built.cli("docs", "-o", str(existing), env=ENV)
    assert bad.returncode == 2 and "is a file; give a folder" in bad.stderr and "Traceback" not in bad.stderr
    assert existing.read_text() == "mine"
    proc = built.cli("docs", "-o", "/proc/x", env=ENV)
    assert proc.returncode == 2 and "cannot write the docs page there" in proc.stderr
    assert "Traceback" not in proc.stderr
