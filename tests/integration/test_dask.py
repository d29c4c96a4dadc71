"""Partitions as tasks on a Dask distributed cluster (a LocalCluster of 2 worker processes on
127.0.0.1), and `--shard i/n`: both must give exactly the rows of one local build."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
from s3_helpers import make_lakehouse

from daedalus.build import api, planner
from daedalus.build.distributed import build_distributed, dependencies, parse_shard, shard_of
from daedalus.config import load_config
from daedalus.devkit.synth import generate
from daedalus.errors import ConfigError

DAYS = ["2024-08-06", "2024-08-07", "2024-08-08"]
SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]


def _fill(h) -> None:
    for i, day in enumerate(DAYS):
        for j, sym in enumerate(SYMBOLS):
            h.add_trades(day, f"{i}{j}", n=20 + 5 * j, start_id=i * 1000 + j * 100, symbol=sym)


def _lake(tmp: Path, name: str):
    h = make_lakehouse(tmp / name)
    _fill(h)
    assert h.cli("land").returncode == 0
    return h


def _rows(root: str, model: str) -> list[dict]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return (
        con.execute(
            f"SELECT * FROM read_parquet('{root}/{model}/**/*.parquet', hive_partitioning=false) ORDER BY ALL"
        )
        .to_arrow_table()
        .to_pylist()
    )


def _manifest_partitions(h) -> dict[str, list[str]]:
    m = api.Session(h.config(), udfs=False).manifest
    return {name: sorted(ms.partitions) for name, ms in m.models.items()}


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        env={"DAEDALUS_NO_UDFS": "1"},
    ) as c:
        yield c


@pytest.mark.slow
def test_dask_build_equals_local_build(tmp_path: Path, cluster, monkeypatch) -> None:
    monkeypatch.setenv("DAEDALUS_NO_UDFS", "1")
    local = _lake(tmp_path, "local")
    dask = _lake(tmp_path, "dask")
    api.build(local.config(), udfs=False)
    res = build_distributed(dask.config(), executor="dask", scheduler=cluster.scheduler_address, udfs=False)
    assert len(res.rebuilt) == 18  # 2 models x 3 symbols x 3 days
    assert res.stats["toy_trades"].rows == 3 * (20 + 25 + 30)
    assert [t for t in res.tests if not t.passed] == []
    for model in ("silver/toy_trades", "gold/toy_bars"):
        assert _rows(dask.root, model) == _rows(local.root, model)
    assert _manifest_partitions(dask) == _manifest_partitions(local)
    # both workers did some of the work
    import distributed

    with distributed.Client(cluster.scheduler_address) as client:
        assert len(client.scheduler_info()["workers"]) == 2
    # incremental on Dask: nothing stale, then one new segment rebuilds its day only
    assert (
        build_distributed(
            dask.config(), executor="dask", scheduler=cluster.scheduler_address, udfs=False
        ).rebuilt
        == []
    )
    dask.add_trades(DAYS[1], "new", n=5, start_id=9000)
    local.add_trades(DAYS[1], "new", n=5, start_id=9000)
    for h in (dask, local):
        assert h.cli("land").returncode == 0
    again = build_distributed(dask.config(), executor="dask", scheduler=cluster.scheduler_address, udfs=False)
    api.build(local.config(), udfs=False)
    # bronze is exchange/date: every symbol of that day; the bars of the next day read it as lookback
    syms = [x.replace("/", "%2F") for x in SYMBOLS]  # paths escape values (daedalus/paths.py)
    expected = {("toy_trades", f"exchange=binance/symbol={x}/date={DAYS[1]}") for x in syms} | {
        ("toy_bars", f"exchange=binance/symbol={x}/date={d}") for x in syms for d in DAYS[1:]
    }
    assert set(again.rebuilt) == expected
    for model in ("silver/toy_trades", "gold/toy_bars"):
        assert _rows(dask.root, model) == _rows(local.root, model)


@pytest.mark.slow
def test_cli_dask_via_scheduler_address(tmp_path: Path, cluster) -> None:
    h = _lake(tmp_path, "cli")
    out = h.cli("build", "--executor", "dask", "--scheduler", cluster.scheduler_address)
    assert out.returncode == 0, out.stderr
    assert len(_rows(h.root, "gold/toy_bars")) > 0
    bad = h.cli("build", "--executor", "dask")
    assert bad.returncode == 2 and "--executor dask needs --scheduler" in bad.stderr


def test_shards_union_equals_full_build(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DAEDALUS_NO_UDFS", "1")
    full = _lake(tmp_path, "full")
    sharded = _lake(tmp_path, "sharded")
    api.build(full.config(), udfs=False)
    first = build_distributed(sharded.config(), shard="0/2", udfs=False)
    second = build_distributed(sharded.config(), shard="1/2", udfs=False)
    a, b = set(first.rebuilt), set(second.rebuilt)
    assert a and b and not a & b
    assert len(a | b) == 18
    # a partition and what is derived from it stay in one shard (gold reads its own silver)
    for model, pid in a:
        other = "toy_bars" if model == "toy_trades" else "toy_trades"
        assert (other, pid) in a
    for model in ("silver/toy_trades", "gold/toy_bars"):
        assert _rows(sharded.root, model) == _rows(full.root, model)
    assert _manifest_partitions(sharded) == _manifest_partitions(full)
    assert api.build(sharded.config(), udfs=False).rebuilt == []  # nothing left for a full build


@pytest.mark.slow
def test_shards_of_builtin_models_with_carry_state(tmp_path: Path) -> None:
    """The built-in silver/gold models (VPIN buckets carry state across midnight) on synthetic bronze:
    shard 0/2 + shard 1/2 = one full build, row for row."""
    roots = {}
    for name in ("full", "sharded"):
        root = tmp_path / name
        generate(
            root,
            symbols=["BTC/USDT", "ETH/USDT"],
            start="2024-03-01",
            days=2,
            snapshot_ms=20000,
            levels=5,
            trades_per_sec=0.1,
            gaps_per_day=1,
            hours=2,
            seed=3,
        )
        roots[name] = root
    cfgs = {
        n: load_config(
            None,
            {
                "storage.root": str(r),
                "duckdb.temp_directory": str(r / "_tmp"),
                "duckdb.threads": 2,
                "etl.features.horizons": [5, 60],
            },
        )
        for n, r in roots.items()
    }
    sel = ["+orderbook_seq", "+trade_bars"]
    api.build(cfgs["full"], select=sel, run_tests=False, catalog=False)
    s0 = build_distributed(cfgs["sharded"], select=sel, shard=(0, 2), run_tests=False, catalog=False)
    s1 = build_distributed(cfgs["sharded"], select=sel, shard=(1, 2), run_tests=False, catalog=False)
    assert s0.rebuilt and s1.rebuilt and not set(s0.rebuilt) & set(s1.rebuilt)
    for model in ("silver/trades", "gold/vpin_buckets", "gold/orderbook_seq", "gold/trade_bars"):
        assert _rows(str(roots["sharded"]), model) == _rows(str(roots["full"]), model), model


def test_dependencies_and_shard_groups(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DAEDALUS_NO_UDFS", "1")
    h = _lake(tmp_path, "deps")
    s = api.Session(h.config(), udfs=False)
    plan = planner.plan(s, s.select(None, None))
    deps = dependencies(s, plan)
    for p in plan:
        d = deps[f"{p.model}/{p.pid}"]
        if p.model == "toy_trades":
            assert d == []
        else:  # the bars of a day read that day and the day before (1 day lookback) of their series
            day = p.keys["date"]
            expected = {f"toy_trades/{p.pid}"}
            prev = {"2024-08-07": "2024-08-06", "2024-08-08": "2024-08-07"}.get(day)
            if prev:
                expected.add(f"toy_trades/{p.pid.replace(day, prev)}")
            assert set(d) == expected
    owner = shard_of(plan, deps, 3)
    # one group per symbol (lookback links the days): each symbol's 6 partitions in one shard
    by_symbol: dict[str, set[int]] = {}
    for pid, sh in owner.items():
        by_symbol.setdefault(pid.split("symbol=")[1].split("/")[0], set()).add(sh)
    assert all(len(v) == 1 for v in by_symbol.values())
    s.close()
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "x", "1/0"):
        with pytest.raises(ConfigError, match="--shard"):
            parse_shard(bad)
    shutil.rmtree(h.dir)


@pytest.mark.slow
@pytest.mark.s3
def test_dask_workers_share_a_lake_on_s3(tmp_path: Path, moto_server, monkeypatch) -> None:
    """Workers in other processes write to the bucket through httpfs; the driver merges the manifest."""
    distributed = pytest.importorskip("distributed")
    from daedalus.fsio import make_s3_client

    monkeypatch.setenv("DAEDALUS_NO_UDFS", "1")
    client = make_s3_client(moto_server.endpoint, use_ssl=False, url_style="path")
    h = make_lakehouse(tmp_path / "s3", moto_server, client=client)
    local = make_lakehouse(tmp_path / "local")
    for lake in (h, local):
        _fill(lake)
        assert lake.cli("land").returncode == 0, lake.cli("land").stderr
    env = {"DAEDALUS_NO_UDFS": "1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        env=env,
    ) as c:
        res = build_distributed(h.config(), executor="dask", scheduler=c.scheduler_address, udfs=False)
    assert len(res.rebuilt) == 18 and [t for t in res.tests if not t.passed] == []
    api.build(local.config(), udfs=False)
    q = "SELECT symbol, date, count(*), sum(n_trades), round(sum(vwap_ma), 6) FROM gold.toy_bars GROUP BY ALL ORDER BY ALL"
    s3_out, local_out = h.cli("query", q, "--format", "csv"), local.cli("query", q, "--format", "csv")
    assert s3_out.returncode == 0, s3_out.stderr
    assert s3_out.stdout == local_out.stdout and s3_out.stdout.count("\n") == 10
