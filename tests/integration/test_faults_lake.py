"""Faults of a lake running for real, each followed by what must be true afterwards:
kill -9 during land (S3 lake: during the verified push), during a build's write (S3), during the
delete of replaced files; the spill directory full; a truncated segment in ready/; a segment whose
schema drifted; capture_ts jumping backwards."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from s3_helpers import make_lakehouse, write_segment
from toy import trade_rows

from daedalus.build import api
from daedalus.build.watch import watch
from daedalus.collector.schemas import SCHEMAS
from daedalus.errors import StorageError
from daedalus.fsio import make_s3_client
from daedalus.land.lander import land_any

UTC = dt.UTC


def _plain() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def _manifest(root: Path) -> dict:
    return json.loads((root / "_state" / "manifest.json").read_text())


def _assert_consistent(root: Path) -> None:
    """Every file the manifest names exists and holds the rows it claims."""
    con = _plain()
    for name, m in _manifest(root)["models"].items():
        for pid, p in m["partitions"].items():
            paths = [str(root / f[0]) for f in p["files"]]
            assert all(Path(x).exists() for x in paths), f"{name} {pid}: a file of the manifest is missing"
            n = con.execute(f"SELECT count(*) FROM read_parquet({paths})").fetchone()[0] if paths else 0
            assert n == p["rows"], f"{name} {pid}"


# -- kill -9 ------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.s3
def test_kill_9_during_land_into_s3_then_rerun_lands_each_row_once(tmp_path: Path, moto_server) -> None:
    client = make_s3_client(moto_server.endpoint, use_ssl=False, url_style="path")
    h = make_lakehouse(tmp_path, moto_server, client=client)
    days = [f"2024-08-{d:02d}" for d in range(1, 13)]
    for i, day in enumerate(days):
        h.add_trades(day, f"{i:04d}", n=50, start_id=i * 1000)
    proc = h.popen("land", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    # kill as soon as the first bronze object is in the bucket: mid-push, others still local
    while "Contents" not in client.list_objects_v2(Bucket=h.bucket, Prefix="lake/bronze/"):
        assert proc.poll() is None and time.monotonic() < deadline, "land finished before it could be killed"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = len(list((h.spool / "bronze").rglob("*.parquet"))) + len(
        list((h.spool / "raw").rglob("segment_*"))
    )
    assert left > 0, "nothing was left to repair"
    out = h.cli("land")
    assert out.returncode == 0, out.stderr
    assert not list((h.spool / "bronze").rglob("*.parquet"))
    assert not list((h.spool / "raw" / "ready").rglob("*.parquet"))
    assert not list((h.spool / "raw" / "processing").rglob("*.parquet"))
    con = api.connect(h.config(), udfs=False)
    n, distinct = con.execute(
        f"SELECT count(*), count(DISTINCT trade_id) FROM read_parquet("
        f"'s3://{h.bucket}/lake/bronze/trades/**/*.parquet')"
    ).fetchone()
    assert n == distinct == 600  # none lost, none twice


@pytest.mark.slow
@pytest.mark.s3
def test_kill_9_during_a_build_write_on_s3(tmp_path: Path, moto_server) -> None:
    client = make_s3_client(moto_server.endpoint, use_ssl=False, url_style="path")
    h = make_lakehouse(tmp_path / "s3", moto_server, client=client)
    local = make_lakehouse(tmp_path / "local")
    for lake in (h, local):
        for i, day in enumerate(["2024-08-06", "2024-08-07", "2024-08-08"]):
            lake.add_trades(day, f"{i:04d}", n=40, start_id=i * 100)
        assert lake.cli("land").returncode == 0
    killed = h.cli("build", env={"DAEDALUS_TEST_KILL": "after_write:4"})
    assert killed.returncode == -9
    # the S3 lock of the killed build (same host, dead pid) does not block the next build
    lock = client.list_objects_v2(Bucket=h.bucket, Prefix="lake/_state/build.lock")
    assert "Contents" in lock
    out = h.cli("build")
    assert out.returncode == 0, out.stderr
    assert local.cli("build").returncode == 0
    q = "SELECT symbol, date, count(*), round(sum(volume), 9) FROM gold.toy_bars GROUP BY ALL ORDER BY ALL"
    assert h.cli("query", q, "--format", "csv").stdout == local.cli("query", q, "--format", "csv").stdout
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=h.bucket, Prefix="lake/silver/")["Contents"]]
    assert len(keys) == 3  # the killed build's orphan file was removed


KILL_MID_PUBLISH = """
import os, signal, sys
import daedalus.lake as lake
real = lake.LocalLake.rename
seen = []
def rename(self, src, dst):
    real(self, src, dst)
    if src.startswith("_staging/") and dst.endswith("/data.parquet") and os.environ.get("KILL_MID_PUBLISH"):
        seen.append(dst)
        if len(seen) == 2:  # the 2nd of silver's 3 partitions is in place, the manifest not yet saved
            os.kill(os.getpid(), signal.SIGKILL)
