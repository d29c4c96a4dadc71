"""One whole ordered series through the sequential kernels: numpy in, numpy out.

`register.py` turns Arrow lists into these numpy arrays and back; this module decides which kernel
sees what, applies the break rule (docs/features.md "Time") uniformly, and keeps the VPIN state that
crosses partition boundaries. Times are integer microseconds since the epoch (DuckDB's TIMESTAMPTZ
resolution). NaN marks NULL inside; the Arrow layer turns it into a real NULL.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from daedalus.config import SequentialParams
from daedalus.udfs.columns import SEQUENTIAL, VpinParams
from daedalus.udfs.kernels.kyle import kyle_lambda
from daedalus.udfs.kernels.ofi import ofi_mlofi
from daedalus.udfs.kernels.returns import mid_prices, mid_returns, touch
from daedalus.udfs.kernels.segments import segment_ids, segment_starts
from daedalus.udfs.kernels.spread import (
    spread_percentile,
    spread_regime_dynamic,
    spread_regime_static,
)
from daedalus.udfs.kernels.vpin import bvc_bars, fill_buckets, rolling_vpin
from daedalus.udfs.kernels.windows import flow_between_snapshots, last_at_or_before, window_sums

US = 1_000_000
DAY_US = 86_400 * US
HOUR_US = 3_600 * US
BVC_BAR_US = 60 * US
BUCKETS_PER_DAY = 50  # docs/features.md: auto V = previous day's volume / 50


# The kernels' parameters: declared once, as config keys of etl.features (daedalus/config.py).
SeqParams = SequentialParams


@dataclass
class Book:
    """Flattened levels of n snapshots: side arrays back to back, offsets of length n + 1."""

    ts: np.ndarray
    bid_px: np.ndarray
    bid_sz: np.ndarray
    bid_off: np.ndarray
    ask_px: np.ndarray
    ask_sz: np.ndarray
    ask_off: np.ndarray
    crossed: np.ndarray
    break_before: np.ndarray
    trade_breaks: np.ndarray | None = None
    """As `Series.trade_breaks`."""


@dataclass
class Trades:
    ts: np.ndarray
    buy: np.ndarray
    """Size if the aggressor bought, else 0."""
    sell: np.ndarray
    breaks: np.ndarray | None = None
    """Per trade, the number of trades-series break events received before it (receive clock);
    None = no break known. Trade windows restart where it grows."""


def _empty_trades() -> Trades:
    return Trades(np.empty(0, np.int64), np.empty(0), np.empty(0))


@dataclass
class Series:
    """One series as the SQL model hands it over: per-snapshot scalars only, in (ts, seq) order.

    `ofi_raw`/`mlofi_raw` are e^1 and Σ w_m e^m of each snapshot against its predecessor in the
    input, computed row-wise (kernels/ofi.py `ofi_pairs`); breaks and crossed books are applied here.
    `mid` and `spread` are NaN when a side is empty.
    """

    ts: np.ndarray
    crossed: np.ndarray
    break_before: np.ndarray
    mid: np.ndarray
    spread: np.ndarray
    ofi_raw: np.ndarray
    mlofi_raw: np.ndarray
    trade_breaks: np.ndarray | None = None
    """Per snapshot, the number of trades-series break events received before it (same count as
    `Trades.breaks`): a snapshot's trade windows hold only trades of its own count."""


def series_from_book(book: Book, p: SeqParams) -> Series:
    """The model's per-row preparation done in numpy (for tests and benchmarks on raw books)."""
    n = book.ts.shape[0]
    no_seg = np.zeros(n, np.int64)
    raw_ofi, raw_mlofi = ofi_mlofi(
        book.bid_px,
        book.bid_sz,
        book.bid_off,
        book.ask_px,
        book.ask_sz,
        book.ask_off,
        no_seg,
        np.zeros(n, np.bool_),
        np.int64(p.ofi_levels),
        float(p.ofi_decay_alpha),
    )
    bid1 = touch(book.bid_px, book.bid_off)
    ask1 = touch(book.ask_px, book.ask_off)
    return Series(
        book.ts,
        book.crossed,
        book.break_before,
        mid_prices(book.bid_px, book.bid_off, book.ask_px, book.ask_off),
        ask1 - bid1,
        raw_ofi,
        raw_mlofi,
        book.trade_breaks,
    )


