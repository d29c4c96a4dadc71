"""The manifest: atomic round trip, replaced files pending deletion, grace period, catalog ordering."""

from __future__ import annotations

import json

import pytest

from daedalus.errors import StorageError
from daedalus.lake import FileInfo, LocalLake
from daedalus.lake.manifest import MANIFEST, Manifest, PartitionState, fingerprint


def part(files: list[str], fp: str = "f") -> PartitionState:
    return PartitionState(
        keys={"exchange": "x", "date": "2024-01-01"},
        files=[FileInfo(f, 10, 1) for f in files],
        fingerprint=fp,
        rows=3,
        bytes=10,
    )


def test_round_trip(tmp_path):
    lake = LocalLake(tmp_path)
    m = Manifest.load(lake)
    assert m.models == {}
    m.replace_partition(
        "t", "exchange=x/date=2024-01-01", part(["silver/t/a.parquet"]), "partitioned", "silver"
    )
    m.models["t"].columns = [["a", "BIGINT"]]
    m.save()
    again = Manifest.load(lake)
    p = again.partition("t", "exchange=x/date=2024-01-01")
    assert p is not None and p.files == [FileInfo("silver/t/a.parquet", 10, 1)] and p.rows == 3
    assert again.models["t"].columns == [["a", "BIGINT"]] and again.models["t"].layer == "silver"
    assert json.loads((tmp_path / MANIFEST).read_text())["version"] == 1
    assert not [p for p in (tmp_path / "_state").iterdir() if p.name != "manifest.json"]


def test_replacing_schedules_old_files(tmp_path):
    m = Manifest(LocalLake(tmp_path))
    m.replace_partition("t", "p", part(["a.parquet"]), "partitioned", "silver")
    replaced = m.replace_partition("t", "p", part(["b.parquet"]), "partitioned", "silver")
    assert replaced == ["a.parquet"]
    assert [d["path"] for d in m.pending_deletions] == ["a.parquet"]
    m.forget_deletions(["a.parquet"])
    assert m.pending_deletions == []


def test_a_file_still_referenced_is_never_retired(tmp_path):
    from daedalus.build.publish import retire

    (tmp_path / "a.parquet").write_bytes(b"x")
    m = Manifest(LocalLake(tmp_path))
    m.replace_partition("t", "p", part(["a.parquet"]), "partitioned", "silver")
    m.pending_deletions.append({"path": "a.parquet", "replaced_at": 0})
    assert retire(m.lake, m) == []
    assert (tmp_path / "a.parquet").exists()


def test_corrupt_manifest(tmp_path):
    (tmp_path / "_state").mkdir()
    (tmp_path / MANIFEST).write_text("{nope")
    with pytest.raises(StorageError, match="corrupt manifest"):
        Manifest.load(LocalLake(tmp_path))


def test_fingerprint_is_stable_and_order_free():
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})