lake.LocalLake.rename = rename
from daedalus.cli.app import main
sys.argv = ["daedalus", *sys.argv[1:]]
main()
"""


@pytest.mark.slow
def test_kill_9_in_the_middle_of_a_publish(tmp_path: Path) -> None:
    h = make_lakehouse(tmp_path)
    days = ["2024-08-06", "2024-08-07", "2024-08-08"]
    for i, day in enumerate(days):
        h.add_trades(day, f"{i:04d}", n=30, start_id=i * 100)
    assert h.cli("land").returncode == 0
    assert h.cli("build").returncode == 0
    for i, day in enumerate(days):
        h.add_trades(day, f"{i:04d}b", n=5, start_id=5000 + i * 100)
    assert h.cli("land").returncode == 0
    import os

    env = {**os.environ, "DAEDALUS_NO_UDFS": "1", "KILL_MID_PUBLISH": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", KILL_MID_PUBLISH, "--config", str(h.config_path), "build"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -9, proc.stderr
    root = Path(h.root)
    con = _plain()
    for p in _manifest(root)["models"]["toy_trades"]["partitions"].values():
        (f,) = p["files"]  # every partition is one file, there, whole: the old rows or the new ones
        assert con.execute(f"SELECT count(*) FROM read_parquet('{root / f[0]}')").fetchone()[0] in (30, 35)
    out = h.cli("query", "SELECT count(*) AS n FROM silver.toy_trades", "--format", "csv")
    assert out.stdout.split() == ["n", "100"]  # two partitions published, one not yet
    assert h.cli("build").returncode == 0  # finishes the job: the plan still sees the new inputs
    _assert_consistent(root)
    out = h.cli("query", "SELECT count(*) AS n FROM silver.toy_trades", "--format", "csv")
    assert out.stdout.split() == ["n", "105"]
    on_disk = {
        p.relative_to(root).as_posix()
        for layer in ("silver", "gold")
        for p in (root / layer).rglob("*.parquet")
    }
    named = {
        f[0] for m in _manifest(root)["models"].values() for p in m["partitions"].values() for f in p["files"]
    }
    assert on_disk == named  # nothing but the published files in the model folders


# -- the spill directory is full --------------------------------------------------------------------

BIG_MODEL = """{{ config(materialized='partitioned', partition_by=['exchange', 'symbol', 'date']) }}
-- Sorting many wide rows needs more memory than the limit: DuckDB spills to temp_directory.
SELECT t.exchange, t.symbol, t.date, md5(CAST(r.range AS VARCHAR)) || repeat('x', 200) AS pad
FROM {{ ref('toy_trades') }} AS t, range(ROWS) AS r
ORDER BY pad
"""


@pytest.mark.slow
def test_spill_directory_full_is_a_clear_error_and_the_lake_is_intact(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DAEDALUS_NO_UDFS", "1")
    h = make_lakehouse(tmp_path)
    big = h.project / "sql" / "gold" / "big.sql"
    big.write_text(BIG_MODEL.replace("ROWS", "1"))
    h.add_trades("2024-08-08", "0001", n=20)
    land_any(h.config())
    api.build(h.config(), udfs=False)  # big with 1 row per trade: fine
    before = _manifest(Path(h.root))["models"]["big"]["partitions"]
    h.add_trades("2024-08-08", "0002", n=20, start_id=100)
    land_any(h.config())
    import yaml

    data = yaml.safe_load(h.config_path.read_text())
    data["duckdb"].update({"memory_limit": "40MB", "max_temp_directory_size": "1MB", "threads": 1})
    h.config_path.write_text(yaml.safe_dump(data))
    big.write_text(BIG_MODEL.replace("ROWS", "10000"))  # 40 trades x 10,000 wide rows to sort
    with pytest.raises(StorageError) as err:
        api.build(h.config(), udfs=False)
    msg = str(err.value)
    assert "\n" not in msg
    assert "duckdb.max_temp_directory_size (1MB) reached" in msg and str(tmp_path / "spill") in msg
    root = Path(h.root)
    _assert_consistent(root)
    assert _manifest(root)["models"]["big"]["partitions"] == before  # the old partition is still the live one
    out = h.cli("query", "SELECT count(*) AS n FROM gold.big", "--format", "csv")
    assert out.stdout.split() == ["n", "20"]
    data["duckdb"].update({"max_temp_directory_size": "2GB", "memory_limit": "1GB"})
    h.config_path.write_text(yaml.safe_dump(data))
    api.build(h.config(), udfs=False)
    out = h.cli("query", "SELECT count(*) AS n FROM gold.big", "--format", "csv")
    assert out.stdout.split() == ["n", str(40 * 10000)]


# -- bad segments, drift, clocks (through the watcher) -------------------------------------------


def test_truncated_segment_is_quarantined_the_rest_lands_and_builds(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DAEDALUS_NO_UDFS", "1")
    h = make_lakehouse(tmp_path)
    good = h.add_trades("2024-08-08", "0001", n=30)
    bad = h.add_trades("2024-08-08", "0002", n=30, start_id=100)
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])  # cut mid-file: no footer
    lines: list[str] = []
    state = watch(h.config(), poll_interval=0.01, max_cycles=1, udfs=False, echo=lines.append)
    assert state.pending_since is None
    root = Path(h.root)
    assert (root / "raw" / "quarantine" / "ccxt" / "trades" / bad.name).exists()
    assert not good.exists()
    n = (
        _plain()
        .execute(f"SELECT count(*) FROM read_parquet('{root}/silver/toy_trades/**/*.parquet')")
        .fetchone()[0]
    )
    assert n == 60  # its one row group lies before the cut (the footer is most of a small file): kept
    events = (
        _plain()
        .execute(f"SELECT event_type, detail FROM read_parquet('{root}/bronze/events/**/*.parquet')")
        .fetchall()
    )
    assert events[0][0] == "quarantine" and bad.name in events[0][1]


@pytest.mark.slow
def test_schema_drift_new_column_appears_and_nothing_fails(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DAEDALUS_NO_UDFS", "1")
    h = make_lakehouse(tmp_path)
    h.add_trades("2024-08-08", "0001", n=30)
    drifted = SCHEMAS["trades"].append(pa.field("is_best_match", pa.bool_()))
    rows = [
        {**r, "is_best_match": i % 2 == 0}
        for i, r in enumerate(trade_rows("binance", "BTC/USDT", "2024-08-08", n=10, start_id=500))
    ]
    write_segment(h.spool, rows, "0002", schema=drifted)
    state = watch(h.config(), poll_interval=0.01, max_cycles=1, udfs=False, echo=lambda _: None)
    assert state.last_cycle["error"] is None and state.last_cycle["segments"] == 2
    out = h.cli(
        "query",
        "SELECT count(*) AS n, count(is_best_match) AS with_col, sum(is_best_match::INT) AS t "
        "FROM bronze.trades",
        "--format",
        "csv",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["n,with_col,t", "40,10,5"]  # old rows NULL, the new column by name
    out = h.cli("query", "SELECT count(*) AS n FROM silver.toy_trades", "--format", "csv")
    assert out.stdout.split() == ["n", "40"]


def test_capture_ts_jumping_backwards(tmp_path: Path, monkeypatch) -> None:
    """The host clock steps back an hour mid-segment: rows still land by exchange time, nothing is
    lost or duplicated, the build and its data tests pass; a row without exchange time lands by
    its (jumped) capture_ts date."""
    monkeypatch.setenv("DAEDALUS_NO_UDFS", "1")
    h = make_lakehouse(tmp_path)
    rows = trade_rows("binance", "BTC/USDT", "2024-08-08", n=40)
    rows.sort(key=lambda r: r["timestamp"])
    for i, r in enumerate(rows):
        if i >= 20:
            r["capture_ts"] = r["capture_ts"] - dt.timedelta(hours=1)
            r["collected_at"] -= 3_600_000
    # the first row of the day captured just after midnight, then the clock jumps to the day before
    early = dict(
        rows[0],
        trade_id="no-exchange-time",
        timestamp=None,
        seq=999,
        capture_ts=dt.datetime(2024, 8, 8, 0, 10, tzinfo=UTC) - dt.timedelta(hours=1),
    )
    write_segment(h.spool, [*rows, early], "0001")
    state = watch(h.config(), poll_interval=0.01, max_cycles=1, udfs=False, echo=lambda _: None)
    assert state.last_cycle["error"] is None
    root = Path(h.root)
    dates = (
        _plain()
        .execute(
            f"SELECT date::VARCHAR, count(*) FROM read_parquet('{root}/bronze/trades/**/*.parquet') "
            "GROUP BY 1 ORDER BY 1"
        )
        .fetchall()
    )
    assert dates == [("2024-08-07", 1), ("2024-08-08", 40)]
    silver = (
        _plain()
        .execute(
            f"SELECT count(*), count(DISTINCT trade_id) FROM read_parquet("
            f"'{root}/silver/toy_trades/**/*.parquet')"
        )
        .fetchone()
    )
    assert silver == (40, 40)  # the row without exchange time is not a trade of silver (ts NULL)
    tests = api.test(h.config(), udfs=False)
    assert tests and all(t.passed for t in tests)