def orderbook_sequential(book: Book, trades: Trades | None, p: SeqParams) -> dict[str, np.ndarray]:
    """`series_sequential` of a raw book (see `series_from_book`)."""
    return series_sequential(series_from_book(book, p), trades, p)


def vpin_as_of(ts: np.ndarray, point_ts: np.ndarray, point_vpin: np.ndarray) -> np.ndarray:
    """VPIN at each snapshot: the value of the last point (completed bucket, or the value carried in
    at a partition start) with ts ≤ t; points sorted by (ts, bucket index), so among points sharing
    a timestamp the last one wins. NULL (NaN) before any point; breaks do not restart it."""
    idx = np.searchsorted(point_ts, ts, side="right") - 1
    out = np.where(idx >= 0, point_vpin[np.maximum(idx, 0)] if point_vpin.shape[0] else np.nan, np.nan)
    return out


def _running_max(counts: np.ndarray | None, n: int) -> np.ndarray:
    if counts is None:
        return np.zeros(n, np.int64)
    return np.maximum.accumulate(counts.astype(np.int64)) if n else np.empty(0, np.int64)


def book_breaks(break_before: np.ndarray, crossed: np.ndarray) -> np.ndarray:
    """Where the book series breaks for the sequential kernels: `break_before`, plus a crossed row.

    docs/features.md `crossed`: "for the sequential features the row is a break". A break sits
    between rows, so a crossed row stands in for one: the series breaks before it (its book-derived
    sequential values are NULL, nothing before it reaches it) and after it (the next row starts afresh,
    so no window or return holds the crossed book). A crossed row is thus a segment of its own, and
    its structural columns are untouched (they are not computed here).
    """
    out = break_before | crossed
    out[1:] |= crossed[:-1]
    return out


