"""A partitioned model built in time slices: every slice's rows stream, slice after slice, into the
partition's one file (daedalus/build/materializations/partitioned.py `write_stream`). The toy's
trades lie in the first and the last minutes of the day, so of 24 one-hour slices the first and the
last hold rows and the 22 between them none."""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from toy import Toy, make_toy, trade_rows

from daedalus.build import build
from daedalus.build.materializations import partitioned
from daedalus.errors import BuildError

DAY = "2024-01-01"
PID = f"exchange=x/symbol=BTC%2FUSDT/date={DAY}"
SLICED = "{{ config(materialized='partitioned', partition_by=['exchange', 'symbol', 'date'], tags=['toy'],"


def sliced_toy(tmp_path: Path, where: str = "true") -> Toy:
    """The toy with silver.toy_trades sliced by ts (and its rows filtered by `where`)."""
    toy = make_toy(tmp_path)
    toy.write_bronze("x", DAY, trade_rows("x", "BTC/USDT", DAY, n=40))
    model = toy.project / "sql" / "silver" / "toy_trades.sql"
    text = model.read_text()
    assert text.startswith(SLICED)
    text = text.replace(SLICED, SLICED + " slice_by='ts',", 1)
    model.write_text(text.replace("QUALIFY", f"AND {where}\nQUALIFY", 1))
    return toy


def data_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.parquet") if "toy_trades" in p.as_posix())


def test_slices_stream_in_order_into_one_file_on_the_copys_thread(tmp_path: Path, monkeypatch) -> None:
    toy = sliced_toy(tmp_path)
    pulled: list[tuple[int, int]] = []  # (thread, rows) of every batch a slice gave the COPY
    start = partitioned._slice_reader

    def watched(con, tz, sql):
        cur, reader, names = start(con, tz, sql)

        def batches():
            for b in reader:
                pulled.append((threading.get_ident(), b.num_rows))
                yield b

        return cur, pa.RecordBatchReader.from_batches(reader.schema, batches()), names

    monkeypatch.setattr(partitioned, "_slice_reader", watched)
    cfg = toy.config(**{"etl.slice_hours": 1, "duckdb.threads": 1})
    run = build(cfg, select="toy_trades", catalog=False, udfs=False)
    assert all(t.passed for t in run.tests)
    files = data_files(toy.root)
    assert [f.relative_to(toy.root).as_posix() for f in files] == [f"silver/toy_trades/{PID}/data.parquet"]
    sliced = pq.read_table(files[0])
    assert sum(n for _, n in pulled) == sliced.num_rows == 40
    # the batches were made as the writer asked for them, on the thread running the COPY (with one
    # DuckDB thread: the caller's), not read ahead by a pyarrow scanner on a thread of its own
    assert {t for t, _ in pulled} == {threading.get_ident()}

    monkeypatch.setattr(partitioned, "_slice_reader", start)
    build(
        toy.config(**{"etl.slice_hours": 24}),
        select="toy_trades",
        catalog=False,
        udfs=False,
        full_refresh=True,
    )
    whole = pq.read_table(data_files(toy.root)[0])
    assert sliced.equals(whole)  # the rows in order_by order, as the day built in one query
    assert pq.ParquetFile(files[0]).schema.equals(pq.ParquetFile(data_files(toy.root)[0]).schema)


def test_a_partition_of_empty_slices_is_one_typed_empty_file(tmp_path: Path) -> None:
    toy = sliced_toy(tmp_path, where="price < 0")
    build(toy.config(**{"etl.slice_hours": 1}), select="toy_trades", catalog=False, udfs=False)
    (f,) = data_files(toy.root)
    table = pq.read_table(f)
    assert table.num_rows == 0
    got = duckdb.connect().execute(f"DESCRIBE SELECT * FROM read_parquet('{f}')").fetchall()
    assert [(r[0], r[1]) for r in got][:5] == [
        ("exchange", "VARCHAR"),
        ("symbol", "VARCHAR"),
        ("date", "DATE"),
        ("ts", "TIMESTAMP WITH TIME ZONE"),
        ("trade_id", "VARCHAR"),
    ]


def test_a_slice_failing_after_others_streamed_fails_the_partition_and_leaves_no_file(
    tmp_path: Path, monkeypatch
) -> None:
    # the last slice (23:00-24:00) fails; the first one's rows are in the COPY by then
    toy = sliced_toy(tmp_path, where="CASE WHEN hour(ts) = 23 THEN error('late slice fails') ELSE true END")
    given: list[int] = []
    start = partitioned._slice_reader

    def watched(con, tz, sql):
        cur, reader, names = start(con, tz, sql)
        batches = (given.append(b.num_rows) or b for b in reader)
        return cur, pa.RecordBatchReader.from_batches(reader.schema, batches), names

    monkeypatch.setattr(partitioned, "_slice_reader", watched)
    with pytest.raises(BuildError) as e:
        build(toy.config(**{"etl.slice_hours": 1}), select="toy_trades", catalog=False, udfs=False)
    assert sum(given) > 0  # the failure came mid-stream
    (line,) = [x for x in str(e.value).splitlines() if "late slice fails" in x]
    assert "silver.toy_trades" in line and PID in line, line
    assert data_files(toy.root) == []  # nothing staged, nothing published
    assert not (toy.root / "silver" / "toy_trades").exists() or not any(
        (toy.root / "silver" / "toy_trades").rglob("*.parquet")
    )


def test_a_local_partition_is_written_in_row_groups_of_row_group_rows(tmp_path: Path) -> None:
    """The stream's local writer (pyarrow's) cuts storage.row_group_rows per row group, the last one
    shorter, and its file reads back as the whole-day COPY's: values, order, types."""
    toy = make_toy(tmp_path)
    toy.write_bronze("x", DAY, trade_rows("x", "BTC/USDT", DAY, n=2500))
    model = toy.project / "sql" / "silver" / "toy_trades.sql"
    model.write_text(model.read_text().replace(SLICED, SLICED + " slice_by='ts',", 1))
    build(
        toy.config(**{"etl.slice_hours": 1, "storage.row_group_rows": 1024}), select="toy_trades", udfs=False
    )
    (f,) = data_files(toy.root)
    meta = pq.ParquetFile(f).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [1024, 1024, 452]
    sliced = pq.read_table(f)
    describe = f"DESCRIBE SELECT * FROM read_parquet('{f}')"
    types = duckdb.connect().execute(describe).fetchall()
    build(toy.config(**{"etl.slice_hours": 24}), select="toy_trades", udfs=False, full_refresh=True)
    (whole,) = data_files(toy.root)
    assert whole == f  # the whole day, one COPY
    assert sliced.equals(pq.read_table(whole)) and sliced.num_rows == 2500
    assert duckdb.connect().execute(describe).fetchall() == types
