"""The Arrow wrappers through DuckDB: one call per whole series, vector boundaries crossed both ways
(series longer than 2,048 rows, and more than 2,048 series rows), threads=1 vs threads=4 identical,
NULL handling, idempotent registration."""

from __future__ import annotations

import math
from collections.abc import Iterator

import duckdb
import numpy as np
import pytest

from daedalus.udfs.columns import params_sql, vpin_params_sql
from daedalus.udfs.register import OFI, ORDERBOOK_SEQ, VPIN_BUCKETS, register_all
from daedalus.udfs.series import (
    US,
    Book,
    SeqParams,
    Trades,
    VpinParams,
    VpinState,
    orderbook_sequential,
    vpin_partition,
)

T0 = 1_704_067_200 * US  # 2024-01-01 00:00:00 UTC


def _tables(con: duckdb.DuckDBPyConnection, n_series: int, rows: int, seed: int = 1) -> None:
    """Random books (3 levels a side) and trades for n_series symbols, in tables book/flow."""
    rng = np.random.default_rng(seed)
    sym = np.repeat(np.arange(n_series), rows)
    k = np.tile(np.arange(rows), n_series)
    step = rng.choice([0, 100_000, 200_000, 400_000_000], size=sym.size, p=[0.05, 0.6, 0.349, 0.001])
    ts = T0 + np.cumsum(step) - np.repeat(np.cumsum(step)[::rows] - step[::rows], rows)
    bid = 100.0 + np.round(rng.normal(0, 1, sym.size).cumsum() * 0.01, 2)
    spread = rng.choice([0.01, 0.01, 0.01, 0.02], size=sym.size)
    con.execute(
        "CREATE OR REPLACE TABLE raw AS SELECT * FROM (SELECT unnest($1) AS s, unnest($2) AS k, "
        "unnest($3) AS ts_us, unnest($4) AS bid, unnest($5) AS sp, unnest($6) AS qb, unnest($7) AS qa, "
        "unnest($8) AS brk)",
        [
            sym.tolist(),
            k.tolist(),
            ts.tolist(),
            bid.tolist(),
            spread.tolist(),
            rng.integers(1, 9, sym.size).astype(float).tolist(),
            rng.integers(1, 9, sym.size).astype(float).tolist(),
            (rng.random(sym.size) < 0.002).tolist(),
        ],
    )
    con.execute("""
        CREATE OR REPLACE TABLE book AS
        SELECT 'S' || s AS symbol, make_timestamp(ts_us)::TIMESTAMPTZ AS ts, k::BIGINT AS seq,
            [{'price': bid, 'size': qb}, {'price': bid - 0.01, 'size': qb + 1}, {'price': bid - 0.02, 'size': 2.0}] AS bids,
            [{'price': bid + sp, 'size': qa}, {'price': bid + sp + 0.01, 'size': qa + 2}] AS asks,
            false AS crossed, brk AS break_before
        FROM raw""")
    con.execute("""
        CREATE OR REPLACE TABLE flow AS
        SELECT symbol, ts + INTERVAL 50 MILLISECOND AS ts, seq AS trade_id,
            (CASE WHEN seq % 3 = 0 THEN 0.5 ELSE 0.0 END)::DOUBLE AS buy,
            (CASE WHEN seq % 3 = 1 THEN 0.25 ELSE 0.0 END)::DOUBLE AS sell
        FROM book WHERE seq % 3 < 2""")


