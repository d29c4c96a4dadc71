"""Issue 15: every reader sees one consistent lake.

- Engines that glob the model folders (DuckDB `read_parquet` with hive partitioning, Polars
  `scan_parquet`) polled in a loop while `daedalus build` rebuilds the same partitions again and
  again never see a partition count other than one of its published versions (never old + new).
- One process holding a pooled duckdb-engine connection across three builds sees the new data after
  each and never errors, with the grace period at 0 and at its default.
- A `cp -a` copy of a lake reads its own files after the original is deleted; a moved lake works as
  it is, and `daedalus catalog` rewrites the catalog on demand.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest
from toy import make_toy, trade_rows

from daedalus.build import build
from daedalus.serve.catalog import catalog_path, open_catalog
from daedalus.serve.catalog_paths import reader_config

pytestmark = pytest.mark.slow
ENV = {"DAEDALUS_NO_UDFS": "1"}
DAY = "2024-01-01"


def _versions(toy, model: str) -> dict[str, int]:
    """Rows per partition (keyed by exchange/date) as the manifest says they are now."""
    parts = toy.manifest()["models"][model]["partitions"].values()
    return {f"{p['keys']['exchange']}/{p['keys']['date']}": p["rows"] for p in parts}


def _poll(root: Path, stop: threading.Event, seen: dict[str, set], errors: list[str]) -> None:
    import polars as pl

    con = duckdb.connect()
    glob = str(root / "silver" / "toy_trades" / "**" / "*.parquet")
    while not stop.is_set():
        try:
            for exchange, date, n in con.execute(
                f"SELECT exchange, date::VARCHAR, count(*) FROM read_parquet('{glob}', hive_partitioning=true) "
                "GROUP BY ALL"
            ).fetchall():
                seen.setdefault(f"duckdb {exchange}/{date}", set()).add(n)
            frame = pl.scan_parquet(glob, hive_partitioning=True).group_by("exchange", "date").len().collect()
            for exchange, date, n in frame.iter_rows():
                seen.setdefault(f"polars {exchange}/{date}", set()).add(n)
        except Exception as e:  # noqa: BLE001 - any error is a failure of the contract
            errors.append(f"{type(e).__name__}: {e}")
        time.sleep(0.005)
    con.close()


def test_glob_readers_see_each_partition_before_or_after_a_rebuild(tmp_path: Path) -> None:
    toy = make_toy(tmp_path)  # grace period 0: nothing of a replaced partition is left behind
    for ex in ("x", "y"):
        toy.write_bronze(ex, DAY, trade_rows(ex, "BTC/USDT", DAY, n=100))
    toy.cli("build", env=ENV, check=True)
    published: dict[str, set] = {}
    for k, n in _versions(toy, "toy_trades").items():
        published.setdefault(k, set()).add(n)
    stop, seen, errors = threading.Event(), {}, []
    reader = threading.Thread(target=_poll, args=(toy.root, stop, seen, errors), daemon=True)
    reader.start()
    try:
        for i in range(1, 5):  # each build adds 10 trades to the same partitions: every count differs,
            for ex in ("x", "y"):  # and old + new (≥ 200) is none of them
                toy.write_bronze(
                    ex, DAY, trade_rows(ex, "BTC/USDT", DAY, n=10, start_id=1000 * i), name=f"seg-{i + 1:04d}"
                )
            toy.cli("build", env=ENV, check=True)
            for k, n in _versions(toy, "toy_trades").items():
                published.setdefault(k, set()).add(n)
            time.sleep(0.2)
    finally:
        stop.set()
        reader.join(timeout=60)
    assert not errors, errors[:3]
    assert published == {f"{ex}/{DAY}": {100, 110, 120, 130, 140} for ex in ("x", "y")}
    for key, counts in seen.items():
        engine, part = key.split(" ")
        assert counts <= published[part], (key, counts, published[part])
    assert {k.split(" ")[0] for k in seen} == {"duckdb", "polars"}
    assert any(len(c) >= 2 for c in seen.values())  # the readers did see builds happen
    # replaced files left the model folders: one file per partition, the trash is outside
    files = sorted(p.relative_to(toy.root).as_posix() for p in (toy.root / "silver").rglob("*.parquet"))
    assert all(f.endswith("/data.parquet") for f in files) and len(files) == 2


@pytest.mark.parametrize("retain_minutes", [0.0, 10.0])
def test_a_held_pooled_connection_sees_each_build_and_never_errors(
    tmp_path: Path, retain_minutes: float
) -> None:
    pd = pytest.importorskip("pandas")
    from sqlalchemy import create_engine, text

    toy = make_toy(tmp_path, retain_minutes=retain_minutes)
    toy.write_bronze("x", DAY, trade_rows("x", "BTC/USDT", DAY, n=40))
    toy.cli("build", env=ENV, check=True)
    path = catalog_path(toy.config())
    # docs/operations.md's recipe: read-only, file_search_path = the catalog's folder, the default QueuePool
    engine = create_engine(
        f"duckdb:///{path}",
        pool_pre_ping=True,
        connect_args={"read_only": True, "config": reader_config(path)},
    )
    held = engine.connect()
    sql = "SELECT count(*) FROM gold.toy_bars"
    days = ["2024-01-02", "2024-01-03", "2024-01-04"]
    try:
        assert held.execute(text(sql)).scalar() > 0
        for i, day in enumerate(days):
            # the same partition grows and a new one appears; builds run in another process (watch)
            toy.write_bronze(
                "x", DAY, trade_rows("x", "BTC/USDT", DAY, n=5, start_id=100 * (i + 1)), name=f"seg-more-{i}"
            )
            toy.write_bronze("x", day, trade_rows("x", "BTC/USDT", day, n=30))
            toy.cli("build", env=ENV, check=True)
            want = sum(p["rows"] for p in toy.manifest()["models"]["toy_bars"]["partitions"].values())
            assert held.execute(text(sql)).scalar() == want, f"held connection after build {i + 1}"
            with engine.connect() as con:  # a second pooled connection of the same process
                assert con.execute(text(sql)).scalar() == want
            frame = pd.read_sql(text("SELECT date, count(*) AS n FROM gold.toy_bars GROUP BY date"), engine)
            assert int(frame["n"].sum()) == want and len(frame) == i + 2
        # and a build in this very process, while the connection is held
        toy.write_bronze("x", "2024-01-05", trade_rows("x", "BTC/USDT", "2024-01-05", n=30))
        build(toy.config(), udfs=False)
        want = sum(p["rows"] for p in toy.manifest()["models"]["toy_bars"]["partitions"].values())
        assert held.execute(text(sql)).scalar() == want
    finally:
        held.close()
        engine.dispose()


def _count(cfg) -> int:
    con = open_catalog(cfg)
    try:
        return con.execute("SELECT count(*) FROM silver.toy_trades").fetchone()[0]
    finally:
        con.close()


def test_a_copied_lake_reads_its_own_files_and_a_moved_lake_works(tmp_path: Path) -> None:
    toy = make_toy(tmp_path)
    toy.write_bronze("x", DAY, trade_rows("x", "BTC/USDT", DAY, n=40))
    toy.cli("build", env=ENV, check=True)
    copy = tmp_path / "copy"
    assert subprocess.run(["cp", "-a", str(toy.root), str(copy)]).returncode == 0
    # the original grows; the copy must keep reading its own 40 rows, also once the original is gone
    toy.write_bronze("x", DAY, trade_rows("x", "BTC/USDT", DAY, n=10, start_id=500), name="seg-0002")
    toy.cli("build", env=ENV, check=True)
    assert _count(toy.config()) == 50
    copy_cfg = toy.config(**{"storage.root": str(copy)})
    assert _count(copy_cfg) == 40
    shutil.rmtree(toy.root)
    assert _count(copy_cfg) == 40
    con = duckdb.connect(
        str(copy / "catalog.duckdb"), read_only=True, config=reader_config(str(copy / "catalog.duckdb"))
    )
    assert con.execute("SELECT count(*) FROM gold.toy_bars").fetchone()[0] > 0
    con.close()
    assert build(copy_cfg, udfs=False).rebuilt == []  # the manifest's paths are relative too

    # moved: no step needed; `daedalus catalog` rewrites it on demand and it still reads the same
    moved = tmp_path / "moved"
    copy.rename(moved)
    moved_cfg = toy.config(**{"storage.root": str(moved)})
    assert _count(moved_cfg) == 40
    cfg_file = tmp_path / "moved.yaml"
    cfg_file.write_text(toy.config_path.read_text().replace(str(toy.root), str(moved)))
    out = subprocess.run(
        [*toy.cli_prefix(), "--config", str(cfg_file), "catalog"],
        capture_output=True,
        text=True,
        env={**os.environ, **ENV},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(moved / "catalog.duckdb")
    assert _count(moved_cfg) == 40
    q = subprocess.run(
        [
            *toy.cli_prefix(),
            "--config",
            str(cfg_file),
            "query",
            "SELECT count(*) AS n FROM silver.toy_trades",
            "-f",
            "csv",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **ENV},
    )
    assert q.stdout.split() == ["n", "40"], q.stderr


def test_glob_readers_during_daedalus_watch(tmp_path: Path) -> None:
    """The same, with `daedalus watch` landing a new segment of the same day every cycle."""
    import json
    import signal

    from s3_helpers import make_lakehouse

    h = make_lakehouse(tmp_path)  # a local lake: the spool is the lake
    h.add_trades(DAY, "0000", n=100)
    assert h.cli("land").returncode == 0 and h.cli("build").returncode == 0
    root = Path(h.root)

    def rows() -> int:
        m = json.loads((root / "_state" / "manifest.json").read_text())
        return sum(p["rows"] for p in m["models"]["toy_trades"]["partitions"].values())

    published = {rows()}
    stop, seen, errors = threading.Event(), {}, []
    reader = threading.Thread(target=_poll, args=(root, stop, seen, errors), daemon=True)
    watcher = h.popen(
        "watch", "--poll-interval", "0.2", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    reader.start()
    try:
        for i in range(1, 5):
            h.add_trades(DAY, f"{i:04d}", n=10, start_id=1000 * i)
            deadline = time.monotonic() + 120
            while rows() != 100 + 10 * i:
                assert watcher.poll() is None, watcher.stderr.read() if watcher.stderr else ""
                assert time.monotonic() < deadline, "watch did not publish the new segment"
                time.sleep(0.05)
            published.add(rows())
    finally:
        stop.set()
        reader.join(timeout=60)
        watcher.send_signal(signal.SIGTERM)
        watcher.wait(timeout=60)
    assert not errors, errors[:3]
    assert published == {100, 110, 120, 130, 140}
    for key, counts in seen.items():
        assert counts <= published, (key, counts)  # one partition: its count is the model's
    assert any(len(c) >= 2 for c in seen.values())


@pytest.mark.s3
def test_an_s3_lake_held_catalog_and_glob_see_each_build(tmp_path: Path, moto_server) -> None:
    """On S3 a partition is replaced by a server-side copy over its key: a held catalog connection
    and a glob of the bucket see each build, one object per partition."""
    from s3_helpers import make_lakehouse

    from daedalus.fsio import make_s3_client
    from daedalus.land.lander import land_any

    client = make_s3_client(moto_server.endpoint, use_ssl=False, url_style="path")
    h = make_lakehouse(tmp_path, moto_server, client=client)
    h.add_trades(DAY, "0000", n=40)
    cfg = h.config()
    land_any(cfg)
    build(cfg, udfs=False)
    held = open_catalog(cfg)
    glob = f"s3://{h.bucket}/lake/silver/toy_trades/**/*.parquet"
    try:
        for i in range(1, 4):
            h.add_trades(DAY, f"{i:04d}", n=10, start_id=1000 * i)
            land_any(cfg)
            build(cfg, udfs=False)
            assert held.execute("SELECT count(*) FROM silver.toy_trades").fetchone()[0] == 40 + 10 * i
            assert held.execute(f"SELECT count(*) FROM read_parquet('{glob}')").fetchone()[0] == 40 + 10 * i
    finally:
        held.close()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=h.bucket, Prefix="lake/silver/")["Contents"]]
    assert [k.rsplit("/", 1)[1] for k in keys] == ["data.parquet"]


def test_duckdb_caches_do_not_serve_a_replaced_file(tmp_path: Path) -> None:
    """What the stable file name relies on: a DuckDB connection with its external file cache (on by
    default) and the Parquet metadata cache on reads the new file after a rename over the old one,
    even of the same size within the same second."""
    con = duckdb.connect()
    con.execute("SET parquet_metadata_cache = true")
    assert con.execute("SELECT current_setting('enable_external_file_cache')").fetchone()[0] is True
    path, tmp = tmp_path / "data.parquet", tmp_path / "new.parquet"
    for i in range(5):
        con.execute(f"COPY (SELECT range + {1000 * i} AS a FROM range(100)) TO '{tmp}' (FORMAT parquet)")
        os.replace(tmp, path)
        assert con.execute(
            f"SELECT count(*), sum(a) FROM read_parquet('{tmp_path}/*.parquet')"
        ).fetchone() == (100, 4950 + 100_000 * i)


PLAIN_DUCKDB = r"""
import sys, duckdb
mode, catalog = sys.argv[1:3]
if mode == "open":  # `duckdb -readonly <catalog>`, no setting: what a user types from any folder
    con = duckdb.connect(catalog, read_only=True)
    print(con.execute("SELECT count(*) FROM gold.toy_bars").fetchone()[0],
          con.execute("SELECT count(*) FROM silver.toy_trades").fetchone()[0])
