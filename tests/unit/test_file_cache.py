"""A build's connection to a local lake keeps no copy of what it read (daedalus/lake/base.py): DuckDB's
external file cache held file bytes in its buffer pool until memory_limit evicted them, resident memory
that the OS page cache already holds for a local file (−70 to −100 MB peak RSS of a Pi-profile build)."""

from __future__ import annotations

from pathlib import Path

import duckdb

from daedalus.config import load_config
from daedalus.duck import connect

CACHED = "SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory() WHERE tag = 'EXTERNAL_FILE_CACHE'"


def _read_twice(con: duckdb.DuckDBPyConnection, path: Path) -> int:
    for _ in range(2):
        con.execute(f"SELECT sum(r) FROM read_parquet('{path}')").fetchall()
    return con.execute(CACHED).fetchone()[0]


def test_a_local_lake_connection_caches_no_file_bytes(tmp_path: Path) -> None:
    path = tmp_path / "lake" / "silver" / "x.parquet"
    path.parent.mkdir(parents=True)
    duckdb.execute(f"COPY (SELECT range AS i, random() AS r FROM range(500000)) TO '{path}' (FORMAT parquet)")
    # what DuckDB does by default, so the test can tell the difference
    assert _read_twice(duckdb.connect(), path) > 0
    config = load_config(
        None, overrides={"storage.root": str(tmp_path / "lake"), "duckdb.temp_directory": str(tmp_path / "t")}
    )
    con = connect(config, udfs=False)
    try:
        assert _read_twice(con, path) == 0
    finally:
        con.close()
