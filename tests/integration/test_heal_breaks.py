"""A healed trades break is no break (docs/contracts.md "Breaks"): the build reads `backfill` events.

Three symbols shaped like test_break_rules' SPLIT (book every second 12:00:00..30, trades every 0.5 s,
a trades disconnect received at 12:00:19.75), with no book break: HEALED has a `backfill` event that
closed the gap (detail "complete"), PARTIAL one that did not; OVERFLOWED's break is a queue
`overflow` of its trades (collector/heal.py fetches those too) that a complete backfill covers.
HEALED also has the trades around the gap twice, once from the socket and once from REST
(`source = 'rest'`): silver keeps each trade once.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import duckdb
import pytest
from test_break_rules import D0, _window, at, book, event, rows, trade, write

from daedalus.build import build
from daedalus.config import Config, load_config

pytestmark = pytest.mark.slow

HEALED = "HEAL/USDT"
PARTIAL = "PART/USDT"
OVERFLOWED = "OVFL/USDT"  # an `overflow` of its trades (not a disconnect) that a complete backfill healed
N_TRADES = 62


def _size(j: int) -> float:
    return 1.0 + (j // 2 % 3) * 0.5 if j % 2 == 0 else 0.25


def _lake_rows() -> dict[str, list[dict[str, Any]]]:
    seq = itertools.count(1)
    books, trades, events = [], [], []
    for symbol in (HEALED, PARTIAL, OVERFLOWED):
        for i in range(31):
            books.append(book(symbol, next(seq), at(D0, 12, 0, i), 100.0 + (i * 7 % 5), 101.0 + (i * 7 % 5)))
        for j in range(N_TRADES):
            trades.append(
                trade(
                    symbol,
                    next(seq),
                    at(D0, 12, 0, j / 2),
                    "buy" if j % 2 == 0 else "sell",
                    _size(j),
                    5000 + j,
                )
            )
        kind = "overflow" if symbol == OVERFLOWED else "disconnect"
        events.append(event(symbol, "trades", kind, at(D0, 12, 0, 19.75), next(seq)))
        fill = event(symbol, "trades", "backfill", at(D0, 12, 0, 21.0), next(seq))
        fill["interval_start"], fill["interval_end"] = at(D0, 12, 0, 19.5), at(D0, 12, 0, 20.5)
        fill["count"] = 1 if symbol == PARTIAL else 2
        fill["detail"] = (
            "partial: 1 rows missing"
            if symbol == PARTIAL
            else "complete: trades after id 5038 to before id 5041"
        )
        events.append(fill)
    # the REST copies of HEALED's trades at 19.5 and 20.0 (received at 21 s): silver keeps one of each
    for j in (39, 40):
        rest = trade(
            HEALED, next(seq), at(D0, 12, 0, j / 2), "buy" if j % 2 == 0 else "sell", _size(j), 5000 + j
        )
        trades.append({**rest, "capture_ts": at(D0, 12, 0, 21.0), "conn_id": "rest:1", "source": "rest"})
    return {"orderbook": books, "trades": trades, "events": events}


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Config:
    root: Path = tmp_path_factory.mktemp("lake")
    for channel, rs in _lake_rows().items():
        write(root, channel, "seg-1", rs)
    cfg = load_config(overrides={"storage.root": str(root), "duckdb.temp_directory": str(root / "_tmp")})
    build(cfg, catalog=False)
    return cfg


def _trades(breaks_after: float | None) -> list[tuple[float, str, float, int]]:
    return [
        (
            j / 2,
            "buy" if j % 2 == 0 else "sell",
            _size(j),
            int(breaks_after is not None and j / 2 + 0.01 > breaks_after),
        )
        for j in range(N_TRADES)
    ]


@pytest.mark.parametrize("symbol", [HEALED, OVERFLOWED])
def test_a_completely_healed_break_does_not_restart_trade_windows(lake: Config, symbol: str) -> None:
    gold = {r["ts"].second: r for r in rows(lake, "orderbook_seq", symbol)}
    whole = _trades(None)
    for second in (20, 21, 22, 24):
        assert gold[second]["trade_volume_5s"] == pytest.approx(
            sum(_window(whole, second, 5.0, 0)), abs=1e-12
        )
    b, s = _window(whole, 22.0, 5.0, 0)
    assert gold[22]["tfi_5s"] == pytest.approx((b - s) / (b + s), abs=1e-12)


def test_a_partial_backfill_keeps_the_break(lake: Config) -> None:
    gold = {r["ts"].second: r for r in rows(lake, "orderbook_seq", PARTIAL)}
    broken = _trades(19.75)
    assert gold[20]["trade_volume_5s"] == pytest.approx(2.0, abs=1e-12)  # the buy at 20 s alone
    assert gold[22]["trade_volume_5s"] == pytest.approx(sum(_window(broken, 22.0, 5.0, 1)), abs=1e-12)


def test_silver_trades_keep_each_trade_once_across_sources(lake: Config) -> None:
    from daedalus.lake import open_lake
    from daedalus.lake.manifest import Manifest

    files = [open_lake(lake).url(f.path) for f in Manifest.load(open_lake(lake)).models["trades"].files()]
    silver = (
        duckdb.connect()
        .execute(
            f"SELECT trade_id FROM read_parquet({files!r}, hive_partitioning=false) WHERE symbol = ?",
            [HEALED],
        )
        .fetchall()
    )
    assert len(silver) == N_TRADES
    assert sorted(int(r[0]) for r in silver) == list(range(5000, 5000 + N_TRADES))