SEQ_SQL = f"""
WITH p AS (SELECT symbol, ts, seq, crossed, break_before, (bids[1].price + asks[1].price) / 2 AS mid,
                  asks[1].price - bids[1].price AS spread,
                  {OFI}(bids, asks, lag(bids) OVER w, lag(asks) OVER w, 10, 0.5) AS pair
           FROM book WINDOW w AS (PARTITION BY symbol ORDER BY ts, seq)),
     b AS (SELECT symbol, list({{'ts': ts, 'seq': seq, 'crossed': crossed, 'break_before': break_before, 'mid': mid,
                                 'spread': spread, 'ofi': pair.ofi, 'mlofi': pair.mlofi, 'trade_breaks': 0}} ORDER BY ts, seq) AS snaps
           FROM p GROUP BY symbol),
     t AS (SELECT symbol, list({{'ts': ts, 'buy': buy, 'sell': sell, 'breaks': 0}} ORDER BY ts, trade_id) AS trades FROM flow GROUP BY symbol),
     c AS (SELECT b.symbol, {ORDERBOOK_SEQ}(b.snaps, t.trades, NULL, {params_sql(SeqParams(horizons=[5, 60]))}) AS r
           FROM b LEFT JOIN t USING (symbol))
SELECT symbol, epoch_us(unnest(r.ts)) AS ts, unnest(r.seq) AS seq, unnest(r.ofi) AS ofi, unnest(r.mlofi) AS mlofi,
       unnest(r.log_return) AS lr, unnest(r.ofi_sum[2]) AS ofi_60, unnest(r.rv[1]) AS rv_5,
       unnest(r.tfi[1]) AS tfi_5, unnest(r.trade_volume[2]) AS vol_60, unnest(r.kyle_lambda) AS kyle,
       unnest(r.spread_pctile) AS pct, unnest(r.spread_regime) AS regime
FROM c ORDER BY symbol, ts, seq
"""


@pytest.fixture()
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    c = duckdb.connect()
    register_all(c)
    yield c
    # Closed here, not whenever the garbage collector drops it: destroying a connection whose last
    # result is still streaming cancels its tasks while holding the GIL, and a worker thread inside
    # a Python UDF waits for that GIL forever (seen as a hang in teardown with threads = 4).
    c.close()


def test_registration_is_idempotent(con) -> None:
    register_all(con)
    names = {
        r[0]
        for r in con.execute(
            "SELECT function_name FROM duckdb_functions() WHERE function_name LIKE 'daedalus_%'"
        ).fetchall()
    }
    assert {OFI, ORDERBOOK_SEQ, VPIN_BUCKETS} <= names


@pytest.mark.slow
def test_long_series_through_duckdb_equals_direct_call_for_any_threads(con) -> None:
    _tables(con, n_series=2, rows=5000)
    con.execute("SET threads = 1")
    one = con.execute(SEQ_SQL).fetchall()
    con.execute("SET threads = 4")
    four = con.execute(SEQ_SQL).fetchall()
    assert len(one) == 10_000
    assert one == four  # identical, NULLs included (no NaN ever reaches SQL)
    # the same series straight through numpy
    rows = con.execute(
        "SELECT epoch_us(ts), bids[1].price, bids[1].size, asks[1].price, asks[1].size, break_before "
        "FROM book WHERE symbol = 'S1' ORDER BY ts, seq"
    ).fetchall()
    full = con.execute(
        "SELECT epoch_us(ts), [b.price for b in bids], [b.size for b in bids], "
        "[a.price for a in asks], [a.size for a in asks], break_before FROM book WHERE symbol = 'S1' "
        "ORDER BY ts, seq"
    ).fetchall()
    bo = np.concatenate(([0], np.cumsum([len(r[1]) for r in full])))
    ao = np.concatenate(([0], np.cumsum([len(r[3]) for r in full])))
    book = Book(
        np.array([r[0] for r in full], np.int64),
        np.concatenate([r[1] for r in full]),
        np.concatenate([r[2] for r in full]),
        bo.astype(np.int64),
        np.concatenate([r[3] for r in full]),
        np.concatenate([r[4] for r in full]),
        ao.astype(np.int64),
        np.zeros(len(full), bool),
        np.array([r[5] for r in full], bool),
    )
    fl = con.execute(
        "SELECT epoch_us(ts), buy, sell FROM flow WHERE symbol = 'S1' ORDER BY ts, trade_id"
    ).fetchall()
    trades = Trades(
        np.array([r[0] for r in fl], np.int64), np.array([r[1] for r in fl]), np.array([r[2] for r in fl])
    )
    direct = orderbook_sequential(book, trades, SeqParams(horizons=(5, 60)))
    got = [r for r in one if r[0] == "S1"]
    assert len(got) == len(rows) == 5000

    def same(col: np.ndarray, idx: int) -> None:
        for a, r in zip(col, got, strict=True):
            assert (r[idx] is None) if math.isnan(a) else (r[idx] == a)

    same(direct["ofi"], 3)
    same(direct["mlofi"], 4)
    same(direct["ofi_sum"][1], 6)
    same(direct["tfi"][0], 8)
    same(direct["kyle_lambda"], 10)
    assert sum(r[10] is not None for r in got) > 1000  # the long windows really are exercised


