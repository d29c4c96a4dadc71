"""The whole pipeline with `storage.root: s3://...` against moto_server on 127.0.0.1, through DuckDB's
httpfs (from the wheel) and boto3: land → build → test → query → catalog, and the same rows as the
same data built on a local lake."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from s3_helpers import make_lakehouse

from daedalus.build import api
from daedalus.fsio import make_s3_client
from daedalus.lake import open_lake
from daedalus.lake.s3 import S3Lake
from daedalus.land.lander import land_any

pytestmark = pytest.mark.s3
DAYS = ["2024-08-07", "2024-08-08"]


@pytest.fixture
def client(moto_server):
    return make_s3_client(moto_server.endpoint, use_ssl=False, url_style="path")


def _keys(client, bucket: str, prefix: str) -> list[str]:
    out = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out.extend(o["Key"] for o in page.get("Contents", []))
    return sorted(out)


def _fill(h) -> None:
    for i, day in enumerate(DAYS):
        h.add_trades(day, f"{i:04d}", n=40, start_id=i * 100)
        h.add_trades(day, f"{i:04d}b", n=20, start_id=i * 100 + 50, symbol="ETH/USDT")


@pytest.mark.slow
def test_cli_pipeline_on_s3_equals_local(tmp_path: Path, moto_server, client) -> None:
    h = make_lakehouse(tmp_path / "s3", moto_server, client=client)
    local = make_lakehouse(tmp_path / "local")
    _fill(h)
    _fill(local)

    out = h.cli("land")
    assert out.returncode == 0, out.stderr
    assert "landed 4 segments (120 rows" in out.stdout
    bronze = _keys(client, h.bucket, "lake/bronze/")
    assert bronze == sorted(
        f"lake/bronze/trades/exchange=binance/date={d}/ccxt_segment_{i:04d}{s}.parquet"
        for i, d in enumerate(DAYS)
        for s in ("", "b")
    )
    assert not list((h.spool / "bronze").rglob("*.parquet"))  # pushed, verified, removed locally
    assert not list((h.spool / "raw" / "ready").rglob("*.parquet"))

    out = h.cli("build")
    assert out.returncode == 0, out.stderr
    assert local.cli("land").returncode == 0
    assert local.cli("build").returncode == 0
    gold = _keys(client, h.bucket, "lake/gold/toy_bars/")
    assert len(gold) == 4  # 2 symbols x 2 days, one file each
    assert all("/symbol=BTC%2FUSDT/" in k or "/symbol=ETH%2FUSDT/" in k for k in gold)
    manifest = json.loads(client.get_object(Bucket=h.bucket, Key="lake/_state/manifest.json")["Body"].read())
    assert sorted(manifest["models"]) == ["toy_bars", "toy_trades"]

    out = h.cli("test")
    assert out.returncode == 0, out.stderr
    assert "0 failed" in out.stderr

    q = "SELECT symbol, count(*), round(sum(volume), 6) FROM gold.toy_bars GROUP BY 1 ORDER BY 1"
    s3_rows = h.cli("query", q, "--format", "csv")
    local_rows = local.cli("query", q, "--format", "csv")
    assert s3_rows.returncode == 0, s3_rows.stderr
    assert s3_rows.stdout == local_rows.stdout
    assert s3_rows.stdout.count("\n") == 3  # header + two symbols
    trades = h.cli("query", "SELECT count(*) AS n FROM silver.toy_trades", "--format", "csv")
    assert trades.stdout.split() == ["n", "120"]

    # ls, docs and the DuckDB shell on the S3 lake
    ls = h.cli("ls", "--json")
    assert {r["name"]: r["partitions"] for r in json.loads(ls.stdout)} == {
        "toy_trades_clean": 0,
        "toy_trades": 4,
        "toy_bars": 4,
    }
    docs = h.cli("docs", "--output", str(tmp_path / "site"))
    assert docs.returncode == 0 and (tmp_path / "site" / "index.html").exists()
    shell = h.cli("shell", input="SELECT count(*) AS n FROM gold.toy_bars WHERE symbol = 'ETH/USDT';\n")
    assert shell.returncode == 0, shell.stderr
    eth_bars = h.cli(
        "query", "SELECT count(*) AS n FROM gold.toy_bars WHERE symbol = 'ETH/USDT'", "--format", "csv"
    )
    assert eth_bars.stdout.split()[1] in shell.stdout.split()

    # the catalog's views read s3:// URLs
    from daedalus.serve.catalog import open_catalog

    con = open_catalog(h.config())
    sql = con.execute("SELECT sql FROM duckdb_views() WHERE view_name = 'toy_bars'").fetchone()[0]
    con.close()
    assert f"s3://{h.bucket}/lake/gold/toy_bars/" in sql


def test_incremental_on_s3_rebuilds_only_touched_partitions(tmp_path: Path, moto_server, client) -> None:
    h = make_lakehouse(tmp_path, moto_server, client=client)
    _fill(h)
    cfg = h.config()
    land_any(cfg)
    first = api.build(cfg, udfs=False)
    assert len(first.rebuilt) == 8
    again = api.build(cfg, udfs=False)
    assert again.rebuilt == []
    h.add_trades("2024-08-08", "0009", n=10, start_id=900)  # BTC only, second day
    report = land_any(cfg)
    assert report.partitions == {("trades", "binance", "2024-08-08")}
    third = api.build(cfg, udfs=False)
    # bronze partitions are exchange/date: both symbols of that day read the touched partition
    assert sorted(third.rebuilt) == [
        (m, f"exchange=binance/symbol={s}/date=2024-08-08")
        for m in ("toy_bars", "toy_trades")
        for s in ("BTC%2FUSDT", "ETH%2FUSDT")
    ]
    lake = open_lake(cfg)
    assert isinstance(lake, S3Lake)
    con = duckdb.connect()
    n = (
        api.connect(cfg, udfs=False)
        .execute(f"SELECT count(*) FROM read_parquet('{lake.url('silver/toy_trades')}/**/*.parquet')")
        .fetchone()[0]
    )
    con.close()
    assert n == 130  # old files already deleted (retain 0 minutes): no duplicate rows in a glob


def test_verify_write_catches_a_lost_object(tmp_path: Path, moto_server, client) -> None:
    """COPY reported rows but the object is not what it says: a StorageError naming the URL."""
    from daedalus.errors import StorageError

    h = make_lakehouse(tmp_path, moto_server, client=client)
    lake = S3Lake(h.root, h.config())
    with pytest.raises(StorageError, match=r"COPY reported 5 rows written but the object does not exist"):
        lake.verify_write("gold/x/part-1.parquet", 5)
    con = api.connect(h.config(), udfs=False)
    con.execute(
        f"COPY (SELECT range AS x FROM range(7)) TO '{lake.url('gold/x/part-2.parquet')}' (FORMAT parquet)"
    )
    assert lake.verify_write("gold/x/part-2.parquet", 7).size > 0
    with pytest.raises(StorageError, match=r"COPY reported 8 rows but the object holds 7"):
        lake.verify_write("gold/x/part-2.parquet", 8)


@pytest.mark.slow
def test_builtin_models_over_synthetic_bronze_on_s3_equal_local(tmp_path: Path, moto_server, client) -> None:
    """The real silver/gold models (UDFs included) with the lake on S3: bronze pushed with `sync`
    (verified), build + data tests + catalog through httpfs, the same rows as the local lake."""
    from daedalus.config import load_config
    from daedalus.devkit.synth import generate
    from daedalus.lake.sync import sync
    from daedalus.serve.catalog import open_catalog

    local = tmp_path / "local"
    generate(
        local,
        symbols=["BTC/USDT", "ETH/USDT"],
        start="2024-03-01",
        days=2,
        snapshot_ms=30000,
        levels=5,
        trades_per_sec=0.05,
        gaps_per_day=1,
        hours=1,
        seed=9,
    )
    bucket = "synth-e2e"
    client.create_bucket(Bucket=bucket)
    common = {
        "duckdb.threads": 2,
        # sliced book models: on S3 their slices stream into one COPY through httpfs, locally into
        # pyarrow's writer (partitioned.py write_stream)
        "etl.slice_hours": 6,
        "s3.endpoint": moto_server.endpoint,
        "s3.url_style": "path",
        "s3.use_ssl": False,
    }
    local_cfg = load_config(
        None, {**common, "storage.root": str(local), "duckdb.temp_directory": str(tmp_path / "t1")}
    )
    s3_cfg = load_config(
        None,
        {
            **common,
            "storage.root": f"s3://{bucket}/lake",
            "ingestion.local_root": str(local),
            "duckdb.temp_directory": str(tmp_path / "t2"),
        },
    )
    pushed = sync(s3_cfg, "push", layers=["bronze"])
    assert len(pushed.copied) == len(list(local.glob("bronze/**/*.parquet"))) > 0

    s3_result = api.build(s3_cfg)
    local_result = api.build(local_cfg)
    assert sorted(s3_result.rebuilt) == sorted(local_result.rebuilt)
    assert s3_result.tests and [t.name for t in s3_result.tests if not t.passed] == []
    assert {n: s.rows for n, s in s3_result.stats.items()} == {
        n: s.rows for n, s in local_result.stats.items()
    }
    tested = api.test(s3_cfg)
    assert tested and all(t.passed for t in tested)

    con_s3, con_local = open_catalog(s3_cfg), open_catalog(local_cfg)
    for name in ("orderbook_hf", "trade_bars", "vpin_buckets", "orderbook_seq"):
        q = f"SELECT count(*), count(DISTINCT symbol), max(date)::VARCHAR FROM gold.{name}"
        assert con_s3.execute(q).fetchone() == con_local.execute(q).fetchone(), name
    for rel in ("silver.orderbook", "gold.orderbook_seq", "gold.orderbook_hf"):  # sliced: every value
        q = f"SELECT * FROM {rel} ORDER BY ALL"
        got, want = con_s3.execute(q).fetchall(), con_local.execute(q).fetchall()
        assert got and got == want, rel
        q = f"SELECT column_name, column_type FROM (DESCRIBE {rel})"
        assert con_s3.execute(q).fetchall() == con_local.execute(q).fetchall(), rel
    con_s3.close()
    con_local.close()
    keys = _keys(client, bucket, "lake/gold/vpin_buckets/")
    assert keys and all(k.endswith(".parquet") for k in keys)


def test_watch_on_s3(tmp_path: Path, moto_server, client, monkeypatch) -> None:
    from daedalus.build.watch import watch

    monkeypatch.setenv("DAEDALUS_NO_UDFS", "1")
    h = make_lakehouse(tmp_path, moto_server, client=client)
    h.add_trades("2024-08-08", "0001", n=25)
    state = watch(h.config(), poll_interval=0.01, max_cycles=2, udfs=False, echo=lambda _: None)
    assert state.cycles == 2 and len(state.latencies) == 1
    saved = json.loads(client.get_object(Bucket=h.bucket, Key="lake/_state/watch.json")["Body"].read())
    assert saved["cycles"] == 2
    assert len(_keys(client, h.bucket, "lake/gold/toy_bars/")) == 1
    # the watch lock is released (the object is gone) once the watcher stops
    assert _keys(client, h.bucket, "lake/_state/watch.lock") == []


def test_land_takes_segments_the_collector_uploaded(tmp_path: Path, moto_server, client) -> None:
    """`ingestion.upload_to_s3`: segments uploaded (and maybe deleted locally) by the collector's
    verified uploader are landed from the bucket; one also still in the spool lands once."""
    from daedalus.collector.upload import S3Uploader

    h = make_lakehouse(tmp_path, moto_server, client=client)
    only_remote = h.add_trades("2024-08-08", "0001", n=30)
    both = h.add_trades("2024-08-08", "0002", n=20, start_id=100)
    S3Uploader(h.root, h.spool, client=client, delete_after_upload=True).upload(only_remote)
    S3Uploader(h.root, h.spool, client=client, delete_after_upload=False).upload(both)
    assert not only_remote.exists() and both.exists()
    assert len(_keys(client, h.bucket, "lake/raw/ready/")) == 2

    report = land_any(h.config())
    assert report.segments == 2 and report.rows == 50
    assert _keys(client, h.bucket, "lake/raw/ready/") == []  # retired in the bucket too
    con = api.connect(h.config(), udfs=False)
    n, distinct = con.execute(
        f"SELECT count(*), count(DISTINCT trade_id) FROM read_parquet("
        f"'s3://{h.bucket}/lake/bronze/trades/**/*.parquet')"
    ).fetchone()
    assert n == distinct == 50
    again = land_any(h.config())
    assert again.segments == 0
