"""Measure DuckLake 1.5.5 against what issue 15 asks of the lake's table layer; prints what it finds.

    python benchmarks/ducklake_eval.py [--rows 200000]

Needs `duckdb-extension-ducklake==1.5.5` and `duckdb-extension-sqlite-scanner==1.5.5` (both load
offline from their wheels, like httpfs). Each check is a real DuckLake table in a temporary folder,
partitioned like Daedalus' silver (exchange, symbol, date). The verdicts are in docs/ducklake.md.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb


def ext(name: str) -> str:
    mod = __import__(f"duckdb_extension_{name}")
    return str(
        Path(mod.__file__).parent / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    )


def connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(f"LOAD '{ext('ducklake')}'")
    con.execute(f"LOAD '{ext('sqlite_scanner')}'")
    return con


def make(con: duckdb.DuckDBPyConnection, meta: str, data: str, rows: int) -> None:
    con.execute(f"ATTACH 'ducklake:{meta}' AS lake (DATA_PATH '{data}')")
    con.execute(
        "CREATE TABLE lake.trades (exchange VARCHAR, symbol VARCHAR, date DATE, ts TIMESTAMP, price DOUBLE)"
    )
    con.execute("ALTER TABLE lake.trades SET PARTITIONED BY (exchange, symbol, date)")
    con.execute(f"""INSERT INTO lake.trades SELECT 'x', 'BTC/USDT', DATE '2024-01-01',
                    TIMESTAMP '2024-01-01' + INTERVAL (i) SECOND, 100 + i % 7 FROM range({rows}) t(i)""")


def replace_partition(con: duckdb.DuckDBPyConnection, rows: int) -> None:
    """The rebuild of one partition as DuckLake does it: DELETE + INSERT in one transaction."""
    con.execute("BEGIN")
    con.execute(
        "DELETE FROM lake.trades WHERE exchange = 'x' AND symbol = 'BTC/USDT' AND date = DATE '2024-01-01'"
    )
    con.execute(f"""INSERT INTO lake.trades SELECT 'x', 'BTC/USDT', DATE '2024-01-01',
                    TIMESTAMP '2024-01-01' + INTERVAL (i) SECOND, 200 + i % 7 FROM range({rows}) t(i)""")
    con.execute("COMMIT")


def glob_count(data: str) -> tuple[int, int]:
    files = glob.glob(f"{data}/**/*.parquet", recursive=True)
    if not files:
        return 0, 0
    n = (
        duckdb.connect()
        .execute(f"SELECT count(*) FROM read_parquet('{data}/**/*.parquet', hive_partitioning=false)")
        .fetchone()[0]
    )
    return len(files), n


def check_glob_readers(tmp: Path, rows: int) -> None:
    print("\n## 1. glob readers of the data folder across a partition rebuild")
    con = connect()
    data = str(tmp / "g_data")
    make(con, str(tmp / "g.ducklake"), data, rows)
    print(f"  after the first insert:        files, rows by glob = {glob_count(data)}")
    replace_partition(con, rows + 10)
    print(
        f"  after DELETE+INSERT (commit):  files, rows by glob = {glob_count(data)}   (table: "
        f"{con.execute('SELECT count(*) FROM lake.trades').fetchone()[0]})"
    )
    con.execute("CALL ducklake_expire_snapshots('lake', older_than => now())")
    print(f"  after ducklake_expire_snapshots: files, rows by glob = {glob_count(data)}")
    con.execute("CALL ducklake_cleanup_old_files('lake', cleanup_all => true)")
    print(f"  after ducklake_cleanup_old_files: files, rows by glob = {glob_count(data)}")
    files = sorted(os.path.relpath(f, data) for f in glob.glob(f"{data}/**/*.parquet", recursive=True))
    print(f"  paths: {files}")
    con.close()


def check_time_travel(tmp: Path, rows: int) -> None:
    print("\n## 2. time travel")
    con = connect()
    make(con, str(tmp / "t.ducklake"), str(tmp / "t_data"), rows)
    replace_partition(con, rows + 10)
    snaps = con.execute("SELECT snapshot_id FROM ducklake_snapshots('lake') ORDER BY 1").fetchall()
    for (v,) in snaps:
        try:
            n = con.execute(f"SELECT count(*) FROM lake.trades AT (VERSION => {v})").fetchone()[0]
        except duckdb.Error as e:
            n = str(e).splitlines()[0]
        print(f"  AT (VERSION => {v}): {n}")
    con.close()


HOLDER = r"""
import sys, time
sys.path.insert(0, {here!r})
from ducklake_eval import connect
con = connect()
con.execute("ATTACH 'ducklake:sqlite:{meta}' AS lake (DATA_PATH '{data}', READ_ONLY)")
seen = []
for _ in range(60):
    try:
        seen.append(con.execute("SELECT count(*) FROM lake.trades").fetchone()[0])
    except Exception as e:
        seen.append(type(e).__name__ + ": " + str(e).splitlines()[0][:120])
    time.sleep(0.05)
