"""A Parquet file cut short: its complete row groups come back, exactly (daedalus/land/footerless.py)."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from daedalus.collector.schemas import SCHEMAS
from daedalus.land.footerless import recover

T0 = 1_723_075_200_000_000_000


def _book(n: int) -> pa.Table:
    rows = [
        {
            "collected_at": T0 // 1_000_000 + i,
            "capture_ts": T0 + i * 1_000_000,
            "exchange": "binance",
            "symbol": ("BTC/USDT", "ETH/USDT")[i % 2],
            "conn_id": "c1",
            "seq": i,
            "timestamp": T0 + i * 1_000_000,
            "kind": "delta" if i % 7 else "snapshot",
            "first_update_id": i,
            "last_update_id": i,
            "prev_update_id": i - 1 if i % 5 else None,
            "bids": [{"price": 100.0 - k * 0.5 + i, "size": 1.0 + k} for k in range(i % 4)],
            "asks": [] if i % 3 == 0 else [{"price": 101.0 + i, "size": 0.25}],
        }
        for i in range(n)
    ]
    return pa.Table.from_pylist(rows, schema=SCHEMAS["book_updates"])


@pytest.mark.parametrize(
    "options",
    [
        {"compression": "zstd", "use_dictionary": False},
        {"compression": "snappy"},
        {"compression": "none"},
        # several pages per column chunk: a chunk's end is not given by its first page
        {"compression": "zstd", "use_dictionary": False, "data_page_size": 256, "write_batch_size": 8},
    ],
)
def test_complete_row_groups_of_a_cut_file_come_back_exactly(options: dict) -> None:
    table = _book(400)
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=37, **options)
    data = buf.getvalue()
    meta = pq.read_metadata(io.BytesIO(data))
    for cut in (len(data) - 1, len(data) * 2 // 3, len(data) // 3, 100):
        got = recover(data[:cut], SCHEMAS["book_updates"])
        n = sum(t.num_rows for t in got.tables)
        assert n % 37 == 0 or n == 400
        assert pa.concat_tables([table.slice(0, 0), *got.tables]).equals(table.slice(0, n))
        complete = sum(
            1
            for i in range(meta.num_row_groups)
            if (
                meta.row_group(i).column(meta.num_columns - 1).data_page_offset
                + meta.row_group(i).column(meta.num_columns - 1).total_compressed_size
            )
            <= cut
        )
        assert len(got.tables) == complete  # every complete row group, none more
    assert recover(data[: len(data) - 1], SCHEMAS["book_updates"]).rows_lost_at_least == 0


def test_not_parquet_recovers_nothing() -> None:
    got = recover(b"garbage" * 100, SCHEMAS["trades"])
    assert got.tables == [] and got.bytes_lost == 700
