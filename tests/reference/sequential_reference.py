"""Brute-force references for the sequential kernels, written straight from docs/features.md "Sequential".

Plain Python over lists, O(n²) where a window is involved, no shared code with udfs/: each function
recomputes its definition from scratch for every row, so a kernel bug cannot hide in a helper both
use. NULL is None. Times are integers in microseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

US = 1_000_000


@dataclass
class Snap:
    ts: int
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]
    crossed: bool = False
    break_before: bool = False
    trade_breaks: int = 0
    """Trades-series break events received before this snapshot (docs/features.md "Time", one clock)."""


@dataclass
class Trade:
    ts: int
    size: float
    is_buy: bool
    price: float = 100.0
    breaks: int = 0
    """Trades-series break events received before this trade."""


def segment_start_index(snaps: list[Snap], staleness_s: float) -> list[int]:
    """For each row, the index of the first row of its segment. A crossed row is a break for the
    sequential features (docs/features.md `crossed`): the series breaks before and after it."""
    out: list[int] = []
    start = 0
    for i, s in enumerate(snaps):
        if (
            i == 0
            or s.break_before
            or s.crossed
            or snaps[i - 1].crossed
            or s.ts - snaps[i - 1].ts > staleness_s * US
        ):
            start = i
        out.append(start)
    return out


def ofi_ref(snaps: list[Snap], staleness_s: float, levels: int, alpha: float) -> tuple[list, list]:
    starts = segment_start_index(snaps, staleness_s)
    ofi: list[float | None] = [None] * len(snaps)
    mlofi: list[float | None] = [None] * len(snaps)
    for i in range(1, len(snaps)):
        a, b = snaps[i - 1], snaps[i]
        if starts[i] == i:  # a crossed book of the pair starts a segment
            continue
        if not (a.bids and a.asks and b.bids and b.asks):
            continue
        es = []
        for m in range(levels):
            e = 0.0
            if m < len(a.bids) and m < len(b.bids):
                (pp, qp), (pn, qn) = a.bids[m], b.bids[m]
                e += (qn if pn >= pp else 0.0) - (qp if pn <= pp else 0.0)
            if m < len(a.asks) and m < len(b.asks):
                (pp, qp), (pn, qn) = a.asks[m], b.asks[m]
                e += -(qn if pn <= pp else 0.0) + (qp if pn >= pp else 0.0)
            es.append(e)
        ofi[i] = es[0]
        mlofi[i] = sum(math.exp(-alpha * m) * e for m, e in enumerate(es))
    return ofi, mlofi


def mid(s: Snap) -> float | None:
    return (s.bids[0][0] + s.asks[0][0]) / 2 if s.bids and s.asks else None


def returns_ref(snaps: list[Snap], staleness_s: float) -> tuple[list, list]:
    starts = segment_start_index(snaps, staleness_s)
    lr: list[float | None] = [None] * len(snaps)
    vel: list[float | None] = [None] * len(snaps)
    for i in range(1, len(snaps)):
        if starts[i] == i:
            continue
        m0, m1 = mid(snaps[i - 1]), mid(snaps[i])
        if m0 is None or m1 is None:
            continue
        if m0 > 0 and m1 > 0:
            lr[i] = math.log(m1 / m0)
        dt = (snaps[i].ts - snaps[i - 1].ts) / US
        if dt > 0:
            vel[i] = (m1 - m0) / dt
    return lr, vel


def rolling_sum_ref(snaps: list[Snap], values: list, staleness_s: float, h: int) -> list:
    """Σ of non-NULL values of rows j ≤ i of i's segment with ts_j in (t − h, t]; NULL if none or i starts a segment."""
    starts = segment_start_index(snaps, staleness_s)
    out: list[float | None] = []
    for i, s in enumerate(snaps):
        vals = [
            values[j]
            for j in range(starts[i], i + 1)
            if snaps[j].ts > s.ts - h * US and values[j] is not None
        ]
        out.append(None if starts[i] == i or not vals else math.fsum(vals))
    return out


def rv_ref(snaps: list[Snap], staleness_s: float, h: int) -> list:
    lr, _ = returns_ref(snaps, staleness_s)
    sq = [None if x is None else x * x for x in lr]
    return [None if v is None else math.sqrt(v) for v in rolling_sum_ref(snaps, sq, staleness_s, h)]


def tfi_ref(snaps: list[Snap], trades: list[Trade], staleness_s: float, h: int) -> tuple[list, list]:
    """Trades with ts in (t − h, t] received after the same trades breaks as the snapshot (a book
    break does not restart them): (B − S)/(B + S) and B + S."""
    tfi: list[float | None] = []
    vol: list[float | None] = []
    for s in snaps:
        win = [t for t in trades if s.ts - h * US < t.ts <= s.ts and t.breaks == s.trade_breaks]
        b = math.fsum(t.size for t in win if t.is_buy)
        a = math.fsum(t.size for t in win if not t.is_buy)
        tfi.append((b - a) / (b + a) if b + a > 0 else None)
        vol.append(b + a)
    return tfi, vol


