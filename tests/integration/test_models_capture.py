"""Silver and gold built from the real Binance capture (tests/data), loaded into bronze directly.

The capture's book is rebuilt by daedalus.devkit.capture with Binance's documented diff-depth procedure;
every data test of the models must pass on it, the book must never be crossed, and the rebuilt best
bid/ask must equal the exchange's own bookTicker wherever both carry the same update id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from daedalus.build import build
from daedalus.config import Config, load_config
from daedalus.devkit.capture import load_capture
from daedalus.lake import open_lake
from daedalus.lake.manifest import Manifest

pytestmark = pytest.mark.slow  # a real build of every model over six minutes of market data
CAPTURE = Path(__file__).resolve().parents[1] / "data" / "binance-spot-btcusdt-20240808.jsonl.gz"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, Any]:
    root = tmp_path_factory.mktemp("capture-lake")
    summary = load_capture(CAPTURE, root)
    assert summary.applied_diffs > 3000 and not summary.out_of_sync
    cfg = load_config(overrides={"storage.root": str(root), "duckdb.temp_directory": str(root / "_tmp")})
    result = build(cfg, catalog=False)  # raises BuildError on any failing data test
    return cfg, result


def relation(cfg: Config, model: str) -> str:
    lake = open_lake(cfg)
    files = [lake.url(f.path) for f in Manifest.load(lake).models[model].files()]
    return f"read_parquet({files!r}, hive_partitioning=false)"


def test_every_data_test_passes(built: tuple[Config, Any]) -> None:
    _, result = built
    names = {(t.model, t.name) for t in result.tests}
    assert ("orderbook", "unique(exchange, symbol, ts, seq)") in names
    assert ("orderbook_hf", "monotonic(ts)") in names and ("trades", "accepted_values(side)") in names
    failed = [(t.model, t.name, t.failures) for t in result.tests if not t.passed]
    assert not failed


def test_book_never_crossed(built: tuple[Config, Any]) -> None:
    cfg, _ = built
    con = duckdb.connect()
    n, crossed = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE crossed) FROM {relation(cfg, 'orderbook')}"
    ).fetchone()
    assert n > 3000 and crossed == 0
    gold = con.execute(
        f"SELECT count(*) FILTER (WHERE crossed OR spread <= 0) FROM {relation(cfg, 'orderbook_hf')}"
    ).fetchone()
    assert gold[0] == 0
    # one continuous stream: the only break is the start of the series (the 08-09 partition's lookback
    # reaches back into 08-08, so its first snapshot is not a break)
    breaks = con.execute(
        f"SELECT count(*) FILTER (WHERE break_before) FROM {relation(cfg, 'orderbook')}"
    ).fetchone()
    assert breaks[0] == 1


def test_best_bid_ask_equal_book_ticker_at_matching_update_ids(built: tuple[Config, Any]) -> None:
    cfg, _ = built
    con = duckdb.connect()
    matched, equal = con.execute(f"""
        WITH bt AS (SELECT (info_json::JSON->>'u')::BIGINT AS u, bid, ask, bid_volume, ask_volume
                    FROM {relation(cfg, "ticker")})
        SELECT count(*),
               count(*) FILTER (WHERE g.best_bid = bt.bid AND g.best_ask = bt.ask
                                  AND g.bid_size_1 = bt.bid_volume AND g.ask_size_1 = bt.ask_volume)
        FROM {relation(cfg, "orderbook_hf")} g JOIN bt ON g.nonce = bt.u
    """).fetchone()
    assert matched > 100 and equal == matched


def test_trades_sides_and_bars_on_real_flow(built: tuple[Config, Any]) -> None:
    cfg, _ = built
    con = duckdb.connect()
    n, sells, buys = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE side = 'sell'), count(*) FILTER (WHERE side = 'buy') "
        f"FROM {relation(cfg, 'trades')}"
    ).fetchone()
    raw_sells = con.execute(
        f"SELECT count(*) FILTER (WHERE (info_json::JSON->>'m')::BOOLEAN) FROM read_parquet('{cfg.storage.root}/bronze/trades/*/*/*.parquet')"
    ).fetchone()[0]
    assert n == 9757 and sells == raw_sells and buys == n - sells
    per_bar = con.execute(f"""
        SELECT bar_seconds, sum(trade_count), sum(volume) FROM {relation(cfg, "trade_bars")} GROUP BY 1 ORDER BY 1
    """).fetchall()
    assert {r[1] for r in per_bar} == {9757}  # every duration's bars partition the same trades
