"""Plain-Python reference of docs/features.md "Per snapshot" and "Bars", written from the page.

Loops and sums in level order, no numpy, no SQL: the property tests hold the DuckDB macros to this.
NULL is None. NULL rules as documented in macros/orderbook.sql (a feature that needs a missing
level is None; a zero denominator gives None; a truncated band whose deepest level is nearer than
its upper edge is None). Distances use abs(P − mid) · 10000 / mid in that order, like the SQL.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Level = tuple[float, float]  # (price, size)
IMBALANCE_LEVELS = (1, 3, 5, 10)
VWAP_LEVELS = 5
SLOPE_LEVELS = 10


def bps_label(edge: float) -> str:
    return str(int(edge)) if edge == int(edge) else str(edge).replace(".", "p")


def band_names(bands_bps: Sequence[float]) -> list[str]:
    return [f"{bps_label(lo)}_{bps_label(hi)}bps" for lo, hi in zip(bands_bps, bands_bps[1:], strict=False)]


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or a + b == 0:
        return None
    return (a - b) / (a + b)


def _sum(xs: Sequence[float]) -> float:
    total = 0.0
    for x in xs:
        total += x
    return total


def _dist(price: float, mid: float) -> float:
    return abs(price - mid) * 10000 / mid


def _slope(levels: Sequence[Level], mid: float | None) -> float | None:
    pts = list(levels[:SLOPE_LEVELS])
    if mid is None or len(pts) < 3:
        return None
    xs = [_dist(p, mid) for p, _ in pts]
    ys, cum = [], 0.0
    for _, q in pts:
        cum += q
        ys.append(cum)
    mx, my = _sum(xs) / len(xs), _sum(ys) / len(ys)
    sxx = _sum([(x - mx) * (x - mx) for x in xs])
    if sxx == 0:
        return None
    return _sum([(x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)]) / sxx


def _band(levels: Sequence[Level], mid: float | None, lo: float, hi: float, max_levels: int) -> float | None:
    if mid is None or not levels:
        return None
    if len(levels) >= max_levels and _dist(levels[-1][0], mid) < hi:
        return None  # truncated side: the band may continue past the deepest level we can see
    return _sum([q for p, q in levels if lo <= _dist(p, mid) < hi])


def structural(
    bids: Sequence[Level], asks: Sequence[Level], max_levels: int, bands_bps: Sequence[float]
) -> dict[str, Any]:
    """Every structural and band column of gold.orderbook_hf for one snapshot (sides best first)."""
    out: dict[str, Any] = {}
    bb = bids[0] if bids else None
    ba = asks[0] if asks else None
    out["best_bid"] = bb[0] if bb else None
    out["best_ask"] = ba[0] if ba else None
    out["bid_size_1"] = bb[1] if bb else None
    out["ask_size_1"] = ba[1] if ba else None
    mid = (bb[0] + ba[0]) / 2 if bb and ba else None
    out["mid"] = mid
    out["spread"] = ba[0] - bb[0] if bb and ba else None
    out["spread_bps"] = out["spread"] / mid * 10000 if mid is not None else None
    out["crossed"] = bool(bb and ba and bb[0] >= ba[0])
    if bb and ba and bb[1] + ba[1] != 0:
        out["microprice"] = (bb[0] * ba[1] + ba[0] * bb[1]) / (bb[1] + ba[1])
    else:
        out["microprice"] = None
    for k in IMBALANCE_LEVELS:
        if bids and asks:
            out[f"imbalance_{k}"] = _ratio(_sum([q for _, q in bids[:k]]), _sum([q for _, q in asks[:k]]))
        else:
            out[f"imbalance_{k}"] = None
    bid_depth = _sum([q for _, q in bids]) if bids else None
    ask_depth = _sum([q for _, q in asks]) if asks else None
    out["bid_depth"], out["ask_depth"] = bid_depth, ask_depth
    out["depth_imbalance"] = _ratio(bid_depth, ask_depth)
    for side, levels in (("bid", bids), ("ask", asks)):
        top = levels[:VWAP_LEVELS]
        qsum = _sum([q for _, q in top])
        out[f"{side}_vwap_{VWAP_LEVELS}"] = (
            _sum([p * q for p, q in top]) / qsum if top and qsum != 0 else None
        )
    for side, levels in (("bid", bids), ("ask", asks)):
        for (lo, hi), name in zip(
            zip(bands_bps, bands_bps[1:], strict=False), band_names(bands_bps), strict=True
        ):
            out[f"{side}_depth_{name}"] = _band(levels, mid, lo, hi, max_levels)
    for name in band_names(bands_bps):
        out[f"band_imbalance_{name}"] = _ratio(out[f"bid_depth_{name}"], out[f"ask_depth_{name}"])
    for side, levels, total in (("bid", bids, bid_depth), ("ask", asks, ask_depth)):
        if total:
            out[f"{side}_concentration"] = _sum([(q / total) * (q / total) for _, q in levels])
        else:
            out[f"{side}_concentration"] = None
        out[f"{side}_slope"] = _slope(levels, mid)
    return out


# ---------------------------------------------------------------------------------------------
# Bars


@dataclass
class BookRow:
    ts: dt.datetime
    seq: int
    mid: float | None
    spread_bps: float | None = None
    imbalance_1: float | None = None
    microprice: float | None = None
    ofi: float | None = None
    mlofi: float | None = None
    log_return: float | None = None


@dataclass
class TradeRow:
    ts: dt.datetime
    trade_id: int
    side: str
    price: float
    amount: float


def bar_start(ts: dt.datetime, seconds: int) -> dt.datetime:
    """floor(ts / d) · d in UTC (integer microseconds, so a boundary opens the new bar)."""
    us = (ts - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
    start_s = (us // (seconds * 1_000_000)) * seconds
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=start_s)


def _mean(xs: list[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return _sum(vals) / len(vals) if vals else None


def _total(xs: list[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return _sum(vals) if vals else None


def orderbook_bars(
    rows: list[BookRow], durations: Sequence[int]
) -> dict[tuple[int, dt.datetime], dict[str, Any]]:
    """{(bar_seconds, bar_start): columns}; only bars holding at least one row exist."""
    out: dict[tuple[int, dt.datetime], dict[str, Any]] = {}
    for d in durations:
        groups: dict[dt.datetime, list[BookRow]] = {}
        for r in sorted(rows, key=lambda r: (r.ts, r.seq)):
            groups.setdefault(bar_start(r.ts, d), []).append(r)
        for start, rs in groups.items():
            mids = [r.mid for r in rs if r.mid is not None]
            out[(d, start)] = {
                "open": mids[0] if mids else None,
                "high": max(mids) if mids else None,
                "low": min(mids) if mids else None,
                "close": mids[-1] if mids else None,
                "snapshot_count": len(rs),
                "mean_spread_bps": _mean([r.spread_bps for r in rs]),
                "max_spread_bps": max([r.spread_bps for r in rs if r.spread_bps is not None], default=None),
                "mean_imbalance_1": _mean([r.imbalance_1 for r in rs]),
                "mean_microprice": _mean([r.microprice for r in rs]),
                "sum_ofi": _total([r.ofi for r in rs]),
                "sum_mlofi": _total([r.mlofi for r in rs]),
                "realized_variance": _total([None if r.log_return is None else r.log_return**2 for r in rs]),
            }
    return out


def trade_bars(
    rows: list[TradeRow], durations: Sequence[int]
) -> dict[tuple[int, dt.datetime], dict[str, Any]]:
    out: dict[tuple[int, dt.datetime], dict[str, Any]] = {}
    for d in durations:
        groups: dict[dt.datetime, list[TradeRow]] = {}
        for r in sorted(rows, key=lambda r: (r.ts, r.trade_id)):
            groups.setdefault(bar_start(r.ts, d), []).append(r)
        for start, rs in groups.items():
            buy = _sum([r.amount for r in rs if r.side == "buy"])
            sell = _sum([r.amount for r in rs if r.side == "sell"])
            vol = _sum([r.amount for r in rs])
            out[(d, start)] = {
                "open": rs[0].price,
                "high": max(r.price for r in rs),
                "low": min(r.price for r in rs),
                "close": rs[-1].price,
                "trade_count": len(rs),
                "buy_volume": buy,
                "sell_volume": sell,
                "volume": vol,
                "vwap": _sum([r.price * r.amount for r in rs]) / vol if vol else None,
                "trade_imbalance": _ratio(buy, sell),
            }
    return out


def close(a: Any, b: Any, rel: float = 1e-9, abs_tol: float = 1e-12) -> bool:
    """Equal within `rel` relative (and a tiny absolute floor for values that should be 0)."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, float | int):
        return a == b
    if math.isnan(a) or math.isnan(b):
        return False
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_tol)
