"""A build on a full disk: one StorageError line naming what could not be written, and nothing already
written lost. The disk is real: the toy lake's folder is a tmpfs of a few MB (root only; skipped with
the reason otherwise), filled until the kernel answers ENOSPC (test_disk_full.py `fill`)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_disk_full import fill
from test_sliced_stream import DAY, PID, data_files, sliced_toy
from toy import Toy, trade_rows

from daedalus.build import build
from daedalus.build.materializations import partitioned
from daedalus.errors import StorageError

ROWS = 20_000  # a data file of many pages: more than a build frees on the way


@pytest.fixture
def toy_on_small_disk(tmp_path: Path) -> Iterator[Toy]:
    """The sliced toy with its lake on a 6 MB tmpfs, its bronze written there."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a size-limited tmpfs")
    toy = sliced_toy(tmp_path)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(toy.root)], capture_output=True, text=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        toy.write_bronze("x", DAY, trade_rows("x", "BTC/USDT", DAY, n=ROWS))
        yield toy
    finally:
        subprocess.run(["umount", "-l", str(toy.root)], check=False)


def test_a_build_on_a_full_disk_says_so_before_it_starts(toy_on_small_disk: Toy) -> None:
    toy = toy_on_small_disk
    bronze = sorted((toy.root / "bronze").rglob("*.parquet"))
    before = [pq.read_table(f) for f in bronze]
    fill(toy.root)
    with pytest.raises(StorageError) as e:
        build(toy.config(**{"etl.slice_hours": 1}), select="toy_trades", catalog=False, udfs=False)
    (line,) = str(e.value).splitlines()
    assert "build.lock" in line and "No space left on device" in line, line
    assert e.value.exit_code == 5
    assert [pq.read_table(f) for f in bronze] == before  # bronze untouched


def test_a_disk_filling_mid_stream_fails_the_partition_and_keeps_the_published_one(
    toy_on_small_disk: Toy, monkeypatch
) -> None:
    """The disk fills while a sliced partition streams into pyarrow's writer: one line naming the
    model and partition, nothing staged, and the partition published by the build before intact."""
    toy = toy_on_small_disk
    cfg = toy.config(**{"etl.slice_hours": 1})
    build(cfg, select="toy_trades", catalog=False, udfs=False)
    (published,) = data_files(toy.root)
    want = pq.read_table(published)
    assert want.num_rows == ROWS
    start, seen = partitioned._slice_reader, []

    def filling(con, tz, sql):
        seen.append(sql)
        if len(seen) == 12:  # half the day streamed: the disk fills now
            fill(toy.root)
        return start(con, tz, sql)

    monkeypatch.setattr(partitioned, "_slice_reader", filling)
    with pytest.raises(StorageError) as e:
        build(cfg, select="toy_trades", catalog=False, udfs=False, full_refresh=True)
    assert len(seen) == 24  # the stream ran to its end: the writer's footer found the disk full
    (line,) = str(e.value).splitlines()
    assert "silver.toy_trades" in line and PID in line and "No space left on device" in line, line
    assert data_files(toy.root) == [published]  # nothing staged; the published file kept
    assert pq.read_table(published).equals(want)
