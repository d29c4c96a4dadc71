"""One symbol-day of synthetic bronze (daedalus/devkit/synth.py describes the market it simulates).

`SymbolDay` generates a symbol's day hour by hour with numpy — book snapshots, trades, ticker rows,
connection gaps with their `events` rows, and with `book_updates` the deep book's updates — and hands
each hour's columns to its generator's `write`.
"""

from __future__ import annotations

import datetime as dt
import json
import zlib
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from daedalus.devkit.synth_book import BookSim

NS = 1_000_000_000
MS = 1_000_000
TICK_DECIMALS = 2  # prices are multiples of 0.01, built as integer ticks / 100 like a decimal parse


class DayWriter(Protocol):
    """What a symbol-day needs of its generator (synth._Generator): the knobs and where rows go."""

    exchange: str
    snapshot_ms: int
    ticker_ms: int
    levels: int
    trades_per_sec: float
    gaps_per_day: int
    hours: float
    book_updates: bool
    book_depth: int
    gaps: list[tuple[str, str, str]]

    def write(self, channel: str, day: dt.date, name: str, cols: dict[str, pa.Array]) -> None: ...


@dataclass
class SeriesState:
    """What carries from one hourly chunk of a series to the next."""

    bid_ticks: int
    last_trade_id: int = 0
    message_rank: int = 0
    conn_first_rank: dict[int, int] = field(default_factory=dict)
    book: BookSim | None = None
    update_id: int = 0
    last_conn: int = -1
    last_ts: int = 0
    last_seq: int = 0


def slug(symbol: str) -> str:
    return symbol.replace("/", "-")


def start_price_ticks(symbol: str) -> int:
    """A stable, symbol-dependent starting price (BTC-like for BTC, smaller for others)."""
    base = symbol.split("/")[0].upper()
    price = {"BTC": 60_000.0, "ETH": 3_000.0, "SOL": 150.0}.get(base, 10.0 + zlib.crc32(base.encode()) % 500)
    return int(round(price * 10**TICK_DECIMALS))


def levels_array(prices: np.ndarray, sizes: np.ndarray, counts: np.ndarray) -> pa.ListArray:
    """list<struct<price,size>> from (n, L) matrices keeping the first counts[i] levels of row i."""
    n, width = prices.shape
    keep = np.arange(width)[None, :] < counts[:, None]
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    struct = pa.StructArray.from_arrays(
        [pa.array(prices[keep], pa.float64()), pa.array(sizes[keep], pa.float64())], names=["price", "size"]
    )
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), struct)


def ts_array(ns: np.ndarray) -> pa.Array:
    return pa.array(ns.astype("datetime64[ns]"), pa.timestamp("ns", tz="UTC"))