def kyle_ref(snaps: list[Snap], trades: list[Trade], staleness_s: float, w: int) -> tuple[list, list]:
    starts = segment_start_index(snaps, staleness_s)
    lr, _ = returns_ref(snaps, staleness_s)
    q: list[float | None] = [0.0] * len(snaps)
    for i in range(1, len(snaps)):
        q[i] = math.fsum(
            (t.size if t.is_buy else -t.size) for t in trades if snaps[i - 1].ts < t.ts <= snaps[i].ts
        )
        if snaps[i].trade_breaks != snaps[i - 1].trade_breaks:
            q[i] = None  # the trades series broke since the previous snapshot: no observation
    lam: list[float | None] = []
    r2: list[float | None] = []
    for i, s in enumerate(snaps):
        obs = [
            (lr[j], q[j])
            for j in range(starts[i], i + 1)
            if snaps[j].ts > s.ts - w * US and lr[j] is not None and q[j] is not None
        ]
        if starts[i] == i or len(obs) < 10:
            lam.append(None)
            r2.append(None)
            continue
        n = len(obs)
        mr = math.fsum(r for r, _ in obs) / n
        mq = math.fsum(x for _, x in obs) / n
        sxx = math.fsum((x - mq) ** 2 for _, x in obs)
        sxy = math.fsum((r - mr) * (x - mq) for r, x in obs)
        syy = math.fsum((r - mr) ** 2 for r, _ in obs)
        if sxx <= 1e-9 * math.fsum(x * x for _, x in obs) or sxx == 0:
            lam.append(None)
            r2.append(None)
            continue
        lam.append(sxy / sxx)
        r2.append(sxy * sxy / (sxx * syy) if syy > 0 else None)
    return lam, r2


def spread_bps(s: Snap) -> float | None:
    m = mid(s)
    if m is None:
        return None
    return (s.asks[0][0] - s.bids[0][0]) / m * 1e4


def spread_pctile_ref(snaps: list[Snap], staleness_s: float, w: int) -> list:
    """Share of window values (ts in (t − w, t), same segment) strictly below the current value."""
    starts = segment_start_index(snaps, staleness_s)
    out: list[float | None] = []
    for i, s in enumerate(snaps):
        cur = spread_bps(s)
        win = [
            spread_bps(snaps[j]) for j in range(starts[i], len(snaps)) if s.ts - w * US < snaps[j].ts < s.ts
        ]
        win = [v for v in win if v is not None]
        if starts[i] == i or cur is None or not win:
            out.append(None)
        else:
            out.append(sum(1 for v in win if v < cur) / len(win))
    return out


def regime_ref(pctile: float | None, tight: float, wide: float) -> str | None:
    if pctile is None:
        return None
    return "tight" if pctile <= tight else "wide" if pctile >= wide else "normal"


def vpin_ref(trades: list[Trade], v: float, n: int) -> list[tuple[int, float, float, float | None]]:
    """Aggressor VPIN by cumulative volume: bucket k covers cumulative volume ((k−1)·V, k·V].

    Returns (completion ts, V_B, V_S, vpin) per completed bucket. Exact for integer-valued sizes.
    """
    out: list[tuple[int, float, float, float | None]] = []
    cum = 0.0
    buy = sell = 0.0
    edge = v
    for t in trades:
        start, end = cum, cum + t.size
        pos = start
        while end >= edge:
            part = edge - pos
            buy += part if t.is_buy else 0.0
            sell += 0.0 if t.is_buy else part
            out.append((t.ts, buy, sell, None))
            buy = sell = 0.0
            pos = edge
            edge += v
        part = end - pos
        buy += part if t.is_buy else 0.0
        sell += 0.0 if t.is_buy else part
        cum = end
    result = []
    for k, (ts, b, s, _) in enumerate(out):
        val = None
        if k + 1 >= n:
            val = sum(abs(ss - bb) for _, bb, ss, _ in out[k + 1 - n : k + 1]) / (n * v)
        result.append((ts, b, s, val))
    return result


# ---- adapters: the same data as the kernels' numpy inputs (kept apart from the references above)


def to_book(snaps: list[Snap]):
    import numpy as np

    from daedalus.udfs.series import Book

    def side(get):
        px: list[float] = []
        sz: list[float] = []
        off = [0]
        for s in snaps:
            for p, q in get(s):
                px.append(p)
                sz.append(q)
            off.append(len(px))
        return np.array(px, float), np.array(sz, float), np.array(off, np.int64)

    bp, bs, bo = side(lambda s: s.bids)
    ap, as_, ao = side(lambda s: s.asks)
    return Book(
        np.array([s.ts for s in snaps], np.int64),
        bp,
        bs,
        bo,
        ap,
        as_,
        ao,
        np.array([s.crossed for s in snaps], bool),
        np.array([s.break_before for s in snaps], bool),
        np.array([s.trade_breaks for s in snaps], np.int64),
    )


def to_trades(trades: list[Trade]):
    import numpy as np

    from daedalus.udfs.series import Trades

    return Trades(
        np.array([t.ts for t in trades], np.int64),
        np.array([t.size if t.is_buy else 0.0 for t in trades], float),
        np.array([0.0 if t.is_buy else t.size for t in trades], float),
        np.array([t.breaks for t in trades], np.int64),
    )
