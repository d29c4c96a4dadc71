"""The local Lake: list, stat, atomic write, delete (empty folders too), lock, backends by scheme."""

from __future__ import annotations

import pytest

from daedalus.config import Config
from daedalus.errors import StorageError
from daedalus.lake import LAKE_KINDS, LocalLake, open_lake, register_lake


def test_list_stat_write_delete(tmp_path):
    lake = LocalLake(tmp_path)
    assert lake.list("bronze") == []
    lake.write_atomic("bronze/t/exchange=x/date=2024-01-01/a.parquet", b"abc")
    lake.write_atomic("bronze/t/exchange=x/date=2024-01-02/b.parquet", b"de")
    (tmp_path / "bronze/t/exchange=x/date=2024-01-02/.b.parquet.123.tmp").write_bytes(b"partial")
    files = lake.list("bronze/t")
    assert [(f.path, f.size) for f in files] == [
        ("bronze/t/exchange=x/date=2024-01-01/a.parquet", 3),
        ("bronze/t/exchange=x/date=2024-01-02/b.parquet", 2),
    ]
    assert lake.stat(files[0].path) == files[0]
    assert lake.read_bytes(files[1].path) == b"de"
    assert lake.url("x/y") == str(tmp_path.resolve() / "x/y")
    lake.delete([files[0].path, "missing/file.parquet"])
    assert not (tmp_path / "bronze/t/exchange=x/date=2024-01-01").exists()  # empty folders go too
    assert lake.stat(files[0].path) is None


def test_write_atomic_replaces(tmp_path):
    lake = LocalLake(tmp_path)
    lake.write_atomic("_state/m.json", b"1")
    lake.write_atomic("_state/m.json", b"2")
    assert lake.read_bytes("_state/m.json") == b"2"
    assert [p.name for p in (tmp_path / "_state").iterdir()] == ["m.json"]


def test_lock_is_exclusive(tmp_path):
    lake = LocalLake(tmp_path)
    with (
        lake.lock("build"),
        pytest.raises(StorageError, match="another build holds the lock"),
        LocalLake(tmp_path).lock("build"),
    ):
        pass
    with lake.lock("build"):
        pass


def test_open_lake_by_scheme(tmp_path):
    assert isinstance(open_lake(Config.model_validate({"storage": {"root": str(tmp_path)}})), LocalLake)
    with pytest.raises(StorageError, match="no storage backend for 'gs://'"):
        open_lake(Config.model_validate({"storage": {"root": "gs://b/p"}}))
    saved = dict(LAKE_KINDS)
    try:
        register_lake("mem", lambda root, config: LocalLake(tmp_path / "mem"))
        assert isinstance(open_lake(Config.model_validate({"storage": {"root": "mem://x"}})), LocalLake)
    finally:
        LAKE_KINDS.clear()
        LAKE_KINDS.update(saved)
