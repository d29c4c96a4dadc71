"""`daedalus compact`: split/merge a partition's files to the target size through the manifest; rows and
their order unchanged, old files gone only after the switch, a later build still equals a full one."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from s3_helpers import make_lakehouse

from daedalus.build import api
from daedalus.build.compact import compact, needs_compaction
from daedalus.lake import FileInfo

MODELS = ("silver/toy_trades", "gold/toy_bars")


def _ordered_rows(root: str, model: str, files: list[str] | None = None) -> list[dict]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    src = files if files is not None else f"{root}/{model}/**/*.parquet"
    # file order + row order as written: what a reader that does not sort sees
    return (
        con.execute(
            f"SELECT * EXCLUDE (filename) FROM read_parquet({src!r}, hive_partitioning=false, filename=true)"
        )
        .to_arrow_table()
        .to_pylist()
    )


def _manifest(h) -> dict:
    return json.loads((Path(h.root) / "_state" / "manifest.json").read_text())


def _files(h, model: str) -> dict[str, list[str]]:
    return {pid: [f[0] for f in p["files"]] for pid, p in _manifest(h)["models"][model]["partitions"].items()}


def _partition_rows(h, model: str) -> dict[str, list[dict]]:
    return {
        pid: _ordered_rows(h.root, "", [str(Path(h.root) / f) for f in files])
        for pid, files in _files(h, model).items()
    }


def test_needs_compaction() -> None:
    assert not needs_compaction([FileInfo("m/x=1/data.parquet", 10, 0)])
    assert needs_compaction([FileInfo("m/x=1/part-0.parquet", 10, 0)])  # an older version's name
    assert needs_compaction(
        [FileInfo("m/x=1/part-0.parquet", 10, 0), FileInfo("m/x=1/part-1.parquet", 10, 0)]
    )


def _make_legacy(cfg, model: str) -> None:
    """Rewrite every partition of `model` the way older versions laid it out: two part-* files."""
    from daedalus.lake import open_lake
    from daedalus.lake.manifest import Manifest

    lake = open_lake(cfg)
    con = api.connect(cfg, udfs=False)
    m = Manifest.load(lake)
    for ps in m.models[model].partitions.values():
        (old,) = ps.files
        folder = old.path.rsplit("/", 1)[0]
        src = f"(SELECT *, row_number() OVER () AS __n FROM read_parquet('{lake.url(old.path)}'))"
        files = []
        for i, cond in enumerate(("__n <= 50", "__n > 50")):
            rel = f"{folder}/part-{i:03d}-legacy.parquet"
            con.execute(
                f"COPY (SELECT * EXCLUDE (__n) FROM {src} WHERE {cond} ORDER BY __n) TO '{lake.url(rel)}' "
                "(FORMAT parquet)"
            )
            files.append(lake.stat(rel))
        lake.delete([old.path])
        ps.files = files
    m.save()
    con.close()


@pytest.mark.slow
def test_legacy_partitions_become_one_file_keeping_rows_and_order(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DAEDALUS_NO_UDFS", "1")
    h = make_lakehouse(tmp_path)
    for i, day in enumerate(["2024-08-07", "2024-08-08"]):
        h.add_trades(day, f"{i:04d}", n=400, start_id=i * 1000)
    assert h.cli("land").returncode == 0
    api.build(h.config(), udfs=False)
    _make_legacy(h.config(), "toy_trades")
    before = {m: _partition_rows(h, m.split("/")[1]) for m in MODELS}
    old_files = {p for fs in _files(h, "toy_trades").values() for p in fs}
    assert all(len(fs) == 2 for fs in _files(h, "toy_trades").values())

    out = h.cli("compact", "--select", "toy_trades")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("compacted 2 partitions: 4 files → 2")
    after = _partition_rows(h, "toy_trades")
    assert after == before["silver/toy_trades"]  # same rows, same order, partition by partition
    assert all(
        [f.rsplit("/", 1)[1] for f in fs] == ["data.parquet"] for fs in _files(h, "toy_trades").values()
    )
    on_disk = {p.relative_to(h.root).as_posix() for p in Path(h.root).glob("silver/toy_trades/**/*.parquet")}
    assert on_disk == {f for fs in _files(h, "toy_trades").values() for f in fs}  # old files left the folders
    assert not on_disk & old_files

    # the compacted partitions keep their fingerprints; their readers (gold) rebuild, same rows
    plan = api.plan_build(h.config(), udfs=False)
    assert {p.model for p in plan} == {"toy_bars"}
    api.build(h.config(), udfs=False)
    assert _partition_rows(h, "toy_bars") == before["gold/toy_bars"]
    assert compact(h.config()).partitions == 0  # nothing left to do
    q = h.cli("query", "SELECT count(*) AS n FROM silver.toy_trades", "--format", "csv")
    assert q.stdout.split() == ["n", "800"]


@pytest.mark.s3
def test_compact_on_s3(tmp_path: Path, moto_server, monkeypatch) -> None:
    from daedalus.fsio import make_s3_client

    monkeypatch.setenv("DAEDALUS_NO_UDFS", "1")
    client = make_s3_client(moto_server.endpoint, use_ssl=False, url_style="path")
    h = make_lakehouse(tmp_path, moto_server, client=client)
    h.add_trades("2024-08-08", "0001", n=300)
    from daedalus.land.lander import land_any

    land_any(h.config())
    api.build(h.config(), udfs=False)
    _make_legacy(h.config(), "toy_trades")
    con = api.connect(h.config(), udfs=False)
    q = f"SELECT * FROM read_parquet('s3://{h.bucket}/lake/silver/toy_trades/**/*.parquet') ORDER BY ts, trade_id"
    before = con.execute(q).to_arrow_table()
    rep = compact(h.config(), select=["toy_trades"])
    assert rep.partitions == 1 and rep.files_after == 1
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=h.bucket, Prefix="lake/silver/")["Contents"]]
    assert [k.rsplit("/", 1)[1] for k in keys] == ["data.parquet"]  # the legacy objects left the folder
    assert con.execute(q).to_arrow_table().equals(before)
