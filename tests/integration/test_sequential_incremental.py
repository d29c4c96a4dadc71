"""Day by day = full build = one pass over the whole series, for gold.orderbook_seq and gold.vpin_buckets.

Three synthetic UTC days (daedalus.devkit.synth) with gaps and VPIN buckets in progress at both midnights.
Lake A builds all days in one run with threads=1; lake B builds one day per run, in date order, as
a scheduler would, with threads=4. Both must hold exactly the same rows, and those rows must equal the kernels run once over
each symbol's whole multi-day series: so neither the lookback nor the carried VPIN state loses anything.
"""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import numpy as np
import pytest

from daedalus.build import api
from daedalus.collector.schemas import BREAK_EVENT_TYPES
from daedalus.config import load_config
from daedalus.devkit.synth import generate
from daedalus.udfs.columns import params_sql
from daedalus.udfs.register import register_all
from daedalus.udfs.series import US, VpinParams, VpinState, vpin_partition

pytestmark = pytest.mark.slow

DATES = ["2024-03-01", "2024-03-02", "2024-03-03"]
SYMBOLS = ["BTC/USDT", "ETH/USDT"]
BUCKET_V = 3.0  # fixed for BTC/USDT (many buckets a day); ETH/USDT uses auto


def _lake(root: Path) -> None:
    generate(
        root,
        symbols=SYMBOLS,
        start=DATES[0],
        days=3,
        snapshot_ms=5000,
        levels=5,
        trades_per_sec=0.2,
        gaps_per_day=2,
        seed=11,
    )


def _config(root: Path, threads: int = 1):
    return load_config(
        None,
        {
            "storage.root": str(root),
            "duckdb.temp_directory": str(root / "_tmp"),
            "duckdb.threads": threads,
            "etl.symbols": {"BTC/USDT": {"vpin_bucket_volume": BUCKET_V}},
            "etl.features.horizons": [5, 60, 900],
            "etl.features.vpin_window_buckets": 10,
        },
    )


def _rows(root: Path, model: str, order: str) -> list[tuple]:
    con = duckdb.connect()
    return con.execute(
        f"SELECT * EXCLUDE (ts), epoch_us(ts) AS ts_us FROM read_parquet('{root}/gold/{model}/**/*.parquet', "
        f"hive_partitioning=false) ORDER BY {order}"
    ).fetchall()


@pytest.fixture(scope="module")
def lakes(tmp_path_factory) -> tuple[Path, Path]:
    full = tmp_path_factory.mktemp("full")
    daily = tmp_path_factory.mktemp("daily")
    _lake(full)
    _lake(daily)
    api.build(_config(full), select=["+orderbook_seq"], run_tests=False, catalog=False)
    for d in DATES:
        # threads=4 here, 1 for the full build: the comparison also proves thread-count independence
        api.build(
            _config(daily, threads=4),
            select=["+orderbook_seq"],
            start=d,
            end=d,
            run_tests=False,
            catalog=False,
        )
    return full, daily


def test_day_by_day_equals_full_build(lakes) -> None:
    full, daily = lakes
    for model, order in (
        ("orderbook_seq", "exchange, symbol, ts_us, seq"),
        ("vpin_buckets", "exchange, symbol, ts_us, bucket_index, kind"),
    ):
        a = _rows(full, model, order)
        b = _rows(daily, model, order)
        assert len(a) == len(b) > 0
        assert a == b, model  # exact: same floats to the bit, same NULLs


def test_buckets_straddle_midnight_and_vpin_is_filled(lakes) -> None:
    full, _ = lakes
    con = duckdb.connect()
    g = f"read_parquet('{full}/gold/vpin_buckets/**/*.parquet', hive_partitioning=false)"
    states = con.execute(
        f"SELECT symbol, date, state_f[2] + state_f[3] FROM {g} WHERE kind = 'state' ORDER BY ALL"
    ).fetchall()
    assert len(states) == 6
    assert sum(1 for s, d, fill in states if fill > 0 and str(d) != DATES[-1]) >= 2  # in progress at midnight
    seq = f"read_parquet('{full}/gold/orderbook_seq/**/*.parquet', hive_partitioning=false)"
    n, filled = con.execute(f"SELECT count(*), count(vpin) FROM {seq} WHERE symbol = 'BTC/USDT'").fetchone()
    assert filled > 0.9 * n
    # auto V: the first day of ETH/USDT has no value during its first hour
    first = con.execute(
        f"SELECT epoch_us(min(ts)) FROM {seq} WHERE symbol = 'ETH/USDT' AND vpin IS NOT NULL"
    ).fetchone()[0]
    assert first is not None and first >= (1709251200 + 3600) * US