class SymbolDay:
    """Generates and writes one symbol, one UTC day, hour by hour."""

    def __init__(
        self,
        gen: DayWriter,
        symbol: str,
        day: dt.date,
        state: SeriesState,
        rng: np.random.Generator,
        conn_base: int,
        book_rng: np.random.Generator | None = None,
    ) -> None:
        self.g = gen
        self.book_rng = book_rng
        self.symbol = symbol
        self.day = day
        self.state = state
        self.rng = rng
        self.day_ns = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * NS
        self.span_ns = int(round(gen.hours * 3600)) * NS
        self.gaps = self._draw_gaps()
        self.conn_base = conn_base

    def _draw_gaps(self) -> np.ndarray:
        """(k, 2) int64 [start, end) ns of the gaps of this day, sorted and non-overlapping."""
        k = self.g.gaps_per_day
        if k <= 0 or self.span_ns < 1200 * NS:
            return np.zeros((0, 2), dtype=np.int64)
        starts = np.sort(self.rng.integers(60 * NS, self.span_ns - 600 * NS, size=k))
        # 1 s … 400 s: the longer ones exceed max_state_staleness_seconds (300) by default.
        lengths = self.rng.integers(1 * NS, 400 * NS, size=k)
        gaps = []
        prev_end = 0
        for s, ln in zip(starts, lengths, strict=True):
            s = max(int(s), prev_end + NS)
            gaps.append((s, s + int(ln)))
            prev_end = s + int(ln)
        return self.day_ns + np.array(gaps, dtype=np.int64)

    def _in_gap(self, t: np.ndarray) -> np.ndarray:
        if len(self.gaps) == 0:
            return np.zeros(len(t), dtype=bool)
        i = np.searchsorted(self.gaps[:, 0], t, side="right") - 1
        ok = i >= 0
        out = np.zeros(len(t), dtype=bool)
        out[ok] = t[ok] < self.gaps[i[ok], 1]
        return out

    def _conn_index(self, t: np.ndarray) -> np.ndarray:
        """Which connection (0 = before the first gap of the day) a receive time belongs to."""
        if len(self.gaps) == 0:
            return np.zeros(len(t), dtype=np.int64)
        return np.searchsorted(self.gaps[:, 1], t, side="right").astype(np.int64)

    def run(self) -> None:
        hour_ns = 3600 * NS
        t0 = self.day_ns
        end = self.day_ns + self.span_ns
        hour = 0
        while t0 < end:
            t1 = min(t0 + hour_ns, end)
            self._chunk(t0, t1, hour)
            t0, hour = t1, hour + 1
        self._write_events()

    def _chunk(self, t0: int, t1: int, hour: int) -> None:
        g, rng, st = self.g, self.rng, self.state
        step = g.snapshot_ms * MS
        n_all = (t1 - t0) // step
        ts_all = t0 + np.arange(n_all, dtype=np.int64) * step
        # The mid walks every snapshot (gaps included, so the book moves on while we are away).
        moves = rng.choice(np.array([-1, 0, 1]), size=n_all, p=[0.04, 0.92, 0.04])
        bid_ticks_all = st.bid_ticks + np.cumsum(moves)
        st.bid_ticks = int(bid_ticks_all[-1]) if n_all else st.bid_ticks
        live = ~self._in_gap(ts_all)
        ts = ts_all[live]
        bid1 = bid_ticks_all[live]
        n, L = len(ts), g.levels
        spread = 1 + (rng.random(n) < 0.08).astype(np.int64) + (rng.random(n) < 0.02).astype(np.int64)
        ask1 = bid1 + spread
        # Level spacing: one tick, sometimes two (a price level with no orders is simply absent).
        bid_step = 1 + (rng.random((n, L)) < 0.15)
        ask_step = 1 + (rng.random((n, L)) < 0.15)
        bid_step[:, 0] = 0
        ask_step[:, 0] = 0
        bid_px = (bid1[:, None] - np.cumsum(bid_step, axis=1)) / 10**TICK_DECIMALS
        ask_px = (ask1[:, None] + np.cumsum(ask_step, axis=1)) / 10**TICK_DECIMALS
        bid_sz = np.round(rng.lognormal(-1.0, 1.0, (n, L)), 5) + 0.00001
        ask_sz = np.round(rng.lognormal(-1.0, 1.0, (n, L)), 5) + 0.00001
        # Now and then a side holds fewer than `levels` levels (thin book, or a partial snapshot).
        bid_n = np.where(rng.random(n) < 0.002, rng.integers(1, L + 1, n), L).astype(np.int32)
        ask_n = np.where(rng.random(n) < 0.002, rng.integers(1, L + 1, n), L).astype(np.int32)
        ob_cap = ts + rng.integers(1 * MS, 30 * MS, n)
        updates = None
        if g.book_updates:
            ob_conn = self._conn_index(ob_cap) + self.conn_base
            checkpoint = self._checkpoint(t0)
            updates = self._book_updates(ts, bid1, ask1, ob_conn)
            bid_px, bid_sz, bid_n, ask_px, ask_sz, ask_n = updates.pop("top")

        # Trades: Poisson arrivals at the touch of the latest snapshot, aggressor side by coin flip.
        n_tr = int(rng.poisson(g.trades_per_sec * (t1 - t0) / NS))
        tr_ts = np.sort(rng.integers(t0, t1, n_tr))
        tr_ts = tr_ts[~self._in_gap(tr_ts)]
        tr_ts = tr_ts[tr_ts >= ts[0]] if n else tr_ts[:0]
        idx = np.searchsorted(ts, tr_ts, side="right") - 1
        is_buy = rng.random(len(tr_ts)) < 0.5
        tr_px = np.where(is_buy, ask1[idx], bid1[idx]) / 10**TICK_DECIMALS
        tr_amt = np.round(rng.exponential(0.05, len(tr_ts)), 5) + 0.00001
        tr_id = st.last_trade_id + 1 + np.arange(len(tr_ts), dtype=np.int64)
        st.last_trade_id += len(tr_ts)
        tr_cap = tr_ts + rng.integers(1 * MS, 30 * MS, len(tr_ts))

        # Ticker: one row every ticker_ms from the latest snapshot, with the last trade price.
        tk_step = g.ticker_ms * MS
        tk_ts = np.arange(t0 + tk_step - MS, t1, tk_step, dtype=np.int64)
        tk_ts = tk_ts[~self._in_gap(tk_ts)]
        tk_ts = tk_ts[tk_ts >= ts[0]] if n else tk_ts[:0]
        ti = np.searchsorted(ts, tk_ts, side="right") - 1
        tj = np.searchsorted(tr_ts, tk_ts, side="right") - 1
        last = np.where(tj >= 0, tr_px[np.maximum(tj, 0)], np.nan)
        tk_cap = tk_ts + rng.integers(1 * MS, 30 * MS, len(tk_ts))

        # seq: one message counter per connection across the three channels, in receive order.
        caps = np.concatenate([ob_cap, tr_cap, tk_cap])
        order = np.argsort(caps, kind="stable")
        rank = np.empty(len(caps), dtype=np.int64)
        rank[order] = st.message_rank + np.arange(len(caps))
        st.message_rank += len(caps)
        conn = self._conn_index(caps) + self.conn_base
        uniq, inv = np.unique(conn, return_inverse=True)
        for c in uniq:
            st.conn_first_rank.setdefault(int(c), int(rank[conn == c].min()))
        seq = rank - np.array([st.conn_first_rank[int(c)] for c in uniq], dtype=np.int64)[inv]
        conn_names = np.array([f"synth-{slug(self.symbol)}-{int(c)}" for c in uniq], dtype=object)
        k0, k1 = n, n + len(tr_ts)

        def envelope(cap: np.ndarray, sl: slice) -> dict[str, pa.Array]:
            return {
                "collected_at": pa.array(cap // MS, pa.int64()),
                "capture_ts": ts_array(cap),
                "exchange": pa.array([g.exchange] * len(cap), pa.string()),
                "symbol": pa.array([self.symbol] * len(cap), pa.string()),
                "conn_id": pa.array(conn_names[inv[sl]] if len(cap) else [], pa.string()),
                "seq": pa.array(seq[sl], pa.int64()),
            }

        name = f"synth-{slug(self.symbol)}-{hour:02d}.parquet"
        if updates is not None:
            self._write_updates(
                updates, checkpoint, ob_cap, ts, seq[:k0], conn_names[inv[:k0]] if n else [], name
            )
        if n:
            self.g.write(
                "orderbook",
                self.day,
                name,
                {
                    **envelope(ob_cap, slice(0, k0)),
                    "timestamp": ts_array(ts),
                    "nonce": pa.array(np.arange(n, dtype=np.int64) + (ts // MS), pa.int64()),
                    "bids": levels_array(bid_px, bid_sz, bid_n),
                    "asks": levels_array(ask_px, ask_sz, ask_n),
                },
            )
        if len(tr_ts):
            self.g.write(
                "trades",
                self.day,
                name,
                {
                    **envelope(tr_cap, slice(k0, k1)),
                    "timestamp": ts_array(tr_ts),
                    "trade_id": pa.array(tr_id.astype(str), pa.string()),
                    "side": pa.array(np.where(is_buy, "buy", "sell"), pa.string()),
                    "price": pa.array(tr_px, pa.float64()),
                    "amount": pa.array(tr_amt, pa.float64()),
                    "cost": pa.array(tr_px * tr_amt, pa.float64()),
                    "info_json": pa.nulls(len(tr_ts), pa.string()),
                },
            )
        if len(tk_ts):
            bid = bid1[ti] / 10**TICK_DECIMALS
            ask = ask1[ti] / 10**TICK_DECIMALS
            cols: dict[str, pa.Array] = {
                **envelope(tk_cap, slice(k1, len(caps))),
                "timestamp": ts_array(tk_ts),
                "bid": pa.array(bid),
                "ask": pa.array(ask),
                "bid_volume": pa.array(bid_sz[ti, 0]),
                "ask_volume": pa.array(ask_sz[ti, 0]),
                "last": pa.array(last, from_pandas=True),
            }
            self.g.write("ticker", self.day, name, cols)

    def _checkpoint(self, t0: int) -> dict[str, Any] | None:
        """The whole book at the hour boundary t0, when a connection that holds it is still up."""
        st = self.state
        if (
            st.book is None
            or self._in_gap(np.array([t0]))[0]
            or int(self._conn_index(np.array([t0]))[0]) + self.conn_base != st.last_conn
        ):
            return None
        return {
            "book": st.book.full(),
            "ts": st.last_ts,
            "cap": t0,
            "seq": 2 * st.last_seq + 1,
            "conn": f"synth-{slug(self.symbol)}-{st.last_conn}",
            "id": st.update_id,
        }

    def _book_updates(
        self, ts: np.ndarray, bid1: np.ndarray, ask1: np.ndarray, conn: np.ndarray
    ) -> dict[str, Any]:
        """Drive the deep book through this chunk's instants: the changed levels (or the whole book on a
        connection's first row) per row, and the top `levels` per row for the orderbook channel."""
        g, st = self.g, self.state
        if st.book is None:
            st.book = BookSim(self.book_rng, int(bid1[0]), int(ask1[0]), g.book_depth)
        n, L = len(ts), g.levels
        tops = [np.zeros((n, L)) for _ in range(4)]
        counts = [np.zeros(n, np.int32), np.zeros(n, np.int32)]
        kinds: list[str] = []
        levels: list[tuple[list[int], list[float], list[int], list[float]]] = []
        changed = self.book_rng.integers(10, 41, n)
        for i in range(n):
            cb, ca = st.book.update(int(bid1[i]), int(ask1[i]), int(changed[i]))
            st.update_id += 1
            if int(conn[i]) != st.last_conn:
                kinds.append("snapshot")
                levels.append(st.book.full())
            else:
                kinds.append("delta")
                levels.append(
                    (
                        sorted(cb, reverse=True),
                        [cb[t] for t in sorted(cb, reverse=True)],
                        sorted(ca),
                        [ca[t] for t in sorted(ca)],
                    )
                )
            st.last_conn = int(conn[i])
            bt, bq, at, aq = st.book.top(L)
            counts[0][i], counts[1][i] = len(bt), len(at)
            tops[0][i, : len(bt)], tops[1][i, : len(bq)], tops[2][i, : len(at)], tops[3][i, : len(aq)] = (
                bt,
                bq,
                at,
                aq,
            )
        ids = st.update_id - n + 1 + np.arange(n, dtype=np.int64)
        top = (
            tops[0] / 10**TICK_DECIMALS,
            tops[1],
            counts[0],
            tops[2] / 10**TICK_DECIMALS,
            tops[3],
            counts[1],
        )
        return {"top": top, "kinds": kinds, "levels": levels, "ids": ids}

    def _write_updates(
        self,
        updates: dict[str, Any],
        checkpoint: dict[str, Any] | None,
        cap: np.ndarray,
        ts: np.ndarray,
        seq: np.ndarray,
        conns: Any,
        name: str,
    ) -> None:
        st = self.state
        n = len(ts)
        if n:
            st.last_ts, st.last_seq = int(ts[-1]), int(seq[-1])
        if checkpoint is not None:
            day = dt.datetime.fromtimestamp(checkpoint["ts"] / NS, tz=dt.UTC).date()
            self._write_book_rows(
                day,
                name.replace(".parquet", "-checkpoint.parquet"),
                ["checkpoint"],
                [checkpoint["book"]],
                np.array([checkpoint["cap"]]),
                np.array([checkpoint["ts"]]),
                np.array([checkpoint["seq"]]),
                [checkpoint["conn"]],
                np.array([checkpoint["id"]]),
                first_ids=False,
            )
        if n:
            self._write_book_rows(
                self.day,
                name,
                updates["kinds"],
                updates["levels"],
                cap,
                ts,
                2 * seq,
                list(conns),
                updates["ids"],
                first_ids=True,
            )

    def _write_book_rows(
        self,
        day: dt.date,
        name: str,
        kinds: list[str],
        levels: list,
        cap: np.ndarray,
        ts: np.ndarray,
        seq: np.ndarray,
        conns: list[str],
        ids: np.ndarray,
        first_ids: bool,
    ) -> None:
        def side(k: int) -> pa.ListArray:
            lens = np.array([len(lv[k]) for lv in levels], np.int64)
            off = np.zeros(len(levels) + 1, np.int32)
            np.cumsum(lens, out=off[1:])
            px = (
                np.fromiter((p for lv in levels for p in lv[k]), np.float64, int(off[-1])) / 10**TICK_DECIMALS
            )
            sz = np.fromiter((q for lv in levels for q in lv[k + 1]), np.float64, int(off[-1]))
            return pa.ListArray.from_arrays(
                pa.array(off, pa.int32()),
                pa.StructArray.from_arrays([pa.array(px), pa.array(sz)], names=["price", "size"]),
            )

        is_delta = np.array([k == "delta" for k in kinds])
        self.g.write(
            "book_updates",
            day,
            name,
            {
                "collected_at": pa.array(cap // MS, pa.int64()),
                "capture_ts": ts_array(cap),
                "exchange": pa.array([self.g.exchange] * len(kinds), pa.string()),
                "symbol": pa.array([self.symbol] * len(kinds), pa.string()),
                "conn_id": pa.array(conns, pa.string()),
                "seq": pa.array(seq, pa.int64()),
                "timestamp": ts_array(ts),
                "kind": pa.array(kinds, pa.string()),
                "first_update_id": pa.array(
                    ids, pa.int64(), mask=~is_delta if first_ids else np.ones(len(kinds), bool)
                ),
                "last_update_id": pa.array(ids, pa.int64()),
                "bids": side(0),
                "asks": side(2),
            },
        )

    def _write_events(self) -> None:
        """A disconnect at each gap start and a connect at its end (receive times)."""
        if len(self.gaps) == 0:
            return
        k = len(self.gaps)
        cap = np.empty(2 * k, dtype=np.int64)
        cap[0::2] = self.gaps[:, 0] + 5 * MS
        cap[1::2] = self.gaps[:, 1] - 1 * MS
        types = ["disconnect", "connect"] * k
        conns = []
        for i in range(k):
            conns += [
                f"synth-{slug(self.symbol)}-{self.conn_base + i}",
                f"synth-{slug(self.symbol)}-{self.conn_base + i + 1}",
            ]
        n = 2 * k
        cols = {
            "collected_at": pa.array(cap // MS, pa.int64()),
            "capture_ts": ts_array(cap),
            "exchange": pa.array([self.g.exchange] * n),
            "symbol": pa.array([self.symbol] * n),
            "conn_id": pa.array(conns),
            "seq": pa.array(np.full(n, -1, dtype=np.int64)),
            "event_type": pa.array(types),
            "channel": pa.nulls(n, pa.string()),
            "close_code": pa.array([1006 if t == "disconnect" else None for t in types], pa.int32()),
            "count": pa.nulls(n, pa.int64()),
            "interval_start": ts_array(np.repeat(self.gaps[:, 0], 2)),
            "interval_end": ts_array(np.repeat(self.gaps[:, 1], 2)),
            "detail": pa.array(
                [
                    json.dumps({"synthetic": True, "gap_seconds": round((e - s) / NS, 3)})
                    for s, e in np.repeat(self.gaps, 2, axis=0)
                ]
            ),
        }
        self.g.write("events", self.day, f"synth-{slug(self.symbol)}-events.parquet", cols)
        for s, e in self.gaps:
            self.g.gaps.append((self.symbol, iso(int(s)), iso(int(e))))


def iso(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / NS, tz=dt.UTC).isoformat()
