"""The local writer's row groups are encoded on a thread of their own (partitioned.py `_GroupWriter`):
they land in order, the writer's failure reaches the thread handing it groups, and a failure on the
handing side still leaves every group handed over written."""

from __future__ import annotations

import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from daedalus.build.materializations.partitioned import _GroupWriter, _write_local

SCHEMA = pa.schema([("i", pa.int64()), ("s", pa.string())])


def _batch(lo: int, n: int) -> pa.RecordBatch:
    return pa.record_batch(
        [pa.array(range(lo, lo + n)), pa.array([f"r{k}" for k in range(lo, lo + n)])], SCHEMA
    )


def test_groups_are_written_in_order_off_the_handing_thread(tmp_path, monkeypatch):
    path = tmp_path / "x.parquet"
    threads: set[str] = set()
    real = pq.ParquetWriter.write_table

    def spy(self, table, row_group_size=None):
        threads.add(threading.current_thread().name)
        return real(self, table, row_group_size=row_group_size)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", spy)
    n = _write_local(str(path), SCHEMA, iter([_batch(k * 700, 700) for k in range(10)]), 1024)
    assert n == 7000
    f = pq.ParquetFile(path)
    assert [f.metadata.row_group(g).num_rows for g in range(f.num_row_groups)] == [1024] * 6 + [856]
    assert f.read().column("i").to_pylist() == list(range(7000))
    assert threads == {"daedalus-parquet-writer"}


def test_a_failed_write_is_raised_to_the_handing_thread(tmp_path):
    with pq.ParquetWriter(tmp_path / "x.parquet", SCHEMA) as writer:
        groups = _GroupWriter(writer, 1024)
        with pytest.raises(ValueError, match="schema"), groups:
            groups.put(pa.table({"other": [1, 2]}))  # not the file's schema: the writer thread fails
            groups.put(pa.Table.from_batches([_batch(0, 10)]))  # waits for it, then raises its error
        assert not groups._thread.is_alive()


def test_a_failure_while_handing_leaves_the_handed_groups_written(tmp_path):
    path = tmp_path / "x.parquet"

    def stream():
        yield _batch(0, 1024)
        yield _batch(1024, 1024)
        raise RuntimeError("the query failed")

    with pytest.raises(RuntimeError, match="the query failed"):
        _write_local(str(path), SCHEMA, stream(), 1024)
    assert pq.read_table(path).column("i").to_pylist() == list(range(2048))