def _one_pass(root: Path) -> dict[tuple[str, int, int], tuple]:
    """The UDF over each symbol's whole three-day series at once (no partitions, no lookback)."""
    con = duckdb.connect()
    register_all(con)
    cfg = _config(root).etl.features
    silver = f"read_parquet('{root}/silver/orderbook/**/*.parquet', hive_partitioning=false)"
    trades = f"read_parquet('{root}/silver/trades/**/*.parquet', hive_partitioning=false)"
    events = f"read_parquet('{root}/bronze/events/**/*.parquet', hive_partitioning=true)"
    # trades-series breaks received before each row (docs/features.md "Time"), counted over the whole series
    breaks = (
        "(SELECT count(*) FROM ev WHERE ev.exchange = {x}.exchange AND coalesce(ev.symbol, {x}.symbol) = "
        "{x}.symbol AND ev.cap < {x}.capture_ts)"
    )
    rows = con.execute(f"""
        WITH ev AS (SELECT exchange, symbol, capture_ts::TIMESTAMPTZ AS cap FROM {events}
                    WHERE event_type IN {BREAK_EVENT_TYPES} AND coalesce(channel, 'trades') = 'trades'),
             p AS (SELECT exchange, symbol, ts, seq, crossed, break_before, (bids[1].price + asks[1].price) / 2 AS mid,
                          {breaks.format(x="o")} AS trade_breaks,
                          asks[1].price - bids[1].price AS spread,
                          daedalus_ofi(bids, asks, lag(bids) OVER w, lag(asks) OVER w, {cfg.ofi_levels}, {cfg.ofi_decay_alpha}) AS pair
                   FROM {silver} o WINDOW w AS (PARTITION BY exchange, symbol ORDER BY ts, seq)),
             b AS (SELECT exchange, symbol, list({{'ts': ts, 'seq': seq, 'crossed': crossed, 'break_before': break_before,
                          'mid': mid, 'spread': spread, 'ofi': pair.ofi, 'mlofi': pair.mlofi, 'trade_breaks': trade_breaks}} ORDER BY ts, seq) AS s
                   FROM p GROUP BY ALL),
             t AS (SELECT exchange, symbol, list({{'ts': ts, 'buy': CASE WHEN side = 'buy' THEN amount ELSE 0.0 END,
                          'sell': CASE WHEN side = 'sell' THEN amount ELSE 0.0 END, 'breaks': {breaks.format(x="tr")}}}
                          ORDER BY ts, TRY_CAST(trade_id AS HUGEINT) NULLS LAST, trade_id) AS t FROM {trades} tr GROUP BY ALL),
             c AS (SELECT b.symbol, daedalus_orderbook_seq(b.s, t.t, NULL, {params_sql(cfg)}) AS r
                   FROM b LEFT JOIN t USING (exchange, symbol))
        SELECT symbol, epoch_us(unnest(r.ts)), unnest(r.seq), unnest(r.ofi), unnest(r.mlofi), unnest(r.ofi_sum[3]),
               unnest(r.rv[2]), unnest(r.tfi[3]), unnest(r.trade_volume[1]), unnest(r.kyle_lambda),
               unnest(r.spread_pctile), unnest(r.spread_regime), unnest(r.log_return)
        FROM c""").fetchall()
    return {(r[0], r[1], r[2]): r[3:] for r in rows}


def test_partitioned_rows_equal_one_pass_over_the_whole_series(lakes) -> None:
    full, _ = lakes
    whole = _one_pass(full)
    con = duckdb.connect()
    seq = f"read_parquet('{full}/gold/orderbook_seq/**/*.parquet', hive_partitioning=false)"
    got = con.execute(f"""SELECT symbol, epoch_us(ts), seq, ofi, mlofi, ofi_sum_900s, rv_60s, tfi_900s, trade_volume_5s,
                                 kyle_lambda, spread_pctile, spread_regime, log_return FROM {seq}""").fetchall()
    assert len(got) == len(whole)
    for r in got:
        assert whole[(r[0], r[1], r[2])] == r[3:]
    # windows really cross midnight: rows in the first 15 minutes of a day whose 900 s sum holds
    # rows of the day before (a segment that started before midnight)
    crossing = con.execute(f"""
        SELECT count(*) FROM {seq} s
        WHERE epoch_us(ts) % {86_400 * US} < {900 * US} AND ofi_sum_900s IS NOT NULL AND date > DATE '{DATES[0]}'
          AND NOT EXISTS (SELECT 1 FROM read_parquet('{full}/silver/orderbook/**/*.parquet', hive_partitioning=false) o
                          WHERE o.symbol = s.symbol AND o.break_before AND o.ts <= s.ts AND o.ts >= s.date::TIMESTAMPTZ)""").fetchone()[
        0
    ]
    assert crossing > 0


def test_vpin_buckets_equal_one_pass_over_all_trades(lakes) -> None:
    full, _ = lakes
    con = duckdb.connect()
    tr = con.execute(f"""SELECT epoch_us(ts), amount, side = 'buy', price FROM read_parquet('{full}/silver/trades/**/*.parquet',
                         hive_partitioning=false) WHERE symbol = 'BTC/USDT'
                         ORDER BY ts, TRY_CAST(trade_id AS HUGEINT) NULLS LAST, trade_id""").fetchall()
    ts = np.array([r[0] for r in tr], np.int64)
    one = vpin_partition(
        ts,
        np.array([r[1] for r in tr]),
        np.array([r[2] for r in tr]),
        np.array([r[3] for r in tr]),
        VpinState(),
        VpinParams(BUCKET_V, 10),
        int(ts[0] // (86_400 * US)) * 86_400 * US,
    )
    got = con.execute(f"""SELECT epoch_us(ts), vpin, buy_volume, sell_volume FROM read_parquet('{full}/gold/vpin_buckets/**/*.parquet',
                          hive_partitioning=false) WHERE symbol = 'BTC/USDT' AND kind = 'bucket' ORDER BY bucket_index""").fetchall()
    assert [g[0] for g in got] == one.ts.tolist()
    assert [g[1] for g in got] == [None if math.isnan(v) else v for v in one.vpin]
    assert [g[2] for g in got] == one.buy.tolist()