@pytest.mark.slow
def test_many_series_cross_vector_boundaries(con) -> None:
    _tables(con, n_series=2500, rows=3, seed=2)  # 2,500 series rows > one 2,048-row vector
    con.execute("SET threads = 4")
    out = con.execute(SEQ_SQL).fetchall()
    assert len(out) == 7500
    by = {}
    for r in out:
        by.setdefault(r[0], []).append(r)
    assert len(by) == 2500
    for rows in by.values():
        assert rows[0][3] is None and rows[0][5] is None  # first row of every series: NULL
        assert [r[2] for r in rows] == [0, 1, 2]


def test_ofi_row_wise_udf_hand_case_and_nulls(con) -> None:
    # bid up two ticks (+5), ask same price (−7 + 3): e = 1; no predecessor → NULL
    got = con.execute(f"""SELECT {OFI}([{{'price': 102.0, 'size': 5.0}}], [{{'price': 104.0, 'size': 7.0}}],
                                      [{{'price': 100.0, 'size': 2.0}}], [{{'price': 104.0, 'size': 3.0}}], 10, 0.5),
                                 {OFI}([{{'price': 102.0, 'size': 5.0}}], [{{'price': 104.0, 'size': 7.0}}], NULL, NULL, 10, 0.5)
                       """).fetchone()
    assert got == ({"ofi": 1.0, "mlofi": 1.0}, {"ofi": None, "mlofi": None})


def test_null_inputs(con) -> None:
    got = con.execute(
        f"SELECT {ORDERBOOK_SEQ}(NULL, NULL, NULL, {params_sql(SeqParams(horizons=[5]))}) IS NULL"
    ).fetchone()
    assert got == (True,)


def test_vpin_udf_carries_state_like_the_kernel(con) -> None:
    rng = np.random.default_rng(4)
    k = 3000
    day = 86_400 * US
    ts = np.sort(T0 + rng.integers(0, 2 * day, k))
    size = rng.integers(1, 20, k).astype(float)
    buy = rng.random(k) < 0.5
    con.execute(
        "CREATE TABLE tr AS SELECT make_timestamp(unnest($1))::TIMESTAMPTZ AS ts, unnest($2) AS amount, "
        "unnest($3) AS is_buy, unnest($4) AS tid",
        [ts.tolist(), size.tolist(), buy.tolist(), list(range(k))],
    )
    con.execute("SET threads = 4")
    sql = f"""
      WITH d AS (SELECT list({{'ts': ts, 'amount': amount, 'is_buy': is_buy, 'price': 100.0}} ORDER BY ts, tid) AS l
                 FROM tr WHERE ts >= make_timestamp($1)::TIMESTAMPTZ AND ts < make_timestamp($2)::TIMESTAMPTZ)
      SELECT {{'kind': r.kind, 'vpin': r.vpin, 'state_f': r.state_f, 'state_i': r.state_i,
               'recent_imbalance': r.recent_imbalance, 'recent_volume': r.recent_volume, 'recent_dp': r.recent_dp}}
      FROM (SELECT {VPIN_BUCKETS}(l, $3, $4, $5, $6, $7, make_timestamp($1)::TIMESTAMPTZ, {vpin_params_sql(VpinParams(25.0, 7))}) AS r
            FROM d)"""
    # fetchall, not fetchone: a result left streaming keeps UDF tasks alive (see the fixture)
    r0 = con.execute(sql, [T0, T0 + day, None, None, None, None, None]).fetchall()[0][0]
    r1 = con.execute(
        sql,
        [
            T0 + day,
            T0 + 2 * day,
            r0["state_f"],
            r0["state_i"],
            r0["recent_imbalance"],
            r0["recent_volume"],
            r0["recent_dp"],
        ],
    ).fetchall()[0][0]
    whole = vpin_partition(ts, size, buy, np.full(k, 100.0), VpinState(), VpinParams(25.0, 7), T0)
    got = [
        v
        for kind, v in zip(r0["kind"] + r1["kind"], r0["vpin"] + r1["vpin"], strict=True)
        if kind == "bucket"
    ]
    want = [None if math.isnan(v) else v for v in whole.vpin]
    assert got == want and len(got) > 100
    assert r1["kind"][0] == "open" and r1["vpin"][0] == got[len([x for x in r0["kind"] if x == "bucket"]) - 1]
