"""docs/features.md "Time" on data shaped like the real captures that broke it, built by the real build.

Each case is one symbol of one hand-made lake, checked against values computed by hand:
- a quiet ticker feed beside a live book: `stale` on ticker breaks neither the book nor its features;
- an exchange clock 7.4 s behind the receive clock: a break lands before the first row received
  after the event, not ~74 rows later;
- VPIN across a quiet midnight: snapshots of the new day before its first trade (and a day with no
  trade at all) carry the value of the last buckets of the day before;
- a break of the book that is not a break of the trades: trade windows keep their trades; a break of
  the trades series restarts them and drops Kyle's λ observation;
- a REST snapshot without exchange time takes the time of the first update applied to it.
"""

from __future__ import annotations

import datetime as dt
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

UTC = dt.UTC
D0 = dt.datetime(2024, 8, 8, tzinfo=UTC)
D1 = D0 + dt.timedelta(days=1)
SKEW = dt.timedelta(seconds=7.4)  # receive clock ahead of the exchange clock (SKEW symbol only)


def at(day: dt.datetime, h: int, m: int, s: float) -> dt.datetime:
    return day + dt.timedelta(hours=h, minutes=m, seconds=s)


def lv(*levels: tuple[float, float]) -> list[dict[str, float]]:
    return [{"price": p, "size": q} for p, q in levels]


def write(root: Path, channel: str, name: str, rows: list[dict[str, Any]]) -> None:
    """Rows as `daedalus land` writes them, one file per bronze date (envelope defaults filled in)."""
    by_date: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        cap = r.get("capture_ts") or r["timestamp"] + dt.timedelta(milliseconds=10)
        full = {
            "collected_at": int(cap.timestamp() * 1000),
            "exchange": "binance",
            "conn_id": "c1",
            **r,
            "capture_ts": cap,
        }
        by_date.setdefault(cap.date().isoformat(), []).append(full)
    for day, rs in by_date.items():
        out = root / "bronze" / channel / "exchange=binance" / f"date={day}"
        out.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rs, schema=SCHEMAS[channel]), out / f"{name}.parquet")


def book(
    symbol: str,
    seq: int,
    ts: dt.datetime | None,
    bid: float,
    ask: float,
    size: float = 1.0,
    capture: dt.datetime | None = None,
    nonce: int | None = None,
) -> dict[str, Any]:
    row = {
        "symbol": symbol,
        "seq": seq,
        "timestamp": ts,
        "nonce": nonce if nonce is not None else seq,
        "bids": lv((bid, size)),
        "asks": lv((ask, size)),
    }
    if capture is not None:
        row["capture_ts"] = capture
    return row


def trade(
    symbol: str,
    seq: int,
    ts: dt.datetime,
    side: str,
    amount: float,
    tid: int,
    capture: dt.datetime | None = None,
) -> dict[str, Any]:
    row = {
        "symbol": symbol,
        "seq": seq,
        "timestamp": ts,
        "trade_id": str(tid),
        "side": side,
        "price": 100.0,
        "amount": amount,
        "info_json": None,
    }
    if capture is not None:
        row["capture_ts"] = capture
    return row


def event(
    symbol: str | None, channel: str | None, event_type: str, capture: dt.datetime, seq: int
) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "channel": channel,
        "event_type": event_type,
        "seq": seq,
        "capture_ts": capture,
        "timestamp": None,
    }


# -- the lake --------------------------------------------------------------------------------------

STALE = "STALE/USDT"  # book every second 10:00:00..10:00:20, a stale ticker event at 10:00:10.5
SKEWED = "SKEW/USDT"  # book every 100 ms, captured 7.4 s after its exchange ts; disconnect mid-way
MIDNIGHT = "MID/USDT"  # buckets completed on D0, first trade of D1 at 00:00:02
QUIET = "QUIET/USDT"  # buckets completed on D0, no trade at all on D1
SPLIT = "SPLIT/USDT"  # a book break and, later, a trades break, trades every 0.5 s
REST = "REST/USDT"  # a REST snapshot without exchange time, then updates
REJ = "REJ/USDT"  # a refused book row and a refused trade: lost rows break their series