else:  # ATTACHed to an in-memory database: DuckDB does not say where the catalog file is
    con = duckdb.connect()
    con.execute(f"ATTACH '{catalog}' AS lake (READ_ONLY)")
    try:
        print(con.execute("SELECT count(*) FROM lake.silver.toy_trades").fetchone()[0])
    except duckdb.Error as e:
        print(str(e).splitlines()[0])
    con.execute(f"SET file_search_path = '{sys.argv[3]}'")
    print(con.execute("SELECT count(*) FROM lake.silver.toy_trades").fetchone()[0])
"""


def test_plain_duckdb_reads_the_catalog_from_any_folder(tmp_path: Path) -> None:
    """Issue 24: `cd /elsewhere && duckdb -readonly /lake/catalog.duckdb` failed with DuckDB's "No files
    found" (relative view paths). Without `file_search_path` it now reads from any working folder, by
    an absolute or a relative path, also a `cp -a` copy after the original is gone; where DuckDB cannot
    tell the file's folder (ATTACH), the error names the fix, which then works."""
    toy = make_toy(tmp_path)
    toy.write_bronze("x", DAY, trade_rows("x", "BTC/USDT", DAY, n=40))
    toy.cli("build", env=ENV, check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def plain(cwd: Path, *args: str) -> list[str]:
        out = subprocess.run(
            [sys.executable, "-c", PLAIN_DUCKDB, *args], capture_output=True, text=True, cwd=cwd
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.strip().splitlines()

    catalog = toy.root / "catalog.duckdb"
    bars, trades = plain(elsewhere, "open", str(catalog))[0].split()
    assert int(bars) > 0 and int(trades) == 40
    assert plain(tmp_path, "open", "lake/catalog.duckdb") == [f"{bars} 40"]  # relative to the cwd
    assert plain(toy.root, "open", "catalog.duckdb") == [f"{bars} 40"]  # from the lake itself
    copy = tmp_path / "copy"
    assert subprocess.run(["cp", "-a", str(toy.root), str(copy)]).returncode == 0
    shutil.rmtree(toy.root)
    assert plain(elsewhere, "open", str(copy / "catalog.duckdb")) == [f"{bars} 40"]
    message, after_fix = plain(elsewhere, "attach", str(copy / "catalog.duckdb"), str(copy))
    assert "SET file_search_path = '" in message and "No files found" not in message, message
    assert str(toy.root) not in message  # a copy never names (or reads) the original
    assert after_fix == "40"
