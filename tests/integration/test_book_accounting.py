"""Books kept by each market's sync rule, and every book message accounted for (issue 28).

- The real Binance COIN-M capture (tests/data), parsed straight into bronze `book_updates` rows
  with sync_rule `prev_chain`: silver.orderbook holds one row per applied diff (plus the snapshot),
  each equal (top 20 levels, every band) to an independent dict book kept by Binance's futures rule
  (tests/reference/futures_capture.py); no break after the first row; unserved = the stale diffs
  buffered before the snapshot only, counted in silver.orderbook_unserved and silver.rejects.
- The same rows declared `contiguous` (the spot rule: the bug of issue 28) cannot apply: the build
  fails its unserved-share test, naming the series and the count; the accounting test still holds.
- Hand-built lakes: a delta with a NaN price and no reload after it is counted; the same frames
  received again on a new connection are served once (unique key holds) and counted `duplicate`.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import pytest
from capture_replay import model_rows

from daedalus.build import build
from daedalus.build.datatests import raise_on_failure
from daedalus.config import load_config
from daedalus.errors import BuildError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds the reference package
from reference.book_reference import same_float  # noqa: E402
from reference.futures_capture import capture_rows, reference_books, write_rows  # noqa: E402

pytestmark = pytest.mark.slow
CAPTURE = Path(__file__).resolve().parents[1] / "data" / "binance-coinm-btcusdperp-20240808.jsonl.gz"
EDGES = [0.0, 5.0, 10.0, 25.0, 50.0, 100.0]
BANDS = ["0_5bps", "5_10bps", "10_25bps", "25_50bps", "50_100bps"]
SELECT = "orderbook orderbook_unserved rejects"
DAY_NS = 86_400 * 1_000_000_000


def config(root: Path, **extra: Any) -> Any:
    return load_config(
        overrides={
            "storage.root": str(root),
            "duckdb.temp_directory": str(root / "_tmp"),
            "etl.features.max_levels": 20,
            **extra,
        }
    )


def write_by_date(rows: list[dict[str, Any]], root: Path) -> None:
    import datetime as dt

    days: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        ns = r["timestamp"] if r["timestamp"] is not None else r["capture_ts"]
        day = dt.datetime.fromtimestamp(ns // 1_000_000_000, dt.UTC).date().isoformat()
        days.setdefault(day, []).append(r)
    for day, part in days.items():
        write_rows(part, root, day)


def model(root: Path, name: str, cols: str, order: str, group: bool = False) -> list[tuple]:
    return model_rows(config(root), name, cols, order, group=group)


@pytest.fixture(scope="module")
def coinm_rows() -> list[dict[str, Any]]:
    return capture_rows(CAPTURE, "binancecoinm", "BTC/USD:BTC", "coinm-1")


def test_coinm_capture_every_applied_diff_served_and_equal_to_the_futures_rule_book(
    tmp_path: Path, coinm_rows: list[dict[str, Any]]
) -> None:
    write_by_date(coinm_rows, tmp_path)
    result = build(config(tmp_path), select=SELECT, full_refresh=True, catalog=False)
    assert result.tests and all(t.passed for t in result.tests), [
        t.name for t in result.tests if not t.passed
    ]
    assert {"book_messages_accounted", "book_unserved_share"} <= {t.name for t in result.tests}
    cols = ", ".join(
        ["seq", "kind", "nonce", "bids", "asks", "break_before", "break_reason"]
        + [f"{s}_depth_{b}" for b in BANDS for s in ("bid", "ask")]
    )
    got = model(tmp_path, "orderbook", cols, "seq")
    want, dropped = reference_books(CAPTURE, 20, EDGES)
    # one served row per applied diff, plus the snapshot
    assert len(got) == len(want) == len(coinm_rows) - dropped and dropped == 23
    for g, w in zip(got, want, strict=True):
        seq, kind, nonce, bids, asks, brk, reason = g[:7]
        assert nonce == w["last_update_id"], seq
        assert [(lv["price"], lv["size"]) for lv in bids] == w["bids"], seq
        assert [(lv["price"], lv["size"]) for lv in asks] == w["asks"], seq
        assert brk == (seq == 0) and reason == ("snapshot" if seq == 0 else None), seq
        for i in range(len(BANDS)):
            assert same_float(g[7 + 2 * i], w["bid_bands"][i]), (seq, BANDS[i])
            assert same_float(g[8 + 2 * i], w["ask_bands"][i]), (seq, BANDS[i])
    unserved = model(tmp_path, "orderbook_unserved", "seq, reason", "seq")
    assert len(unserved) == dropped and {r[1] for r in unserved} == {"stale"}
    assert max(r[0] for r in unserved) <= dropped  # the buffered diffs right after the snapshot
    counted = model(tmp_path, "rejects", "channel, reason, count", "date, channel, reason")
    assert sum(c for ch, r, c in counted if ch == "book_updates" and r == "stale") == dropped


def test_coinm_capture_under_the_spot_rule_fails_the_build_naming_the_series(
    tmp_path: Path, coinm_rows: list[dict[str, Any]]
) -> None:
    write_by_date([{**r, "sync_rule": "contiguous"} for r in coinm_rows], tmp_path)
    with pytest.raises(BuildError) as err:
        build(config(tmp_path), select=SELECT, full_refresh=True, catalog=False)
    results = err.value.result.tests
    by_name = {t.name: t for t in results}
    assert by_name["book_messages_accounted"].passed  # every message is still accounted for
    share = by_name["book_unserved_share"]
    assert not share.passed and share.failures >= 1
    row = share.sample[0]
    assert (row["exchange"], row["symbol"], row["date"]) == ("binancecoinm", "BTC/USD:BTC", "2024-08-08")
    assert int(row["unserved_messages"]) > 0.9 * int(row["messages"])
    with pytest.raises(
        BuildError, match=r"book_unserved_share.*binancecoinm.*BTC/USD:BTC.*unserved_messages="
    ):
        raise_on_failure([share])


def _row(
    conn: str, seq: int, kind: str, ts_ms: int, u: int, bids: list, asks: list, first: int | None = None
) -> dict:
    return {
        "collected_at": ts_ms,
        "capture_ts": ts_ms * 1_000_000,
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "conn_id": conn,
        "seq": seq,
        "timestamp": ts_ms * 1_000_000,
        "kind": kind,
        "first_update_id": first,
        "last_update_id": u,
        "prev_update_id": None,
        "bids": [{"price": p, "size": q} for p, q in bids],
        "asks": [{"price": p, "size": q} for p, q in asks],
        "sync_rule": "contiguous",
    }


T0 = 1_704_067_200_000  # 2024-01-01 00:00:00 UTC, ms


def _stream(conn: str, t0: int) -> list[dict[str, Any]]:
    rows = [_row(conn, 0, "snapshot", t0, 10, [(100.0, 1.0), (99.0, 2.0)], [(101.0, 1.0), (102.0, 1.0)])]
    for i in range(1, 400):
        rows.append(
            _row(conn, i, "delta", t0 + 100 * i, 10 + i, [(100.0, float(i % 5 + 1))], [], first=10 + i)
        )
    return rows


def test_nan_delta_without_reload_is_counted_and_fails_the_share(tmp_path: Path) -> None:
    rows = _stream("c1", T0 + 3_600_000)
    rows[200]["bids"] = [{"price": float("nan"), "size": 1.0}]
    write_rows(rows, tmp_path, "2024-01-01")
    # the book tests compare silver.orderbook with silver.orderbook_unserved: with one built alone
    # they do not run (a stale other side would fail them for nothing)
    alone = build(config(tmp_path), select="orderbook", full_refresh=True, catalog=False)
    assert alone.tests and not {"book_messages_accounted", "book_unserved_share"} & {
        t.name for t in alone.tests
    }
    with pytest.raises(BuildError):
        build(config(tmp_path), select=SELECT, full_refresh=True, catalog=False)
    unserved = model(tmp_path, "orderbook_unserved", "seq, reason", "seq")
    assert unserved[0] == (200, "invalid_levels") and len(unserved) == 200
    assert {r[1] for r in unserved[1:]} == {"no_book"}
    served = model(tmp_path, "orderbook", "count(*)", "1")
    assert served == [(200,)]
    # with a bound that allows the loss the build passes, and the accounting holds
    ok = build(
        config(tmp_path, **{"etl.features.max_unserved_book_share": 1.0}),
        select=SELECT,
        full_refresh=True,
        catalog=False,
    )
    assert all(t.passed for t in ok.tests)
    counted = model(tmp_path, "rejects", "reason, count", "reason")
    assert ("invalid_levels", 1) in counted and ("no_book", 199) in counted


def test_a_message_without_symbol_is_counted(tmp_path: Path) -> None:
    rows = _stream("c1", T0 + 3_600_000)[:50]
    rows.append({**_row("c1", 50, "delta", T0 + 3_700_000, 60, [(100.0, 3.0)], [], first=60), "symbol": None})
    write_rows(rows, tmp_path, "2024-01-01")
    result = build(config(tmp_path), select=SELECT, full_refresh=True, catalog=False)
    assert all(t.passed for t in result.tests)
    assert model(tmp_path, "orderbook", "count(*)", "1") == [(50,)]
    counted = model(tmp_path, "rejects", "channel, symbol, reason, count", "reason")
    assert counted == [("book_updates", None, "symbol_null", 1)]


def test_same_frames_on_a_new_connection_are_served_once_and_counted(tmp_path: Path) -> None:
    first = _stream("c1", T0 + 3_600_000)
    again = [{**r, "conn_id": "c2", "capture_ts": r["capture_ts"] + 60_000_000_000} for r in first]
    write_rows(first, tmp_path, "2024-01-01")
    write_rows(again, tmp_path, "2024-01-01")
    result = build(config(tmp_path), select=SELECT, full_refresh=True, catalog=False)
    assert all(t.passed for t in result.tests)  # unique(exchange, symbol, ts, seq), accounting
    served = model(tmp_path, "orderbook", "conn_id, count(*)", "conn_id", group=True)
    assert served == [("c1", 400)]
    unserved = model(tmp_path, "orderbook_unserved", "conn_id, reason, count(*)", "conn_id", group=True)
    assert unserved == [("c2", "duplicate", 400)]


def test_a_rest_load_no_stamped_row_followed_is_counted_at_its_receive_time(tmp_path: Path) -> None:
    rows = _stream("c1", T0 + 3_600_000)[:50]
    # a reload over REST (no exchange time) that the connection's end cut off: no row follows it
    rows.append(
        {**_row("c1", 50, "snapshot", T0 + 3_700_000, 70, [(100.0, 1.0)], [(101.0, 1.0)]), "timestamp": None}
    )
    write_rows(rows, tmp_path, "2024-01-01")
    result = build(config(tmp_path), select=SELECT, full_refresh=True, catalog=False)
    assert all(t.passed for t in result.tests)  # accounted for: 50 served + 1 counted
    assert model(tmp_path, "orderbook_unserved", "seq, reason, kind", "seq") == [
        (50, "no_exchange_time", "snapshot")
    ]
    assert model(tmp_path, "orderbook", "count(*)", "1") == [(50,)]


def test_a_checkpoint_is_never_served_and_its_mismatch_breaks_the_next_served_row(tmp_path: Path) -> None:
    rows = _stream("c1", T0 + 3_600_000)[:100]
    # the collector's checkpoint disagrees with the book the rows rebuild (a size the rows never set)
    cp = _row(
        "c1", 100, "checkpoint", T0 + 3_600_000 + 9_900, 109, [(100.0, 42.0), (99.0, 2.0)], [(101.0, 1.0)]
    )
    tail = [
        _row(
            "c1",
            101 + i,
            "delta",
            T0 + 3_600_000 + 10_000 + 100 * i,
            110 + i,
            [(99.0, float(i + 3))],
            [],
            first=110 + i,
        )
        for i in range(20)
    ]
    write_rows([*rows, cp, *tail], tmp_path, "2024-01-01")
    result = build(config(tmp_path), select=SELECT, full_refresh=True, catalog=False)
    assert all(t.passed for t in result.tests)
    got = model(tmp_path, "orderbook", "seq, kind, break_before, break_reason, bids[1].size", "seq")
    assert len(got) == 120 and 100 not in {g[0] for g in got}  # every message, no checkpoint
    assert [g[0] for g in got if g[2]] == [0, 101]
    assert got[100][:4] == (101, "delta", True, "checkpoint_mismatch") and got[100][4] == 42.0


def test_a_lake_written_before_sync_rule_infers_the_rule_from_the_ids(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from daedalus.collector.schemas import BOOK_UPDATES

    # futures-style ids: U skips, pu chains (the spot rule would break at row 2)
    rows = [_row("c1", 0, "snapshot", T0 + 3_600_000, 10, [(100.0, 1.0)], [(101.0, 1.0)])]
    u = 10
    for i in range(1, 50):
        rows.append(
            {
                **_row(
                    "c1", i, "delta", T0 + 3_600_000 + 100 * i, u + 7, [(100.0, float(i))], [], first=u + 3
                ),
                "prev_update_id": u,
            }
        )
        u += 7
    old = pa.schema([f for f in BOOK_UPDATES if f.name != "sync_rule"])
    out = tmp_path / "bronze" / "book_updates" / "exchange=binance" / "date=2024-01-01"
    out.mkdir(parents=True)
    pq.write_table(
        pa.Table.from_pylist([{k: v for k, v in r.items() if k != "sync_rule"} for r in rows], schema=old),
        out / "c1.parquet",
    )
    result = build(config(tmp_path), select=SELECT, full_refresh=True, catalog=False)
    assert all(t.passed for t in result.tests)
    assert model(tmp_path, "orderbook", "count(*), max(bids[1].size)", "1", group=False) == [(50, 49.0)]


def _two_hours_across_a_checkpoint(refuse_at_ms: int | None = None) -> tuple[list[dict], dict]:
    """Connection c1 from 00:10 to 02:00: a snapshot, a delta every 10 s, and the collector's 01:00
    checkpoint (its own book), stamped at the boundary as the collector stamps it (docs/contracts.md).
    The delta at `refuse_at_ms` carries an invalid level. Returns the rows and the checkpoint."""
    t0 = T0 + 600_000
    book = {100.0: 1.0, 99.0: 2.0}
    rows = [_row("c1", 0, "snapshot", t0, 10, sorted(book.items(), reverse=True), [(101.0, 1.0)])]
    cp: dict = {}
    seq, u, t = 1, 10, t0
    while t < T0 + 2 * 3_600_000:
        t += 10_000
        if t >= T0 + 3_600_000 and not cp:
            cp = _row(
                "c1", seq, "checkpoint", T0 + 3_600_000, u, sorted(book.items(), reverse=True), [(101.0, 1.0)]
            )
            rows.append(cp)
            seq += 1
        book[99.0] = float(seq % 7 + 1)
        u += 1
        r = _row("c1", seq, "delta", t, u, [(99.0, book[99.0])], [], first=u)
        if t == refuse_at_ms:
            r["bids"] = [{"price": 99.0, "size": float("inf")}]
        rows.append(r)
        seq += 1
    return rows, cp


def test_hourly_slices_equal_the_day_when_a_checkpoint_ends_a_broken_stretch(tmp_path: Path) -> None:
    # 00:10 snapshot, a delta every 10 s; a refused delta at 00:30 breaks the rebuilt book; the
    # collector's 01:00 checkpoint (its own book, which never broke) recovers it: the first served
    # row after it breaks, with the failure's reason, in the day build and in the 01:00 slice alike
    rows, cp = _two_hours_across_a_checkpoint(refuse_at_ms=T0 + 30 * 60_000)
    write_rows(rows, tmp_path, "2024-01-01")
    cols = "seq, break_before, break_reason, bids"
    extra = {"etl.features.max_unserved_book_share": 1.0}
    build(
        config(tmp_path, **{**extra, "etl.slice_hours": 24}), select=SELECT, full_refresh=True, catalog=False
    )
    day = model(tmp_path, "orderbook", cols, "seq")
    day_unserved = model(tmp_path, "orderbook_unserved", "seq, reason", "seq")
    build(
        config(tmp_path, **{**extra, "etl.slice_hours": 1}), select=SELECT, full_refresh=True, catalog=False
    )
    assert model(tmp_path, "orderbook", cols, "seq") == day
    assert model(tmp_path, "orderbook_unserved", "seq, reason", "seq") == day_unserved
    first_after = next(g for g in day if g[0] > cp["seq"])
    assert first_after[1:3] == (True, "invalid_levels")
    assert [r[1] for r in day_unserved] == ["invalid_levels"] + ["no_book"] * (len(day_unserved) - 1)


def test_hourly_slices_hold_the_frames_a_new_connection_receives_again(tmp_path: Path) -> None:
    # c1: a snapshot at 00:10, a delta every 10 s, the collector's 01:00 checkpoint; c2 receives the
    # same frames (same exchange time, seq, ids) 30 s later. The 01:00 slice replays from the
    # checkpoint: its copies must still be held (macros/book_updates.sql `upd_floor`: the keys below
    # the lowest replayed seq are not grouped), as in the day build
    rows, _ = _two_hours_across_a_checkpoint()
    again = [{**r, "conn_id": "c2", "capture_ts": r["capture_ts"] + 30_000_000_000} for r in rows]
    write_rows(rows + again, tmp_path, "2024-01-01")
    build(config(tmp_path, **{"etl.slice_hours": 24}), select=SELECT, full_refresh=True, catalog=False)
    cols = "conn_id, seq, break_before, bids"
    day = model(tmp_path, "orderbook", cols, "seq")
    day_unserved = model(tmp_path, "orderbook_unserved", "conn_id, seq, reason", "seq")
    result = build(
        config(tmp_path, **{"etl.slice_hours": 1}), select=SELECT, full_refresh=True, catalog=False
    )
    assert all(t.passed for t in result.tests)  # unique(exchange, symbol, ts, seq), accounting
    assert model(tmp_path, "orderbook", cols, "seq") == day
    assert model(tmp_path, "orderbook_unserved", "conn_id, seq, reason", "seq") == day_unserved
    assert {r[0] for r in day} == {"c1"} and len(day) == len(rows) - 1  # the checkpoint is not served
    assert {(r[0], r[2]) for r in day_unserved} == {("c2", "duplicate")} and len(day_unserved) == len(
        rows
    ) - 1


def _skewed_connection(conn: str, capture0_ms: int, skew_ms: int, follower: bool = True) -> list[dict]:
    """As the collector writes a Binance connection: a REST snapshot (no exchange time) received at
    capture0_ms, the checkpoint after the load (stamped with the first update's time,
    docs/contracts.md), then 399 diffs; exchange time runs `skew_ms` ahead of receive time."""
    snap = {
        **_row(conn, 0, "snapshot", capture0_ms, 10, [(100.0, 1.0), (99.0, 2.0)], [(101.0, 1.0)]),
        "timestamp": None,
    }
    if not follower:
        return [snap]
    ns = 1_000_000
    cp = {**snap, "seq": 1, "kind": "checkpoint", "timestamp": (capture0_ms + 100 + skew_ms) * ns}
    cp["capture_ts"] += 100 * ns
    rows = [snap, cp]
    for r in _stream(conn, capture0_ms)[1:]:
        rows.append(
            {
                **r,
                "seq": r["seq"] + 1,
                "capture_ts": r["capture_ts"] + 50 * ns,
                "timestamp": r["timestamp"] + skew_ms * ns,
            }
        )
    return rows


H_MS = 3_600_000


@pytest.mark.parametrize(
    ("capture0", "skew_ms"),
    [
        (T0 + 2 * H_MS, 10 * H_MS),  # a collector clock 10 h behind (no RTC, before NTP sync)
        (T0 + 20 * H_MS, -10 * H_MS),  # 10 h ahead
        (T0 + 23 * H_MS + 1_800_000, H_MS),  # the soak's venue clock ahead across midnight
        (T0 + 23 * H_MS + 1_800_000, 10 * H_MS),
        (T0 + 24 * H_MS + 1_800_000, -10 * H_MS),
    ],
    ids=[
        "exchange_ahead",
        "receive_ahead",
        "exchange_1h_ahead_over_midnight",
        "exchange_ahead_over_midnight",
        "receive_ahead_over_midnight",
    ],
)
def test_a_rest_load_has_one_fate_whatever_the_clock_skew(
    tmp_path: Path, capture0: int, skew_ms: int
) -> None:
    # the load takes the exchange time of its follower (the checkpoint after it) where that lies on
    # its receive date: served once, there; else (bronze dates them in different folders) counted
    # `no_exchange_time` once, at its receive time; the diffs are served from the checkpoint either way
    rows = _skewed_connection("c1", capture0, skew_ms)
    lonely = _skewed_connection("c2", capture0 + 60_000, skew_ms, follower=False)  # nothing followed it
    write_by_date(rows, tmp_path)
    write_by_date(lonely, tmp_path)
    result = build(config(tmp_path), select=SELECT, full_refresh=True, catalog=False)
    assert all(t.passed for t in result.tests), [t.name for t in result.tests if not t.passed]
    day = lambda ms: dt.datetime.fromtimestamp(ms / 1000, dt.UTC).date().isoformat()  # noqa: E731
    fill_ms = capture0 + 100 + skew_ms
    same_day = day(fill_ms) == day(capture0)
    served = model(tmp_path, "orderbook", "conn_id, seq, date::VARCHAR, epoch_ms(ts)", "conn_id, seq")
    assert [s for s in served if s[1] == 0] == ([("c1", 0, day(fill_ms), fill_ms)] if same_day else [])
    assert [s[1] for s in served if s[1] > 0] == list(range(2, 401))  # every diff, no checkpoint
    assert {s[0] for s in served} == {"c1"}
    unserved = model(tmp_path, "orderbook_unserved", "conn_id, seq, reason, date::VARCHAR", "conn_id, seq")
    want = [("c2", 0, "no_exchange_time", day(capture0 + 60_000))]
    if not same_day:
        want.insert(0, ("c1", 0, "no_exchange_time", day(capture0)))
    assert unserved == want
    counted = model(tmp_path, "rejects", "channel, reason, sum(count)::INT", "1, 2", group=True)
    assert counted == [("book_updates", "no_exchange_time", len(want))]
