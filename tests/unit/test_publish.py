"""daedalus/build/publish.py: staged paths, the rename into place, retirement to `_trash/`, purge by age."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from daedalus.build.publish import move_into_place, normalize_sql, purge, retire, unstaged
from daedalus.lake import FileInfo, LocalLake
from daedalus.lake.manifest import Manifest, PartitionState, files_fingerprint


@pytest.mark.parametrize(
    ("path", "want"),
    [
        ("_staging/1733140000-0123456789/gold/m/x=1/data.parquet", "gold/m/x=1/data.parquet"),
        ("gold/m/x=1/data.parquet", "gold/m/x=1/data.parquet"),
        ("gold/_staging/x/data.parquet", "gold/_staging/x/data.parquet"),  # not a staging batch
    ],
)
def test_unstaged(path: str, want: str) -> None:
    assert unstaged(path) == want


def test_normalize_sql_spells_staged_urls_as_published() -> None:
    sql = "read_parquet(['/lake/_staging/1733140000-0123456789/gold/m/x=1/data.parquet', '/lake/gold/m/x=2/data.parquet'])"
    assert (
        normalize_sql(sql)
        == "read_parquet(['/lake/gold/m/x=1/data.parquet', '/lake/gold/m/x=2/data.parquet'])"
    )
    staged = [FileInfo("_staging/1733140000-0123456789/gold/m/x=1/data.parquet", 10, 5)]
    assert files_fingerprint(staged) == files_fingerprint([FileInfo("gold/m/x=1/data.parquet", 10, 5)])


def _write(root: Path, rel: str, data: bytes = b"x") -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(data)


def test_publish_renames_over_the_partition_file_and_retires_the_rest(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    _write(tmp_path, "gold/m/x=1/data.parquet", b"old")
    _write(tmp_path, "gold/m/x=1/part-000-legacy.parquet", b"legacy")
    staged = "_staging/1733140000-0123456789/gold/m/x=1/data.parquet"
    _write(tmp_path, staged, b"new")
    state = PartitionState(keys={"x": "1"}, files=[FileInfo(staged, 3, 7)], fingerprint="f")
    move_into_place(lake, state)
    assert state.files == [FileInfo("gold/m/x=1/data.parquet", 3, 7)]
    assert (tmp_path / "gold/m/x=1/data.parquet").read_bytes() == b"new"
    m = Manifest(lake)
    m.pending_deletions = [
        {"path": "gold/m/x=1/part-000-legacy.parquet", "replaced_at": time.time()},
        {"path": "_staging/1-ab/gold/m/x=2/data.parquet", "replaced_at": time.time()},
    ]
    assert len(retire(lake, m)) == 2
    assert m.pending_deletions == []
    assert sorted(p.name for p in (tmp_path / "gold").rglob("*.parquet")) == ["data.parquet"]
    trashed = list((tmp_path / "_trash").rglob("*.parquet"))
    assert [p.read_bytes() for p in trashed] == [b"legacy"]
    assert trashed[0].as_posix().endswith("/gold/m/x=1/part-000-legacy.parquet")


def test_purge_deletes_trash_after_the_grace_period_and_dead_staging_after_a_day(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    now = 1_800_000_000
    _write(tmp_path, f"_trash/{now - 601}-aa/gold/m/a.parquet")
    _write(tmp_path, f"_trash/{now - 60}-bb/gold/m/b.parquet")
    _write(tmp_path, f"_staging/{now - 25 * 3600}-cc/gold/m/c.parquet")
    _write(tmp_path, f"_staging/{now - 3600}-dd/gold/m/d.parquet")
    gone = purge(lake, retain_minutes=10, now=now)
    assert sorted(Path(p).name for p in gone) == ["a.parquet", "c.parquet"]
    assert sorted(p.name for p in tmp_path.rglob("*.parquet")) == ["b.parquet", "d.parquet"]
    assert sorted(Path(p).name for p in purge(lake, retain_minutes=0, now=now)) == ["b.parquet"]
