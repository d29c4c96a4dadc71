"""Bad values in bronze are neither served nor lost unrecorded (issue 17, case 2).

Bronze holds NaN, inf, 1e12, 0 and −5 prices, a NaN and a 0 size, a trade side `BOGUS`, a book with a
NaN level, a book with an inf ask and a crossed book. A real build builds every model: silver keeps
the good rows only (1e12 is a finite positive price: it is served, the data tests do not judge
plausibility), silver.rejects counts the others by reason, and no DOUBLE column of any silver or gold
model holds NaN or ±inf.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from daedalus.build import build
from daedalus.collector.schemas import SCHEMAS
from daedalus.config import Config, load_config
from daedalus.lake import open_lake
from daedalus.lake.manifest import Manifest

pytestmark = pytest.mark.slow  # one real build of every model

DAY = dt.date(2024, 3, 1)
T0 = dt.datetime(2024, 3, 1, 10, 0, tzinfo=dt.UTC)
NAN, INF = math.nan, math.inf


def write_bronze(root: Path, channel: str, rows: list[dict[str, Any]]) -> None:
    full = [
        {
            "collected_at": int((r["timestamp"] or r["received"]).timestamp() * 1000) + 5,
            "capture_ts": (r["timestamp"] or r["received"]) + dt.timedelta(milliseconds=5),
            "exchange": "binance",
            "conn_id": "c1",
            "symbol": "BTC/USDT",
            **r,
        }
        for r in rows
    ]
    out = root / "bronze" / channel / "exchange=binance" / f"date={DAY.isoformat()}"
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(full, schema=SCHEMAS[channel]), out / "seg.parquet")


def at(s: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=s)


def book(i: int, bid: float, ask: float, bid_size: float = 1.0) -> dict[str, Any]:
    return {
        "seq": i,
        "timestamp": at(i),
        "nonce": i,
        "bids": [{"price": bid, "size": bid_size}, {"price": bid - 1, "size": 2.0}],
        "asks": [{"price": ask, "size": 1.5}, {"price": ask + 1, "size": 2.0}],
    }


BAD_BOOKS = {20: (1000.0, NAN), 30: (1000.0, INF), 40: (-5.0, 1001.0)}  # seq → (bid, ask)
CROSSED = 50
BAD_TRADES = {  # trade id → (price, amount, side, reason)
    901: (NAN, 1.0, "buy", "price_not_finite"),
    902: (INF, 1.0, "sell", "price_not_finite"),
    903: (0.0, 1.0, "buy", "price_not_positive"),
    904: (-5.0, 1.0, "sell", "price_not_positive"),
    905: (1000.0, NAN, "buy", "amount_not_finite"),
    906: (1000.0, 0.0, "buy", "amount_not_positive"),
    907: (1000.0, 1.0, "BOGUS", "unknown_side"),
}
HUGE = 908  # price 1e12: finite and positive, so served
NULL_SYMBOL, NULL_TIME = 909, 910  # a trade without symbol, one without exchange time: counted


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Config:
    root = tmp_path_factory.mktemp("lake")
    books = []
    for i in range(1, 121):
        mid = 1000.0 + (i % 7) * 0.5
        bid, ask = BAD_BOOKS.get(i, (mid - 0.5, mid + 0.5))
        if i == CROSSED:
            bid, ask = mid + 1.0, mid - 1.0
        books.append(book(i, bid, ask))
    books.append({**book(121, 999.0, 1001.0), "symbol": None})  # issue 24: counted, not vanished
    write_bronze(root, "orderbook", books)
    trades = []
    for i in range(1, 121):  # one good trade a second, alternating sides
        trades.append(
            {
                "seq": 1000 + i,
                "timestamp": at(i + 0.5),
                "trade_id": str(i),
                "side": "buy" if i % 2 else "sell",
                "price": 1000.0 + (i % 5),
                "amount": 0.1 * (1 + i % 3),
            }
        )
    for k, (price, amount, side, _reason) in BAD_TRADES.items():
        trades.append(
            {
                "seq": 2000 + k,
                "timestamp": at(k - 900 + 0.7),
                "trade_id": str(k),
                "side": side,
                "price": price,
                "amount": amount,
            }
        )
    trades.append(
        {
            "seq": 2000 + HUGE,
            "timestamp": at(60.7),
            "trade_id": str(HUGE),
            "side": "buy",
            "price": 1e12,
            "amount": 0.01,
        }
    )
    for k, extra in ((NULL_SYMBOL, {"symbol": None}), (NULL_TIME, {"timestamp": None, "received": at(61)})):
        trades.append(
            {
                "seq": 2000 + k,
                "timestamp": at(62),
                "trade_id": str(k),
                "side": "buy",
                "price": 1000.0,
                "amount": 0.5,
                **extra,
            }
        )
    write_bronze(root, "trades", trades)
    write_bronze(
        root,
        "ticker",
        [
            {"seq": 3000 + i, "timestamp": at(i), "bid": b, "ask": a, "bid_volume": 1.0, "ask_volume": 1.0}
            for i, (b, a) in enumerate(
                [(999.0, 1001.0), (NAN, 1001.0), (999.0, INF), (0.0, 1001.0), (999.5, 1000.5)]
            )
        ]
        + [  # issue 24: a NaN `last` and a NULL symbol are counted, not served nor vanished
            {"seq": 3005, "timestamp": at(5), "bid": 999.0, "ask": 1001.0, "last": NAN},
            {"seq": 3006, "timestamp": at(6), "bid": 999.0, "ask": 1001.0, "symbol": None},
        ],
    )
    cfg = load_config(overrides={"storage.root": str(root), "duckdb.temp_directory": str(root / "_tmp")})
    result = build(cfg, catalog=False)  # raises BuildError if a data test fails
    assert result.tests and all(t.passed for t in result.tests)
    return cfg


def files(cfg: Config, model: str) -> list[str]:
    lake = open_lake(cfg)
    return [lake.url(f.path) for f in Manifest.load(lake).models[model].files()]


def query(cfg: Config, model: str, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        f"CREATE VIEW m AS SELECT * FROM read_parquet({files(cfg, model)!r}, hive_partitioning=false)"
    )
    return con.execute(sql).fetchall()


def test_silver_serves_only_good_rows(lake: Config) -> None:
    ids = sorted(int(r[0]) for r in query(lake, "trades", "SELECT trade_id FROM m"))
    assert ids == [*range(1, 121), HUGE]
    assert query(
        lake, "trades", "SELECT count(*) FROM m WHERE side NOT IN ('buy', 'sell') OR side IS NULL"
    ) == [(0,)]
    seqs = [r[0] for r in query(lake, "orderbook", "SELECT seq FROM m ORDER BY ts, seq")]
    assert seqs == [i for i in range(1, 121) if i not in BAD_BOOKS]
    assert query(lake, "orderbook", f"SELECT crossed FROM m WHERE seq = {CROSSED}") == [(True,)]
    assert [r[0] for r in query(lake, "ticker", "SELECT seq FROM m ORDER BY seq")] == [3000, 3004]


def test_rejects_are_counted_by_reason(lake: Config) -> None:
    got = query(lake, "rejects", "SELECT channel, reason, count FROM m ORDER BY channel, reason")
    want: dict[tuple[str, str], int] = {}
    for *_x, reason in BAD_TRADES.values():
        want[("trades", reason)] = want.get(("trades", reason), 0) + 1
    want[("orderbook", "level_not_finite")] = 2
    want[("orderbook", "level_not_positive")] = 1
    want[("ticker", "quote_not_finite")] = 2
    want[("ticker", "quote_not_positive")] = 1
    want[("trades", "symbol_null")] = want[("trades", "timestamp_null")] = 1
    want[("ticker", "value_not_finite")] = want[("ticker", "symbol_null")] = 1
    want[("orderbook", "symbol_null")] = 1
    assert got == sorted((c, r, n) for (c, r), n in want.items())
    span = query(
        lake,
        "rejects",
        "SELECT first_ts, last_ts FROM m WHERE channel = 'orderbook' AND reason = 'level_not_finite'",
    )
    assert span == [(at(20), at(30))]


@pytest.mark.parametrize(
    "model",
    [
        "trades",
        "orderbook",
        "ticker",
        "orderbook_hf",
        "orderbook_seq",
        "orderbook_bars",
        "trade_bars",
        "ticker_hf",
        "vpin_buckets",
    ],
)
def test_no_nan_or_inf_anywhere(lake: Config, model: str) -> None:
    types = query(lake, model, "SELECT column_name, column_type FROM (DESCRIBE m)")
    checks = []
    for name, typ in types:
        c = '"' + name + '"'
        if typ in ("DOUBLE", "FLOAT"):
            checks.append(f"count(*) FILTER (WHERE NOT isfinite({c}))")
        elif typ in ("DOUBLE[]", "FLOAT[]"):
            checks.append(f"count(*) FILTER (WHERE list_bool_or(list_transform({c}, v -> NOT isfinite(v))))")
        elif typ.startswith("STRUCT(price DOUBLE, size DOUBLE)[]"):
            checks.append(
                f"count(*) FILTER (WHERE list_bool_or(list_transform({c}, "
                "v -> NOT isfinite(v.price) OR NOT isfinite(v.size))))"
            )
    assert checks, model
    n_rows, *n_bad = query(lake, model, f"SELECT count(*), {', '.join(checks)} FROM m")[0]
    assert n_rows > 0 and not any(n_bad), (model, n_bad)