print(sorted(set(map(str, seen))))
"""


def check_held_connection(tmp: Path, rows: int) -> None:
    print("\n## 3. a reader process holding the lake (SQLite catalog) while another process rebuilds")
    meta, data = str(tmp / "h.sqlite"), str(tmp / "h_data")
    con = connect()
    make(con, f"sqlite:{meta}", data, rows)
    con.close()
    here = str(Path(__file__).resolve().parent)
    reader = subprocess.Popen(
        [sys.executable, "-c", HOLDER.format(here=here, meta=meta, data=data)],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)
    try:
        w = connect()
        w.execute(f"ATTACH 'ducklake:sqlite:{meta}' AS lake (DATA_PATH '{data}')")
        for i in range(3):
            replace_partition(w, rows + 10 * (i + 1))
            time.sleep(0.3)
        w.execute("CALL ducklake_expire_snapshots('lake', older_than => now())")
        w.execute("CALL ducklake_cleanup_old_files('lake', cleanup_all => true)")
        w.close()
        print("  writer: 3 rebuilds + expire + cleanup: ok")
    except Exception as e:  # noqa: BLE001
        print(f"  writer failed: {type(e).__name__}: {str(e).splitlines()[0]}")
    out, _ = reader.communicate(timeout=120)
    print(f"  counts/errors the holder saw: {out.strip()}")


def check_move(tmp: Path, rows: int) -> None:
    print("\n## 4. moving / copying the lake folder (catalog + data side by side)")
    lake = tmp / "m_lake"
    lake.mkdir()
    con = connect()
    make(con, str(lake / "meta.ducklake"), str(lake / "data"), rows)
    path = con.execute(
        "SELECT value FROM __ducklake_metadata_lake.ducklake_metadata WHERE key = 'data_path'"
    ).fetchone()
    rel = con.execute(
        "SELECT DISTINCT path_is_relative FROM __ducklake_metadata_lake.ducklake_data_file"
    ).fetchall()
    print(f"  stored data_path = {path[0] if path else None!r}, data file paths relative to it: {rel}")
    con.close()
    copy = tmp / "m_copy"
    subprocess.run(["cp", "-a", str(lake), str(copy)], check=True)
    con = connect()  # the original changes: does the copy read its own files?
    con.execute(f"ATTACH 'ducklake:{lake}/meta.ducklake' AS lake")
    replace_partition(con, rows + 10)
    con.close()
    con = connect()
    con.execute(f"ATTACH 'ducklake:{copy}/meta.ducklake' AS lake")
    files = con.execute("SELECT DISTINCT data_file FROM ducklake_list_files('lake', 'trades')").fetchall()
    print(
        "  cp -a copy, original rebuilt since: "
        f"{con.execute('SELECT count(*), sum(price) FROM lake.trades').fetchone()} (rows, sum) "
        f"rows (its own: {rows}); it reads {[f[0][: len(str(tmp)) + 8] + '…' for f in files]}"
    )
    con.close()
    moved = tmp / "m_moved"
    shutil.move(str(lake), str(moved))
    for label, attach in (
        ("re-attached, no DATA_PATH", f"ATTACH 'ducklake:{moved}/meta.ducklake' AS lake"),
        (
            "re-attached with the new DATA_PATH",
            f"ATTACH 'ducklake:{moved}/meta.ducklake' AS lake (DATA_PATH '{moved}/data')",
        ),
    ):
        con = connect()
        try:
            con.execute(attach)
            files = con.execute(
                "SELECT DISTINCT data_file FROM ducklake_list_files('lake', 'trades')"
            ).fetchall()
            print(
                f"  moved, {label}: "
                f"{con.execute('SELECT count(*), sum(price) FROM lake.trades').fetchone()} (rows, sum) "
                f"from {[f[0][: len(str(tmp)) + 9] + '…' for f in files]}"
            )
        except Exception as e:  # noqa: BLE001
            print(f"  moved, {label}: {type(e).__name__}: {str(e).splitlines()[0][:160]}")
        con.close()


def check_footprint() -> None:
    print("\n## 5. footprint")
    import psutil

    size = os.path.getsize(ext("ducklake")) + os.path.getsize(ext("sqlite_scanner"))
    proc = psutil.Process()
    before = proc.memory_info().rss
    con = connect()
    after = proc.memory_info().rss
    con.close()
    print(
        f"  extension files: {size / 2**20:.1f} MB (ducklake + sqlite_scanner); RSS after LOAD: "
        f"+{(after - before) / 2**20:.1f} MB"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    args = ap.parse_args()
    print(f"duckdb {duckdb.__version__}, DuckLake from {ext('ducklake')}")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        check_glob_readers(tmp, args.rows)
        check_time_travel(tmp, args.rows)
        check_held_connection(tmp, args.rows)
        check_move(tmp, args.rows)
        check_footprint()


if __name__ == "__main__":
    main()
