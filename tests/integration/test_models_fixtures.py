"""Silver and gold models built by the real build from hand-made bronze, checked by hand.

Covers: a snapshot landed twice appears once, `crossed`, `break_before` from a symbol event, an
exchange-wide event and a time gap (and not from another symbol's event or a non-break event),
aggressor sides per exchange, trade dedup, bars with a gap (no empty bar) and a row exactly on a bar
boundary, and ticker_hf's trailing and calendar columns.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds the reference package
from reference.features_reference import BookRow, TradeRow, close, orderbook_bars, trade_bars  # noqa: E402

pytestmark = pytest.mark.slow  # one real build of every model (~10 s)

DAY = dt.date(2024, 3, 1)  # a Friday
UTC = dt.UTC


def at(h: int, m: int, s: float) -> dt.datetime:
    return dt.datetime(2024, 3, 1, h, m, 0, tzinfo=UTC) + dt.timedelta(seconds=s)


def write_bronze(root: Path, channel: str, exchange: str, name: str, rows: list[dict[str, Any]]) -> None:
    """Rows as `daedalus land` writes them (collector/schemas.py); envelope defaults filled in."""
    full = []
    for r in rows:
        cap = r.get("capture_ts") or (r.get("timestamp") or at(0, 0, 0)) + dt.timedelta(milliseconds=10)
        full.append(
            {
                "collected_at": int(cap.timestamp() * 1000),
                "capture_ts": cap,
                "exchange": exchange,
                "conn_id": "c1",
                **r,
            }
        )
    out = root / "bronze" / channel / f"exchange={exchange}" / f"date={DAY.isoformat()}"
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(full, schema=SCHEMAS[channel]), out / f"{name}.parquet")


def lv(*levels: tuple[float, float]) -> list[dict[str, float]]:
    return [{"price": p, "size": q} for p, q in levels]


BOOKS = [  # (ts, seq, bids, asks)
    (at(10, 0, 0.0), 1, lv((999.5, 1.0), (999.0, 2.0)), lv((1000.5, 2.0), (1001.0, 1.0))),
    (at(10, 0, 0.5), 2, lv((999.5, 1.5), (999.0, 2.0)), lv((1000.5, 2.0))),
    (at(10, 0, 1.0), 3, lv((1000.0, 1.0)), lv((1001.0, 1.0), (1002.0, 4.0))),  # exactly on a 1 s boundary
    (at(10, 0, 1.2), 4, lv((1001.0, 1.0)), lv((1000.5, 1.0))),  # crossed
    (at(10, 0, 3.0), 5, lv((1000.0, 2.0)), lv((1000.5, 1.0))),  # after a BTC disconnect at 10:00:02
    (at(10, 0, 5.0), 6, lv((1000.0, 2.0)), lv((1001.0, 1.0))),  # after an exchange-wide gap at 10:00:04
    (at(10, 0, 6.0), 7, lv((1000.5, 2.0)), lv((1001.0, 3.0))),  # a connect (no break) at 10:00:05.5
    (at(10, 10, 0.0), 8, lv((1001.0, 1.0)), lv((1001.5, 1.0))),  # 594 s later: a staleness break
    (at(10, 10, 0.1), 9, lv((1001.0, 2.0)), lv((1001.5, 1.0))),  # an ETH event before it: no break
]
BREAKS = [True, False, False, False, True, True, False, True, False]


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Config:
    root = tmp_path_factory.mktemp("lake")
    ob = [
        {"symbol": "BTC/USDT", "seq": seq, "timestamp": ts, "nonce": seq * 10, "bids": b, "asks": a}
        for ts, seq, b, a in BOOKS
    ]
    write_bronze(root, "orderbook", "binance", "seg-1", ob)
    write_bronze(root, "orderbook", "binance", "seg-1-redelivered", ob[1:2])  # the same snapshot again
    write_bronze(
        root,
        "events",
        "binance",
        "ev",
        [
            {
                "symbol": "BTC/USDT",
                "seq": 100,
                "event_type": "disconnect",
                "close_code": 1006,
                "capture_ts": at(10, 0, 2),
            },
            {
                "symbol": None,
                "seq": 101,
                "event_type": "gap",
                "channel": "orderbook",
                "capture_ts": at(10, 0, 4),
            },
            {"symbol": "BTC/USDT", "seq": 102, "event_type": "connect", "capture_ts": at(10, 0, 5.5)},
            {"symbol": "ETH/USDT", "seq": 103, "event_type": "disconnect", "capture_ts": at(10, 10, 0.05)},
        ],
    )
    trade = {"symbol": "BTC/USDT", "info_json": None}
    write_bronze(
        root,
        "trades",
        "binance",
        "tr",
        [
            {
                **trade,
                "seq": 20,
                "timestamp": at(10, 0, 0.1),
                "trade_id": "1",
                "side": None,
                "price": 1000.0,
                "amount": 2.0,
                "info_json": json.dumps({"t": 1, "m": True}),
            },  # raw Binance: buyer is maker → sell
            {
                **trade,
                "seq": 21,
                "timestamp": at(10, 0, 0.9),
                "trade_id": "2",
                "side": "buy",
                "price": 1001.0,
                "amount": 1.0,
            },
            {
                **trade,
                "seq": 21,
                "timestamp": at(10, 0, 0.9),
                "trade_id": "2",
                "side": "buy",
                "price": 1001.0,
                "amount": 1.0,
            },
            {
                **trade,
                "seq": 22,
                "timestamp": at(10, 0, 1.0),
                "trade_id": "3",
                "side": "sell",
                "price": 999.0,
                "amount": 3.0,
            },
            {
                **trade,
                "seq": 23,
                "timestamp": at(10, 0, 5.0),
                "trade_id": "10",
                "side": "buy",
                "price": 1002.0,
                "amount": 0.5,
            },
        ],
    )
    write_bronze(
        root,
        "trades",
        "coinbase",
        "tr",
        [
            {
                "symbol": "BTC/USD",
                "seq": 1,
                "timestamp": at(11, 0, 0),
                "trade_id": "a",
                "side": "BUY",
                "price": 50.0,
                "amount": 1.0,
            },
            {
                "symbol": "BTC/USD",
                "seq": 2,
                "timestamp": at(11, 0, 1),
                "trade_id": "b",
                "side": "SELL",
                "price": 51.0,
                "amount": 1.0,
            },
        ],
    )
    write_bronze(
        root,
        "ticker",
        "binance",
        "tk",
        [
            {
                "symbol": "BTC/USDT",
                "seq": 30,
                "timestamp": at(10, 0, 0),
                "bid": 999.0,
                "ask": 1001.0,
                "bid_volume": 3.0,
                "ask_volume": 1.0,
            },
            {
                "symbol": "BTC/USDT",
                "seq": 31,
                "timestamp": at(10, 0, 2),
                "bid": 1001.0,
                "ask": 1003.0,
                "bid_volume": 1.0,
                "ask_volume": 1.0,
            },
            {
                "symbol": "BTC/USDT",
                "seq": 32,
                "timestamp": at(10, 0, 6),
                "bid": 1003.0,
                "ask": 1005.0,
                "bid_volume": 0.0,
                "ask_volume": 0.0,
            },
        ],
    )
    cfg = load_config(overrides={"storage.root": str(root), "duckdb.temp_directory": str(root / "_tmp")})
    result = build(cfg, catalog=False)  # raises BuildError if any data test fails
    assert all(t.passed for t in result.tests)
    return cfg


def rows(cfg: Config, model: str, where: str = "true", order: str = "1") -> list[dict[str, Any]]:
    files = [open_lake(cfg).url(f.path) for f in Manifest.load(open_lake(cfg)).models[model].files()]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    table = con.execute(
        f"SELECT * FROM read_parquet({files!r}, hive_partitioning=false) WHERE {where} ORDER BY {order}"
    ).to_arrow_table()
    return table.to_pylist()


def test_silver_orderbook_dedup_crossed_and_breaks(lake: Config) -> None:
    got = rows(lake, "orderbook", order="ts, seq")
    assert [r["seq"] for r in got] == [b[1] for b in BOOKS]  # the re-delivered snapshot appears once
    assert [r["crossed"] for r in got] == [False, False, False, True, False, False, False, False, False]
    assert [r["break_before"] for r in got] == BREAKS
    assert [(r["bid_levels"], r["ask_levels"]) for r in got][:3] == [(2, 2), (2, 1), (1, 2)]
    assert all(r["date"] == DAY for r in got)


def test_gold_orderbook_hf_one_row_per_snapshot(lake: Config) -> None:
    got = rows(lake, "orderbook_hf", order="ts, seq")
    assert len(got) == len(BOOKS)
    crossed = got[3]
    assert crossed["crossed"] and crossed["spread"] == -0.5 and crossed["mid"] == 1000.75
    # structural columns as usual; for the sequential ones the crossed row is a break (docs/features.md)
    assert crossed["microprice"] == pytest.approx((1001.0 * 1.0 + 1000.5 * 1.0) / 2.0)
    assert crossed["imbalance_1"] == 0.0 and crossed["spread_bps"] == pytest.approx(-0.5 / 1000.75 * 1e4)
    assert got[2]["log_return"] == pytest.approx(math.log(1000.5 / 1000.0))  # the row before: unbroken
    for name in ("log_return", "mid_velocity", "ofi", "mlofi", "rv_5s", "ofi_sum_5s", "spread_pctile"):
        assert crossed[name] is None, name
    first = got[0]
    assert first["mid"] == 1000.0 and first["microprice"] == pytest.approx((999.5 * 2 + 1000.5 * 1) / 3)
    assert first["imbalance_3"] == pytest.approx((3 - 3) / 6)
    assert first["bid_depth_5_10bps"] == 1.0 and first["bid_depth_10_25bps"] == 2.0
    assert "ofi" in first and "log_return" in first  # the sequential columns joined on (ts, seq)
    assert [r["log_return"] is None for r in got][4] is True  # first value after a break is NULL


def test_trades_side_dedup_notional(lake: Config) -> None:
    got = rows(lake, "trades", order="exchange, ts")
    binance = [r for r in got if r["exchange"] == "binance"]
    assert [r["trade_id"] for r in binance] == ["1", "2", "3", "10"]  # trade 2 landed twice, kept once
    assert [r["side"] for r in binance] == ["sell", "buy", "sell", "buy"]
    assert [r["notional"] for r in binance] == [2000.0, 1001.0, 2997.0, 501.0]
    coinbase = [r for r in got if r["exchange"] == "coinbase"]
    # Coinbase's raw side is the maker's: BUY means a sell aggressor hit the bid
    assert [r["side"] for r in coinbase] == ["sell", "buy"]


def test_trade_bars_gap_and_boundary(lake: Config) -> None:
    got = rows(
        lake,
        "trade_bars",
        where="exchange = 'binance' AND bar_seconds IN (1, 5)",
        order="bar_seconds, bar_start",
    )
    one = {r["bar_start"].astimezone(UTC): r for r in got if r["bar_seconds"] == 1}
    assert sorted(one) == [at(10, 0, 0), at(10, 0, 1), at(10, 0, 5)]  # no empty bars at 10:00:02-04
    b0 = one[at(10, 0, 0)]
    assert (b0["open"], b0["high"], b0["low"], b0["close"], b0["trade_count"]) == (
        1000.0,
        1001.0,
        1000.0,
        1001.0,
        2,
    )
    assert (b0["buy_volume"], b0["sell_volume"], b0["volume"]) == (1.0, 2.0, 3.0)
    assert b0["vwap"] == pytest.approx(3001.0 / 3) and b0["trade_imbalance"] == pytest.approx(-1 / 3)
    assert one[at(10, 0, 1)]["open"] == 999.0  # the trade exactly at 10:00:01 opens the next bar
    five = [r for r in got if r["bar_seconds"] == 5]
    assert [(r["bar_start"].astimezone(UTC), r["trade_count"]) for r in five] == [
        (at(10, 0, 0), 3),
        (at(10, 0, 5), 1),
    ]
    ref = trade_bars(
        [
            TradeRow(r["ts"], int(r["trade_id"]), r["side"], r["price"], r["amount"])
            for r in rows(lake, "trades", where="exchange = 'binance'")
        ],
        [1, 5],
    )
    for r in got:
        want = ref[(r["bar_seconds"], r["bar_start"])]
        assert all(close(r[k], v) for k, v in want.items()), (r, want)


def test_orderbook_bars_match_reference(lake: Config) -> None:
    hf = rows(lake, "orderbook_hf", order="ts, seq")
    ref = orderbook_bars(
        [
            BookRow(
                r["ts"],
                r["seq"],
                r["mid"],
                r["spread_bps"],
                r["imbalance_1"],
                r["microprice"],
                r["ofi"],
                r["mlofi"],
                r["log_return"],
            )
            for r in hf
        ],
        [1, 5, 60, 3600],
    )
    got = rows(lake, "orderbook_bars", order="bar_seconds, bar_start")
    assert {(r["bar_seconds"], r["bar_start"]) for r in got} == set(ref) | {
        (r["bar_seconds"], r["bar_start"]) for r in got if r["bar_seconds"] not in (1, 5, 60, 3600)
    }
    one = [r for r in got if r["bar_seconds"] == 1]
    assert [(r["bar_start"].astimezone(UTC), r["snapshot_count"]) for r in one] == [
        (at(10, 0, 0), 2),
        (at(10, 0, 1), 2),
        (at(10, 0, 3), 1),
        (at(10, 0, 5), 1),
        (at(10, 0, 6), 1),
        (at(10, 10, 0), 2),
    ]
    assert one[1]["open"] == 1000.5  # the snapshot exactly at 10:00:01 (mid 1000.5) opens that bar
    assert one[1]["max_spread_bps"] == pytest.approx(1.0 / 1000.5 * 1e4)
    for r in got:
        if r["bar_seconds"] in (1, 5, 60, 3600):
            want = ref[(r["bar_seconds"], r["bar_start"])]
            assert all(close(r[k], v) for k, v in want.items()), (r, want)


def test_ticker_hf_trailing_and_calendar(lake: Config) -> None:
    got = rows(lake, "ticker_hf", order="ts")
    assert [r["mid"] for r in got] == [1000.0, 1002.0, 1004.0]
    assert got[0]["volume_imbalance"] == 0.5 and got[2]["volume_imbalance"] is None  # 0/0 → NULL
    last = got[2]  # (10:00:01, 10:00:06] holds 10:00:02 and 10:00:06
    assert last["mid_mean_5s"] == 1003.0 and last["mid_std_5s"] == pytest.approx(2**0.5)
    assert last["mid_mean_15s"] == 1002.0 and last["mid_std_15s"] == pytest.approx(2.0)
    assert got[0]["mid_std_5s"] is None  # one row: no sample std
    assert last["spread_bps_mean_5s"] == pytest.approx((2 / 1002 + 2 / 1004) / 2 * 1e4)
    assert got[1]["mid_mean_5s"] == 1001.0  # (09:59:57, 10:00:02] includes 10:00:00
    assert (last["hour"], last["day_of_week"], last["is_weekend"]) == (10, 4, False)


def test_band_config_changes_gold_columns(lake: Config, tmp_path: Path) -> None:
    """Changing bands_bps changes orderbook_hf's columns, with no SQL edited."""
    cfg = load_config(
        overrides={
            "storage.root": lake.storage.root,
            "duckdb.temp_directory": str(tmp_path),
            "etl.features.bands_bps": [0, 2.5, 20],
        }
    )
    from daedalus.build import compile_sql

    sql = compile_sql(
        cfg, "orderbook_hf", {"exchange": "binance", "symbol": "BTC/USDT", "date": DAY.isoformat()}
    )
    assert "bid_depth_0_2p5bps" in sql and "band_imbalance_2p5_20bps" in sql and "bid_depth_0_5bps" not in sql


def test_every_gold_column_has_a_doc_line(lake: Config) -> None:
    from daedalus.build.project import load_project

    project = load_project(lake)
    manifest = Manifest.load(open_lake(lake))
    for model in ("orderbook_hf", "orderbook_bars", "trade_bars", "ticker_hf"):
        built = [c[0] for c in manifest.models[model].columns]
        docs = project.models[model].docs.columns
        assert built and not [c for c in built if c not in docs or not docs[c].description.strip()], model