def _lake_rows() -> dict[str, list[dict[str, Any]]]:
    books: list[dict[str, Any]] = []
    trades: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    seq = iter(range(1, 10**6))

    # STALE: a live book, a quiet ticker feed going stale, then a real book disconnect.
    for i in range(21):
        books.append(book(STALE, next(seq), at(D0, 10, 0, i), 100.0 + (i % 3), 101.0 + (i % 3)))
    events.append(event(STALE, "ticker", "stale", at(D0, 10, 0, 10.5), next(seq)))
    events.append(event(STALE, "orderbook", "disconnect", at(D0, 10, 0, 15.5), next(seq)))

    # SKEWED: rows at exchange ts t, received at t + 7.4 s; disconnect received between the captures of
    # rows 20 and 21 (exchange ts 10:00:02.0 and 10:00:02.1).
    for i in range(60):
        ts = at(D0, 11, 0, i / 10)
        books.append(book(SKEWED, next(seq), ts, 100.0, 101.0, capture=ts + SKEW))
    events.append(event(SKEWED, "orderbook", "disconnect", at(D0, 11, 0, 2.05) + SKEW, next(seq)))

    # MIDNIGHT and QUIET: V = 1, n = 2 buckets. D0 trades: buy .6 + sell .4 (|.4−.6| = .2),
    # buy 1 (1.0), sell .75 + buy .25 (.5): VPIN after bucket 3 = (1.0 + .5)/(2·1) = .75.
    for sym in (MIDNIGHT, QUIET):
        base = at(D0, 23, 59, 50)
        for k, (side, amount) in enumerate(
            [("buy", 0.6), ("sell", 0.4), ("buy", 1.0), ("sell", 0.75), ("buy", 0.25)]
        ):
            trades.append(trade(sym, next(seq), base + dt.timedelta(seconds=k), side, amount, 1000 + k))
        books.append(book(sym, next(seq), at(D0, 23, 59, 58), 100.0, 101.0))
        for s in (0.042, 1.105, 3.0):
            books.append(book(sym, next(seq), at(D1, 0, 0, s), 100.0, 101.0))
    # MIDNIGHT's first D1 trade: buy .5 at 00:00:02 completes nothing (bucket 4 holds .5 of 1).
    trades.append(trade(MIDNIGHT, next(seq), at(D1, 0, 0, 2), "buy", 0.5, 2000))

    # SPLIT: book every second 12:00:00..12:00:30 with a moving mid; trades every 0.5 s, buy at whole
    # seconds (size 1 + (i mod 3)·0.5), sell at half seconds (size 0.25).
    for i in range(31):
        books.append(book(SPLIT, next(seq), at(D0, 12, 0, i), 100.0 + (i * 7 % 5), 101.0 + (i * 7 % 5)))
    for j in range(62):
        t = at(D0, 12, 0, j / 2)
        if j % 2 == 0:
            trades.append(trade(SPLIT, next(seq), t, "buy", 1.0 + (j // 2 % 3) * 0.5, 5000 + j))
        else:
            trades.append(trade(SPLIT, next(seq), t, "sell", 0.25, 5000 + j))
    # a book break received between the rows of 12:00:09 and 12:00:10 (captures +10 ms)
    events.append(event(SPLIT, "orderbook", "resync", at(D0, 12, 0, 9.5), next(seq)))
    # a trades break received between the trades of 12:00:19.5 and 12:00:20 and the snapshots 19 and 20
    events.append(event(SPLIT, "trades", "disconnect", at(D0, 12, 0, 19.75), next(seq)))

    # REST: conn r1 — a REST snapshot (no exchange time) then two updates; conn r2 — a snapshot that
    # no update followed (the connection dropped).
    books.append({**book(REST, 1, None, 99.0, 100.0, capture=at(D0, 13, 0, 0), nonce=500), "conn_id": "r1"})
    books.append(
        {**book(REST, 2, at(D0, 13, 0, 0.25), 99.5, 100.0, capture=at(D0, 13, 0, 0.3)), "conn_id": "r1"}
    )
    books.append(
        {**book(REST, 3, at(D0, 13, 0, 0.5), 99.5, 100.5, capture=at(D0, 13, 0, 0.55)), "conn_id": "r1"}
    )
    books.append({**book(REST, 1, None, 98.0, 99.0, capture=at(D0, 14, 0, 0), nonce=900), "conn_id": "r2"})
    # REJ: a book row with a NaN price between good ones (12:30:00..04), and a trade with a NaN price
    # among good ones at 12:30:01.5: silver refuses both, and each is a break of its series.
    for i in range(5):
        row = book(REJ, next(seq), at(D0, 12, 30, i), 100.0, 101.0 + (i % 2))
        if i == 2:
            row["bids"] = lv((float("nan"), 1.0))
        books.append(row)
    for k, t in enumerate((0.5, 1.0, 1.5, 2.5, 3.5)):
        tr = trade(REJ, next(seq), at(D0, 12, 30, t), "buy", 1.0 + k, 7000 + k)
        if t == 1.5:
            tr["price"] = float("nan")
        trades.append(tr)
    return {"orderbook": books, "trades": trades, "events": events}


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Config:
    root = tmp_path_factory.mktemp("lake")
    for channel, rows in _lake_rows().items():
        write(root, channel, "seg-1", rows)
    cfg = load_config(
        overrides={
            "storage.root": str(root),
            "duckdb.temp_directory": str(root / "_tmp"),
            "etl.features.vpin_bucket_volume": 1.0,
            "etl.features.vpin_window_buckets": 2,
        }
    )
    build(cfg, catalog=False)
    return cfg


def rows(cfg: Config, model: str, symbol: str) -> list[dict[str, Any]]:
    files = [open_lake(cfg).url(f.path) for f in Manifest.load(open_lake(cfg)).models[model].files()]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return (
        con.execute(
            f"SELECT * FROM read_parquet({files!r}, hive_partitioning=false) WHERE symbol = ? "
            "ORDER BY ts, seq",
            [symbol],
        )
        .to_arrow_table()
        .to_pylist()
    )


def test_stale_ticker_breaks_no_book(lake: Config) -> None:
    silver = rows(lake, "orderbook", STALE)
    # only the first row (no predecessor) and the row after the book disconnect at 10:00:15.5
    assert [r["ts"].second for r in silver if r["break_before"]] == [0, 16]
    gold = rows(lake, "orderbook_seq", STALE)
    # log_return exists on every row but the two segment starts
    assert [r["ts"].second for r in gold if r["log_return"] is None] == [0, 16]


def test_break_lands_on_the_receive_clock(lake: Config) -> None:
    silver = rows(lake, "orderbook", SKEWED)
    flagged = [round(r["ts"].second + r["ts"].microsecond / 1e6, 1) for r in silver if r["break_before"]]
    assert flagged == [0.0, 2.1]  # the first row received after the event, whatever the exchange clock says


@pytest.mark.parametrize("symbol", [MIDNIGHT, QUIET])
def test_vpin_carries_over_a_quiet_midnight(lake: Config, symbol: str) -> None:
    gold = [r for r in rows(lake, "orderbook_seq", symbol) if r["ts"] >= D1]
    assert [r["vpin"] for r in gold] == pytest.approx([0.75, 0.75, 0.75], abs=1e-12)


def _window(
    trades: list[tuple[float, str, float, int]], t: float, h: float, breaks: int
) -> tuple[float, float]:
    buy = sum(a for ts, s, a, b in trades if t - h < ts <= t and s == "buy" and b == breaks)
    sell = sum(a for ts, s, a, b in trades if t - h < ts <= t and s == "sell" and b == breaks)
    return buy, sell


def test_trade_windows_follow_the_trades_series(lake: Config) -> None:
    gold = {r["ts"].second: r for r in rows(lake, "orderbook_seq", SPLIT)}
    # the trades of SPLIT as (seconds, side, size, trades breaks received before it)
    tr = [
        (
            j / 2,
            "buy" if j % 2 == 0 else "sell",
            1.0 + (j // 2 % 3) * 0.5 if j % 2 == 0 else 0.25,
            1 if j / 2 + 0.01 > 19.75 else 0,
        )
        for j in range(62)
    ]
    # 12:00:10 starts a book segment (resync at 9.5): its book features are NULL ...
    assert gold[10]["log_return"] is None and gold[10]["ofi_sum_5s"] is None
    # ... but its 5 s trade window holds every trade in (5, 10]: buys at 6..10, sells at 5.5..9.5
    b, s = _window(tr, 10.0, 5.0, 0)
    assert (b, s) == (1.0 + 1.5 + 2.0 + 1.0 + 1.5, 1.25)  # buys at 6, 7, 8, 9, 10 s
    assert gold[10]["trade_volume_5s"] == pytest.approx(b + s, abs=1e-12)
    assert gold[11]["tfi_5s"] == pytest.approx(
        (lambda bs: (bs[0] - bs[1]) / (bs[0] + bs[1]))(_window(tr, 11.0, 5.0, 0))
    )
    # 12:00:20 is after the trades break received at 19.75: its window restarts with the trade at 20
    assert gold[20]["trade_volume_5s"] == pytest.approx(sum(_window(tr, 20.0, 5.0, 1)), abs=1e-12)
    assert gold[20]["trade_volume_5s"] == pytest.approx(2.0, abs=1e-12)  # the buy at 20 s alone
    assert gold[22]["trade_volume_5s"] == pytest.approx(sum(_window(tr, 22.0, 5.0, 1)), abs=1e-12)
    assert gold[20]["log_return"] is not None  # a trades break is not a book break


def test_kyle_lambda_drops_the_observation_across_a_trades_break(lake: Config) -> None:
    gold = {r["ts"].second: r for r in rows(lake, "orderbook_seq", SPLIT)}
    mids = {i: 100.5 + (i * 7 % 5) for i in range(31)}
    import math

    def q(i: int) -> float:  # signed flow of trades in (i − 1, i]
        return sum(
            (1.0 + (j // 2 % 3) * 0.5) if j % 2 == 0 else -0.25 for j in range(62) if i - 1 < j / 2 <= i
        )

    # observations for the row at 12:00:30: snapshots of its segment (from 10) in (0, 30], minus the
    # one whose interval holds the trades break (20)
    obs = [(math.log(mids[i] / mids[i - 1]), q(i)) for i in range(11, 31) if i != 20]
    n = len(obs)
    mr = sum(r for r, _ in obs) / n
    mq = sum(x for _, x in obs) / n
    lam = sum((r - mr) * (x - mq) for r, x in obs) / sum((x - mq) ** 2 for _, x in obs)
    assert gold[30]["kyle_lambda"] == pytest.approx(lam, rel=1e-9)


def test_rest_snapshot_takes_the_first_update_time(lake: Config) -> None:
    silver = rows(lake, "orderbook", REST)
    assert [(r["conn_id"], r["seq"], r["nonce"], r["ts"]) for r in silver] == [
        ("r1", 1, 500, at(D0, 13, 0, 0.25)),  # stamped with the update applied to it
        ("r1", 2, 2, at(D0, 13, 0, 0.25)),
        ("r1", 3, 3, at(D0, 13, 0, 0.5)),
    ]


def test_a_snapshot_no_update_followed_is_counted_not_dropped(lake: Config) -> None:
    files = [open_lake(lake).url(f.path) for f in Manifest.load(open_lake(lake)).models["rejects"].files()]
    con = duckdb.connect()
    got = con.execute(
        f'SELECT channel, reason, "count" FROM read_parquet({files!r}, hive_partitioning=false) '
        "WHERE symbol = ?",
        [REST],
    ).fetchall()
    assert got == [("orderbook", "no_exchange_time", 1)]  # conn r2's snapshot; r1's was stamped


def test_a_refused_row_breaks_its_series(lake: Config) -> None:
    silver = rows(lake, "orderbook", REJ)
    assert [(r["ts"].second, r["break_before"]) for r in silver] == [
        (0, True),
        (1, False),
        (3, True),
        (4, False),
    ]  # the NaN row at 2 s is gone, and 3 s follows a loss
    gold = {r["ts"].second: r for r in rows(lake, "orderbook_seq", REJ)}
    # trades: 1 @0.5, 2 @1.0, NaN @1.5 (refused, a trades break), 4 @2.5, 5 @3.5
    assert gold[1]["trade_volume_5s"] == pytest.approx(3.0)
    assert gold[3]["trade_volume_5s"] == pytest.approx(4.0)  # the window restarts after the refused trade
    assert gold[4]["trade_volume_5s"] == pytest.approx(9.0)
