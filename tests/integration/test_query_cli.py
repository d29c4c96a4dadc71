"""`daedalus query` runs any read-only statement like the DuckDB CLI, keeps DuckDB's whole error,
and appends when told (issue #16). The real CLI on a real catalog built from the toy project."""

from __future__ import annotations

import json

import duckdb
import pytest
from toy import make_toy, trade_rows

ENV = {"DAEDALUS_NO_UDFS": "1"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    toy = make_toy(tmp_path_factory.mktemp("query"))
    toy.write_bronze("x", "2024-01-01", trade_rows("x", "BTC/USDT", "2024-01-01"))
    toy.cli("build", env=ENV, check=True)
    return toy


@pytest.mark.parametrize(
    "sql,first_line",
    [
        ("DESCRIBE silver.toy_trades", "column_name,column_type,null,key,default,extra"),
        (
            "SUMMARIZE silver.toy_trades",
            "column_name,column_type,min,max,approx_unique,avg,std,q25,q50,q75,count,null_percentage",
        ),
        ("SHOW ALL TABLES", "database,schema,name,column_names,column_types,temporary"),
        ("PRAGMA version", "library_version,source_id,codename"),
        ("EXPLAIN SELECT count(*) FROM silver.toy_trades", "explain_key,explain_value"),
    ],
)
def test_any_read_only_statement(built, sql, first_line):
    proc = built.cli("query", sql, "--format", "csv", env=ENV, check=True)
    assert proc.stdout.splitlines()[0] == first_line


def test_describe_lists_the_columns(built):
    rows = json.loads(
        built.cli("query", "DESCRIBE silver.toy_trades", "-f", "json", env=ENV, check=True).stdout
    )
    expected = [
        r[0]
        for r in duckdb.connect(
            str(built.root / "catalog.duckdb"), read_only=True, config={"file_search_path": str(built.root)}
        )
        .execute("DESCRIBE silver.toy_trades")
        .fetchall()
    ]
    assert [r["column_name"] for r in rows] == expected and "price" in expected


def test_several_statements_print_each_result(built):
    proc = built.cli(
        "query",
        "SET threads = 1; SELECT 1 AS a; SELECT count(*) AS n FROM silver.toy_trades",
        "-f",
        "csv",
        env=ENV,
        check=True,
    )
    assert proc.stdout.splitlines() == ["a", "1", "n", "30"]


def test_error_keeps_duckdbs_hint(built):
    proc = built.cli("query", "SELECT * FROM silver.toy_trade", env=ENV)
    assert proc.returncode == 2  # a usage error (README's exit codes), not a build's 4
    assert "Catalog Error: Table with name toy_trade does not exist!" in proc.stderr
    assert 'Did you mean "silver.toy_trades"?' in proc.stderr or 'Did you mean "toy_trades"' in proc.stderr


def test_writing_is_refused_read_only(built):
    proc = built.cli("query", "CREATE TABLE gold.x AS SELECT 1", env=ENV)
    assert proc.returncode == 2 and "is refused: `daedalus query` only reads" in proc.stderr


@pytest.mark.parametrize(
    "sql",
    [
        "COPY (SELECT 1 AS a) TO '{target}'",
        "SELECT 1; COPY (SELECT 1 AS a) TO '{target}'",
        "EXPLAIN ANALYZE COPY (SELECT 1 AS a) TO '{target}'",
        "ATTACH '{target}' AS other",
        "INSTALL httpfs",
        "LOAD httpfs",
        "EXPORT DATABASE '{folder}/export'",
        "SET profiling_output = '{target}'",
    ],
)
def test_query_never_writes(built, sql):
    """Issue 24: `COPY ... TO` wrote into the model folders (a glob reader then failed)."""
    folder = built.root / "silver" / "toy_trades"
    target = folder / "exchange=x" / "evil.csv"
    before = sorted(p for p in built.root.rglob("*") if "_state" not in p.parts)
    proc = built.cli("query", sql.format(target=target, folder=folder), env=ENV)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "is refused: `daedalus query` only reads" in err[0]
    assert proc.stdout == ""  # refused before anything ran, the SELECT before it included
    assert sorted(p for p in built.root.rglob("*") if "_state" not in p.parts) == before


@pytest.mark.parametrize(
    "args,message",
    [
        (["", "-f", "csv"], "query: no SQL given"),
        (["SELECT 1", "--limit", "-1"], "--limit: -1 is negative"),
        (["SELECT 1", "-f", "csv", "-o", "/missing/dir/x.csv"], "the folder /missing/dir does not exist"),
    ],
)
def test_bad_query_arguments_are_one_line_exit_2(built, args, message):
    proc = built.cli("query", *args, env=ENV)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_json_writes_nan_and_inf_as_null(built):
    proc = built.cli(
        "query", "SELECT 'nan'::DOUBLE AS a, 'inf'::DOUBLE AS b, 1.5 AS c", "-f", "json", env=ENV
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [{"a": None, "b": None, "c": 1.5}]


def test_append_to_csv_and_json(built, tmp_path):
    out = tmp_path / "n.csv"
    sql = "SELECT count(*) AS n FROM silver.toy_trades"
    for _ in range(3):
        built.cli("query", sql, "-f", "csv", "-o", str(out), "--append", env=ENV, check=True)
    assert out.read_text().splitlines() == ["n", "30", "30", "30"]
    built.cli("query", sql, "-f", "csv", "-o", str(out), env=ENV, check=True)  # no --append: replaced
    assert out.read_text().splitlines() == ["n", "30"]
    js = tmp_path / "n.json"
    for _ in range(2):
        built.cli("query", sql, "-f", "json", "-o", str(js), "-a", env=ENV, check=True)
    assert [json.loads(line) for line in js.read_text().splitlines()] == [{"n": 30}, {"n": 30}]


def test_shell_redirection_appends(built, tmp_path):
    """`-f csv >> file` appended nothing before: DuckDB reopened /dev/stdout and truncated the file."""
    import subprocess

    out = tmp_path / "shell.csv"
    out.write_text("before\n")
    cmd = (
        " ".join(
            [*built.cli_prefix(), "--config", str(built.config_path), "query", "'SELECT 7 AS x'", "-f", "csv"]
        )
        .replace("-c from", "-c 'from")
        .replace("main()", "main()'")
    )
    subprocess.run(f"{cmd} >> {out}", shell=True, check=True, env={**__import__("os").environ, **ENV})
    assert out.read_text().splitlines() == ["before", "x", "7"]


def test_parquet_cannot_append(built, tmp_path):
    proc = built.cli(
        "query", "SELECT 1", "-f", "parquet", "-o", str(tmp_path / "x.parquet"), "--append", env=ENV
    )
    assert proc.returncode == 2 and "cannot be appended" in proc.stderr


def test_project_file_in_a_parent_folder_is_used(built, tmp_path):
    """The tour's commands, run below a daedalus.yaml, read its lake and say so on stderr."""
    import os
    import subprocess

    text = built.config_path.read_text().replace(
        f"root: {built.root}", f"root: {os.path.relpath(built.root, tmp_path)}"
    )
    (tmp_path / "daedalus.yaml").write_text(text)
    (tmp_path / "deep" / "er").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k not in ("DAEDALUS_CONFIG", "DAEDALUS__STORAGE__ROOT")}
    proc = subprocess.run(
        [*built.cli_prefix(), "query", "SELECT count(*) AS n FROM silver.toy_trades", "-f", "csv"],
        capture_output=True,
        text=True,
        cwd=tmp_path / "deep" / "er",
        env={**env, **ENV},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["n", "30"]
    assert f"lake: {built.root} (storage.root in {tmp_path / 'daedalus.yaml'})" in proc.stderr.splitlines()
    assert "WARNING" not in proc.stderr
