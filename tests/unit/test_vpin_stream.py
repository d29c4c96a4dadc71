"""The streamed VPIN rows (udfs/vpin_stream.py) equal the one-shot `daedalus_vpin_buckets` over the day's
trades gathered by `list(... ORDER BY ts, TRY_CAST(trade_id AS HUGEINT) NULLS LAST, trade_id)` (the
model before the stream), bit for bit, whatever the input batches: trades sharing a ts cut across batch
boundaries, ids that order differently as text, as BIGINT (silver.trades' file order) and as HUGEINT,
carried state, auto V and bvc."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daedalus.udfs import vpin_stream
from daedalus.udfs.columns import VpinParams, vpin_params_sql
from daedalus.udfs.register import VPIN_BUCKETS, register_all

DAY = dt.datetime(2024, 1, 2, tzinfo=dt.UTC)
OUT = [f.name for f in vpin_stream.SCHEMA if f.name not in ("exchange", "symbol")]
IDS = ["7", "10", "9", "0010", "-3", str(2**63 + 5), str(2**63 + 1), str(2**64), "a", "B", "x9", "é", "9x"]
PARAMS = [
    VpinParams(25.0, 3, False, 50),
    VpinParams(40.0, 2, True, 3),
    VpinParams(None, 3, False, 50),
    VpinParams(None, 2, True, 2),
]


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    c.execute("SET TimeZone = 'UTC'")
    register_all(c)
    return c


def _load(con: duckdb.DuckDBPyConnection, trades: list[tuple[int, str, bool, float, float]]) -> None:
    con.execute("DROP TABLE IF EXISTS tr")
    con.execute(
        "CREATE TABLE tr (exchange VARCHAR, symbol VARCHAR, ts TIMESTAMPTZ, trade_id VARCHAR, side VARCHAR, "
        "amount DOUBLE, price DOUBLE)"
    )
    if trades:
        con.executemany(
            "INSERT INTO tr VALUES ('x', 'A/B', $1, $2, $3, $4, $5)",
            [[DAY + dt.timedelta(seconds=s), i, "buy" if b else "sell", a, p] for s, i, b, a, p in trades],
        )


def _state(con: duckdb.DuckDBPyConnection, carried: dict[str, Any] | None) -> None:
    con.execute("DROP TABLE IF EXISTS st")
    con.execute(
        "CREATE TABLE st (exchange VARCHAR, symbol VARCHAR, state_f DOUBLE[], state_i BIGINT[], "
        "recent_imbalance DOUBLE[], recent_volume DOUBLE[], recent_dp DOUBLE[])"
    )
    if carried is not None:
        con.execute(
            "INSERT INTO st VALUES ('x', 'A/B', $1, $2, $3, $4, $5)",
            [carried[k] for k in vpin_stream.STATE_FIELDS],
        )


def _one_shot(con: duckdb.DuckDBPyConnection, p: VpinParams, day: dt.datetime = DAY) -> list[dict[str, Any]]:
    """The model before the stream: one list per series, one UDF call, UNNEST."""
    start = f"TIMESTAMPTZ '{day.isoformat()}'"
    rows = con.execute(f"""
        WITH series AS (
            SELECT exchange, symbol,
                list({{'ts': ts, 'amount': amount, 'is_buy': side = 'buy', 'price': price}}
                     ORDER BY ts, TRY_CAST(trade_id AS HUGEINT) NULLS LAST, trade_id) AS trades
            FROM tr GROUP BY exchange, symbol),
        computed AS (
            SELECT {VPIN_BUCKETS}(s.trades, c.state_f, c.state_i, c.recent_imbalance, c.recent_volume,
                                  c.recent_dp, {start}, {vpin_params_sql(p)}) AS r
            FROM series s LEFT JOIN st c USING (exchange, symbol)),
        b AS (
            SELECT unnest(r.kind) AS kind, unnest(r.ts) AS ts, unnest(r.bucket_index) AS bucket_index,
                unnest(r.bucket_volume) AS bucket_volume, unnest(r.buy_volume) AS buy_volume,
                unnest(r.sell_volume) AS sell_volume, unnest(r.vpin) AS vpin, r.state_f AS s_f,
                r.state_i AS s_i, r.recent_imbalance AS s_imb, r.recent_volume AS s_vol, r.recent_dp AS s_dp
            FROM computed)
        SELECT kind, ts, bucket_index, bucket_volume, buy_volume, sell_volume, vpin,
            CASE WHEN kind = 'state' THEN s_f END AS state_f, CASE WHEN kind = 'state' THEN s_i END AS state_i,
            CASE WHEN kind = 'state' THEN s_imb END AS recent_imbalance,
            CASE WHEN kind = 'state' THEN s_vol END AS recent_volume,
            CASE WHEN kind = 'state' THEN s_dp END AS recent_dp
        FROM b""").to_arrow_table()
    return rows.to_pylist()


def _input(con: duckdb.DuckDBPyConnection, cuts: list[int]) -> list[pa.RecordBatch]:
    """The model's input rows in silver.trades' file order (ts, trade_seq BIGINT, trade_id), state first,
    cut into batches at `cuts`."""
    table = con.execute("""
        SELECT * FROM (
        SELECT exchange, symbol, 0 AS tag, NULL::TIMESTAMPTZ AS ts, NULL::DOUBLE AS amount,
            NULL::BOOLEAN AS is_buy, NULL::DOUBLE AS price, NULL::VARCHAR AS trade_id, NULL::HUGEINT AS tie_num,
            state_f, state_i, recent_imbalance, recent_volume, recent_dp
        FROM st
        UNION ALL
        SELECT exchange, symbol, 1, ts, amount, side = 'buy', price, trade_id, TRY_CAST(trade_id AS HUGEINT),
            NULL::DOUBLE[], NULL::BIGINT[], NULL::DOUBLE[], NULL::DOUBLE[], NULL::DOUBLE[]
        FROM tr)
        ORDER BY tag, ts, TRY_CAST(trade_id AS BIGINT) NULLS LAST, trade_id""").to_arrow_table()
    edges = sorted({0, table.num_rows, *(c % (table.num_rows + 1) for c in cuts)})
    return [b for a, z in zip(edges, edges[1:], strict=False) for b in table.slice(a, z - a).to_batches()]


def _streamed(batches: list[pa.RecordBatch], p: VpinParams) -> list[dict[str, Any]]:
    params = {"params": dataclasses.asdict(p), "start": DAY.isoformat()}
    out = list(vpin_stream.vpin_stream(iter(batches), params))
    table = pa.Table.from_batches(out, vpin_stream.SCHEMA) if out else vpin_stream.SCHEMA.empty_table()
    return table.select(OUT).to_pylist()


trade = st.tuples(
    st.integers(0, 5400),  # seconds into the day: ties are common, the first hour spans most of it
    st.floats(0.5, 30.0, allow_nan=False).map(lambda a: round(a, 2)),
    st.booleans(),
    st.floats(90.0, 110.0, allow_nan=False),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(trade, min_size=1, max_size=80).flatmap(
        lambda ts: st.tuples(
            st.just(ts),
            st.lists(
                st.sampled_from(IDS + [f"{k}" for k in range(200)]),
                min_size=len(ts),
                max_size=len(ts),
                unique=True,
            ),
        )
    ),
    st.sampled_from(PARAMS),
    st.lists(st.integers(0, 200), max_size=8),
    st.booleans(),
)
def test_stream_equals_one_shot(con, drawn, p: VpinParams, cuts: list[int], carry: bool) -> None:
    rows, ids = drawn
    # ts in few distinct values: many trades share a ts, and batch cuts fall inside those runs
    trades = [(s // 600 * 600, i, b, a, pr) for (s, a, b, pr), i in zip(rows, ids, strict=True)]
    carried = None
    if carry:
        # the state of a day before with a few buckets done
        _load(con, [(-86_400 + 60 * k, str(k), k % 3 == 0, 7.0 + k, 100.0 + k % 5) for k in range(40)])
        _state(con, None)
        before = _one_shot(con, p, DAY - dt.timedelta(days=1))[-1]
        carried = {k: before[k] for k in vpin_stream.STATE_FIELDS}
    _load(con, trades)
    _state(con, carried)
    want = _one_shot(con, p)
    assert want and want[-1]["kind"] == "state"
    assert _streamed(_input(con, cuts), p) == want


def test_trades_out_of_ts_order_raise(con) -> None:
    _load(con, [(10, "1", True, 5.0, 100.0), (20, "2", False, 5.0, 100.0), (30, "3", True, 5.0, 100.0)])
    _state(con, None)
    batches = _input(con, [2])
    swapped = [batches[1], batches[0]]  # the last trade first
    with pytest.raises(ValueError, match="not in ts order"):
        _streamed(swapped, PARAMS[0])


def test_series_without_trades_gives_no_rows(con) -> None:
    _load(con, [])
    _state(
        con,
        {
            "state_f": [0.0] * 7,
            "state_i": [-1, 0, 0, 0, 0],
            "recent_imbalance": [],
            "recent_volume": [],
            "recent_dp": [],
        },
    )
    assert _streamed(_input(con, []), PARAMS[0]) == []


@pytest.mark.parametrize("every", [1, 2, 3, 5])
@pytest.mark.parametrize("p", [VpinParams(4.0, 3, False, 50), VpinParams(40.0, 2, True, 2)])
def test_one_ts_run_cut_anywhere(con, every: int, p: VpinParams) -> None:
    # every id at one ts (their file order and the model's order differ), between trades at other ts;
    # buckets of 4 complete and split inside the run, so its order shows in buy/sell volumes; in bvc
    # the run's last trade is its bar's close
    trades = [(60 * k, f"{k}", k % 2 == 0, 9.0, 100.0 + k % 3) for k in range(6)]
    trades += [(400, i, k % 2 == 0, 3.0 + k, 100.0 + k / 2) for k, i in enumerate(IDS)]
    # the last of its run in file order (no BIGINT) goes first in the model's
    trades += [(600, "500", True, 3.0, 100.0), (600, str(-(2**63) - 1), False, 5.0, 102.0)]
    trades += [(800 + k, f"{100 + k}", k % 2 == 1, 11.0, 99.0) for k in range(6)]
    _load(con, trades)
    _state(con, None)
    n = len(trades) + 1
    want = _one_shot(con, p)
    assert len(want) > 4
    assert _streamed(_input(con, list(range(0, n, every))), p) == want


def test_kept_trades_hold_no_input_batch(con) -> None:
    # A numpy view of an input column keeps its whole batch alive (every column of it: trade ids,
    # exchange, symbol, the NULL state lists): ~100 MB more for a 24 h symbol-day's 860 k trades.
    _load(con, [(k, str(k), k % 2 == 0, 1.0 + k, 100.0 + k) for k in range(50)])
    _state(con, None)
    batches = _input(con, [20])
    s = vpin_stream._Series(("x", "A/B"))
    spans = []
    for batch in batches:
        if batch.num_rows:
            s.add_trades(batch)
        spans += [
            (b.address, b.address + b.size) for c in batch.columns for b in c.buffers() if b is not None
        ]
    assert s.n == 50
    for part in s.parts:
        for values in part:
            at = values.__array_interface__["data"][0]
            assert not any(lo <= at < hi for lo, hi in spans)