def series_sequential(
    sr: Series, trades: Trades | None, p: SeqParams, vpin_points: tuple[np.ndarray, np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """Every per-snapshot sequential column of docs/features.md for one series (vpin when points are given).

    Keys: seg_start, log_return, mid_velocity, ofi, mlofi, kyle_lambda, kyle_lambda_r2, spread_pctile,
    spread_regime (int8 codes) and per horizon 2-D arrays ofi_sum, mlofi_sum, rv, tfi, trade_volume
    (shape (len(horizons), n)).
    """
    tr = trades if trades is not None else _empty_trades()
    ts = sr.ts
    n = ts.shape[0]
    seg = segment_ids(
        ts, book_breaks(sr.break_before, sr.crossed), np.int64(round(p.max_state_staleness_seconds * US))
    )
    starts = segment_starts(seg)
    # OFI/MLOFI: NULL at a segment start (a crossed book of the pair is one, see book_breaks).
    ofi = np.where(starts, np.nan, sr.ofi_raw)
    mlofi = np.where(starts, np.nan, sr.mlofi_raw)
    mid = sr.mid
    log_return, velocity = mid_returns(mid, ts, seg, float(US))

    # Trades-series segments (docs/features.md "Time"): trade windows restart only at breaks of the trades
    # series, placed on the receive clock for trades and snapshots alike. Running maxima keep both
    # non-decreasing in time order, which window_sums needs, if a capture clock ever stepped back.
    hi = np.arange(n, dtype=np.int64)
    t_seg = _running_max(tr.breaks, tr.ts.shape[0])
    q_tseg = _running_max(sr.trade_breaks, n)
    t_hi = last_at_or_before(tr.ts, ts)
    lr2 = log_return * log_return
    hs = len(p.horizons)
    out2d = {k: np.full((hs, n), np.nan) for k in ("ofi_sum", "mlofi_sum", "rv", "tfi", "trade_volume")}
    snap_vals = np.empty((3, n))
    snap_vals[0] = ofi
    snap_vals[1] = mlofi
    snap_vals[2] = lr2
    trade_vals = np.empty((2, tr.ts.shape[0]))
    trade_vals[0] = tr.buy
    trade_vals[1] = tr.sell
    for j, h in enumerate(p.horizons):
        h_us = np.int64(h * US)
        s, c = window_sums(ts, seg, snap_vals, ts, seg, hi, h_us)
        out2d["ofi_sum"][j] = np.where(c[0] > 0, s[0], np.nan)
        out2d["mlofi_sum"][j] = np.where(c[1] > 0, s[1], np.nan)
        out2d["rv"][j] = np.where(c[2] > 0, np.sqrt(np.maximum(s[2], 0.0)), np.nan)
        ts_sum, _ = window_sums(tr.ts, t_seg, trade_vals, ts, q_tseg, t_hi, h_us)
        b, a = ts_sum[0], ts_sum[1]
        vol = b + a
        with np.errstate(invalid="ignore", divide="ignore"):
            out2d["tfi"][j] = np.where(vol > 0, (b - a) / vol, np.nan)
        out2d["trade_volume"][j] = vol

    flow = flow_between_snapshots(tr.ts, tr.buy - tr.sell, ts)
    # An observation needs the trades series unbroken since the previous snapshot, too.
    flow[1:][q_tseg[1:] != q_tseg[:-1]] = np.nan
    lam, r2 = kyle_lambda(ts, seg, log_return, flow, np.int64(p.kyle_lambda_window * US))

    spread = sr.spread
    with np.errstate(invalid="ignore", divide="ignore"):
        spread_bps = spread / mid * 1e4
    if p.use_dynamic_spread_regime:
        pctile = spread_percentile(ts, seg, spread_bps, np.int64(p.spread_regime_window * US))
    else:
        pctile = np.full(n, np.nan)

    out: dict[str, np.ndarray] = {
        "seg_start": starts,
        "log_return": log_return,
        "mid_velocity": velocity,
        "ofi": ofi,
        "mlofi": mlofi,
        "kyle_lambda": lam,
        "kyle_lambda_r2": r2,
        "spread_pctile": pctile,
    }
    out.update(out2d)
    # docs/features.md "Time": the first value after a break of the book is NULL for the columns
    # declared `null_at_break` (udfs/columns.py); a 2-D column holds one row per horizon.
    for c in SEQUENTIAL:
        if c.null_at_break:
            out[c.name][..., starts] = np.nan
    # The regime follows the percentile, NULLs included; the static one needs no history.
    if p.use_dynamic_spread_regime:
        out["spread_regime"] = spread_regime_dynamic(
            out["spread_pctile"], p.spread_tight_percentile, p.spread_wide_percentile
        )
    else:
        out["spread_regime"] = spread_regime_static(spread, mid, p.tight_spread_threshold)
    if vpin_points is not None:
        out["vpin"] = vpin_as_of(ts, vpin_points[0], vpin_points[1])
    else:
        out["vpin"] = np.full(n, np.nan)
    return out


# --------------------------------------------------------------------------------------------- VPIN


@dataclass
class VpinState:
    """What a series' VPIN needs from earlier partitions (carried by the `vpin_buckets` model)."""

    bucket_v: float = 0.0
    fill_buy: float = 0.0
    fill_sell: float = 0.0
    day_v: float = 0.0
    """V for buckets opened from now on; 0 = not known yet (auto mode, first hour running)."""
    first_hour_volume: float = 0.0
    last_close: float = 0.0
    day_volume: float = 0.0
    """Volume traded on `day` (the partition this state was taken at the end of)."""
    series_start: int = -1
    first_hour_done: bool = False
    n_completed: int = 0
    day: int = -1
    has_close: bool = False
    recent_imbalance: np.ndarray = field(default_factory=lambda: np.empty(0))
    recent_volume: np.ndarray = field(default_factory=lambda: np.empty(0))
    recent_dp: np.ndarray = field(default_factory=lambda: np.empty(0))

    def floats(self) -> list[float]:
        return [
            self.bucket_v,
            self.fill_buy,
            self.fill_sell,
            self.day_v,
            self.first_hour_volume,
            self.last_close,
            self.day_volume,
        ]

    def ints(self) -> list[int]:
        return [self.series_start, int(self.first_hour_done), self.n_completed, self.day, int(self.has_close)]

    @classmethod
    def from_lists(
        cls,
        f: list[float] | None,
        i: list[int] | None,
        imb: list[float] | None,
        vol: list[float] | None,
        dp: list[float] | None,
    ) -> VpinState:
        if f is None or i is None:
            return cls()
        return cls(
            bucket_v=f[0],
            fill_buy=f[1],
            fill_sell=f[2],
            day_v=f[3],
            first_hour_volume=f[4],
            last_close=f[5],
            day_volume=f[6],
            series_start=int(i[0]),
            first_hour_done=bool(i[1]),
            n_completed=int(i[2]),
            day=int(i[3]),
            has_close=bool(i[4]),
            recent_imbalance=np.asarray(imb or [], float),
            recent_volume=np.asarray(vol or [], float),
            recent_dp=np.asarray(dp or [], float),
        )


@dataclass
class VpinPartition:
    """Buckets completed in one partition; `open_vpin` is the value carried in from before it."""

    open_vpin: float
    open_index: int
    ts: np.ndarray
    index: np.ndarray
    volume: np.ndarray
    buy: np.ndarray
    sell: np.ndarray
    vpin: np.ndarray
    state: VpinState


def _current_vpin(imb: np.ndarray, vol: np.ndarray, n: int) -> float:
    if imb.shape[0] < n:
        return float("nan")
    v = rolling_vpin(
        imb[-n:-1] if n > 1 else np.empty(0),
        vol[-n:-1] if n > 1 else np.empty(0),
        imb[-1:],
        vol[-1:],
        np.int64(n),
    )
    return float(v[0])


def vpin_partition(
    ts: np.ndarray,
    amount: np.ndarray,
    is_buy: np.ndarray,
    price: np.ndarray,
    state: VpinState,
    p: VpinParams,
    partition_start: int,
) -> VpinPartition:
    """Advance one series' VPIN through the trades of one UTC day (sorted by ts, trade_seq, trade_id).

    Auto V (docs/features.md): at the start of each day V = previous day's volume / 50; on the first day of
    a series V = 24 × (volume of the first hour after the first trade) / 50 and the first hour's trades
    open no bucket (so no value before the hour ends depends on later trades). With no volume the day
    before, V stays what it was.
    """
    n = p.window_buckets
    st = VpinState(**{k: getattr(state, k) for k in state.__dataclass_fields__})
    day = partition_start // DAY_US
    open_vpin = _current_vpin(st.recent_imbalance, st.recent_volume, n)
    open_index = st.n_completed - 1
    eligible = np.ones(ts.shape[0], np.bool_)
    if p.bucket_volume is not None:
        st.day_v = float(p.bucket_volume)
        st.first_hour_done = True
    else:
        if st.first_hour_done and st.day == day - 1 and st.day_volume > 0.0:
            st.day_v = st.day_volume / BUCKETS_PER_DAY
        if not st.first_hour_done:
            if st.series_start < 0 and ts.shape[0] > 0:
                st.series_start = int(ts[0])
            if st.series_start >= 0:
                hour_end = st.series_start + HOUR_US
                in_hour = ts < hour_end
                st.first_hour_volume += float(amount[in_hour].sum())
                eligible = ~in_hour
                if partition_start + DAY_US >= hour_end:
                    st.first_hour_done = True
                    st.day_v = 24.0 * st.first_hour_volume / BUCKETS_PER_DAY
            else:
                eligible[:] = False
    if st.day_v <= 0.0:
        eligible[:] = False
    if p.bvc:
        ends, vols, fracs, last_close, dp = bvc_bars(
            ts,
            price,
            amount,
            eligible,
            np.int64(BVC_BAR_US),
            st.last_close if st.has_close else float("nan"),
            st.recent_dp,
            np.int64(p.sigma_bars),
        )
        if ts.shape[0] > 0:
            st.last_close, st.has_close = float(last_close), True
        st.recent_dp = dp
        fill_ts, fill_vol, fill_frac = ends, vols, fracs
    else:
        fill_ts, fill_vol, fill_frac = ts[eligible], amount[eligible], is_buy[eligible].astype(np.float64)
    if st.day_v > 0.0:
        done_ts, done_v, done_b, done_s, st.bucket_v, st.fill_buy, st.fill_sell = fill_buckets(
            fill_ts, fill_vol, fill_frac, st.bucket_v, st.fill_buy, st.fill_sell, st.day_v
        )
    else:
        done_ts, done_v, done_b, done_s = np.empty(0, np.int64), np.empty(0), np.empty(0), np.empty(0)
    imb = np.abs(done_s - done_b)
    vpin = rolling_vpin(st.recent_imbalance, st.recent_volume, imb, done_v, np.int64(n))
    index = st.n_completed + np.arange(done_ts.shape[0], dtype=np.int64)
    st.n_completed += int(done_ts.shape[0])
    st.recent_imbalance = np.concatenate((st.recent_imbalance, imb))[-n:]
    st.recent_volume = np.concatenate((st.recent_volume, done_v))[-n:]
    st.day_volume = float(amount.sum())
    st.day = int(day)
    return VpinPartition(open_vpin, open_index, done_ts, index, done_v, done_b, done_s, vpin, st)
