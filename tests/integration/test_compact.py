"""`daedalus compact`: split/merge a partition's files to the target size through the manifest; rows and
their order unchanged, old files gone only after the switch, a later build still equals a full one."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from s3_helpers import make_lakehouse

from daedalus import runner
from daedalus.compact import compact, files_wanted, needs_compaction
from daedalus.lake import FileInfo

MODELS = ("silver/toy_trades", "gold/toy_bars")


def _ordered_rows(root: str, model: str, files: list[str] | None = None) -> list[dict]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    src = files if files is not None else f"{root}/{model}/**/*.parquet"
    # file order + row order as written: what a reader that does not sort sees
    return con.execute(f"SELECT * EXCLUDE (filename) FROM read_parquet({src!r}, hive_partitioning=false, "
                       "filename=true)").to_arrow_table().to_pylist()


def _manifest(h) -> dict:
    return json.loads((Path(h.root) / "_state" / "manifest.json").read_text())


def _files(h, model: str) -> dict[str, list[str]]:
    return {pid: [f[0] for f in p["files"]] for pid, p in _manifest(h)["models"][model]["partitions"].items()}


def _partition_rows(h, model: str) -> dict[str, list[dict]]:
    return {pid: _ordered_rows(h.root, "", [str(Path(h.root) / f) for f in files])
            for pid, files in _files(h, model).items()}


def test_files_wanted_and_needs_compaction() -> None:
    mb = 1024 * 1024
    assert files_wanted(10 * mb, 128 * mb) == 1
    assert files_wanted(300 * mb, 128 * mb) == 2
    assert files_wanted(400 * mb, 128 * mb) == 3
    small = [FileInfo(f"p/{i}", 2 * mb, 0) for i in range(5)]
    assert needs_compaction(small, 128 * mb)  # 5 files where 1 will do
    assert not needs_compaction(small[:1], 128 * mb)
    assert needs_compaction([FileInfo("p/big", 600 * mb, 0)], 128 * mb)  # one file of 5 targets
    assert not needs_compaction([FileInfo("p/a", 200 * mb, 0)], 128 * mb)  # round(200/128) = 2 > 1 but < 2x


@pytest.mark.slow
def test_split_then_merge_keeps_rows_and_order(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DAEDALUS_NO_UDFS", "1")
    h = make_lakehouse(tmp_path)
    for i, day in enumerate(["2024-08-07", "2024-08-08"]):
        h.add_trades(day, f"{i:04d}", n=400, start_id=i * 1000)
    assert h.cli("land").returncode == 0
    runner.build(h.config(), udfs=False)
    before = {m: _partition_rows(h, m.split("/")[1]) for m in MODELS}
    old_files = {p for m in MODELS for fs in _files(h, m.split("/")[1]).values() for p in fs}
    sizes = [(Path(h.root) / p).stat().st_size for p in old_files if "toy_trades" in p]

    # split: a target of a third of a file → 3 files per silver partition
    target_mb = max(sizes) / 3 / 1024 / 1024
    rep = compact(h.config(), select=["toy_trades"], target_mb=target_mb)
    assert rep.partitions == 2 and rep.files_before == 2 and rep.files_after >= 5
    assert rep.rows == 800
    after = _partition_rows(h, "toy_trades")
    assert after == before["silver/toy_trades"]  # same rows, same order, partition by partition
    assert all(len(fs) >= 2 for fs in _files(h, "toy_trades").values())
    on_disk = {p.relative_to(h.root).as_posix() for p in Path(h.root).glob("silver/toy_trades/**/*.parquet")}
    assert on_disk == {f for fs in _files(h, "toy_trades").values() for f in fs}  # old files deleted
    assert not on_disk & old_files

    # the compacted partitions keep their fingerprints; their readers (gold) rebuild, same rows
    plan = runner.plan_build(h.config(), udfs=False)
    assert {p.model for p in plan} == {"toy_bars"}
    runner.build(h.config(), udfs=False)
    assert _partition_rows(h, "toy_bars") == before["gold/toy_bars"]

    # merge back with the default target: one file per partition again
    out = h.cli("compact", "--select", "toy_trades")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("compacted 2 partitions")
    assert all(len(fs) == 1 for fs in _files(h, "toy_trades").values())
    assert _partition_rows(h, "toy_trades") == before["silver/toy_trades"]
    # nothing left to do
    assert compact(h.config()).partitions == 0
    q = h.cli("query", "SELECT count(*) AS n FROM silver.toy_trades", "--format", "csv")
    assert q.stdout.split() == ["n", "800"]


@pytest.mark.s3
def test_compact_on_s3(tmp_path: Path, moto_server, monkeypatch) -> None:
    from daedalus.collector.upload import make_s3_client

    monkeypatch.setenv("DAEDALUS_NO_UDFS", "1")
    client = make_s3_client(moto_server.endpoint, use_ssl=False, url_style="path")
    h = make_lakehouse(tmp_path, moto_server, client=client)
    h.add_trades("2024-08-08", "0001", n=300)
    from daedalus.lake_s3 import land_any

    land_any(h.config())
    runner.build(h.config(), udfs=False)
    con = runner.connect(h.config(), udfs=False)
    q = f"SELECT * FROM read_parquet('s3://{h.bucket}/lake/silver/toy_trades/**/*.parquet') ORDER BY ts, trade_id"
    before = con.execute(q).to_arrow_table()
    size = client.list_objects_v2(Bucket=h.bucket, Prefix="lake/silver/")["Contents"][0]["Size"]
    rep = compact(h.config(), select=["toy_trades"], target_mb=size / 3 / 2**20)
    assert rep.partitions == 1 and rep.files_after >= 2
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=h.bucket, Prefix="lake/silver/")["Contents"]]
    assert len(keys) == rep.files_after  # the old object is deleted (retain 0), the new ones verified
    assert con.execute(q).to_arrow_table().equals(before)
