"""A plain-Python order book replay (dicts, no numba) stating the rebuild rules of udfs/kernels/book.py
independently, for the property tests and the real-capture test.

Rows are dicts: kind ('snapshot' | 'delta' | 'checkpoint' | 'invalid'), seq, first/last/prev (update
ids or None), bids/asks ([(price, size), ...]), optionally rule ('contiguous' | 'prev_chain' |
'increasing' | 'none'; default: inferred from the ids of the rows' deltas, docs/contracts.md).
`replay` returns one Out per row; `emit` = served (a checkpoint loads the book but is never served).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Out:
    emit: bool
    restart: bool
    reason: str
    bids: list[tuple[float, float]] = field(default_factory=list)
    asks: list[tuple[float, float]] = field(default_factory=list)
    bid_bands: list[float | None] = field(default_factory=list)
    ask_bands: list[float | None] = field(default_factory=list)


def bands_of(
    side: dict[float, float], best_first: list[float], mid: float, edges: list[float]
) -> list[float | None]:
    """Σ size per [lo, hi) band of d = abs(P − mid)·10000/mid, touch outwards; None where the side's
    deepest level lies before hi."""
    deepest = best_first[-1]
    sums = [0.0] * (len(edges) - 1)
    for p in best_first:
        d = abs(p - mid) * 10000 / mid
        if d >= edges[-1]:
            break
        for b in range(len(edges) - 1):
            if edges[b] <= d < edges[b + 1]:
                sums[b] += side[p]
                break
    d_front = abs(deepest - mid) * 10000 / mid
    return [None if d_front < edges[b + 1] else sums[b] for b in range(len(sums))]


def inferred_rule(rows: list[dict[str, Any]]) -> str:
    deltas = [r for r in rows if r["kind"] == "delta"]
    for key, rule in (("prev", "prev_chain"), ("first", "contiguous"), ("last", "increasing")):
        if any(r[key] is not None for r in deltas):
            return rule
    return "none"


def id_verdict(rule: str, r: dict[str, Any], last: int | None, fresh: bool) -> str:
    """'' (apply), 'stale', 'update_id_regressed' or 'update_id_gap' for a delta after a book whose last
    id is `last`; `fresh`: no diff applied since the load. The venues' words:
    - contiguous (Binance spot): drop any event with u <= lastUpdateId; the first one has
      U <= lastUpdateId + 1 <= u; then each U is the previous u + 1;
    - prev_chain (Binance futures): drop u < lastUpdateId; the first has U <= lastUpdateId <= u (or,
      OKX, prevSeqId = the snapshot's seqId); then pu (prevSeqId) is the previous u (seqId);
    - increasing (Bybit, Coinbase): u above the previous; none (Kraken): nothing to check.
    A row with only u (ccxt applied it outside a frame) passes when u increases."""
    u, first, pu = r["last"], r["first"], r["prev"]
    if last is None or rule == "none":
        return ""
    if rule == "increasing":
        return "update_id_regressed" if u is not None and u <= last else ""
    if rule == "contiguous":
        if u is not None and u <= last:
            return "stale" if fresh else "update_id_regressed"
        if first is None:
            return ""
        if fresh:
            return "" if first <= last + 1 else "update_id_gap"
        return "" if first == last + 1 else "update_id_gap"
    if u is not None and u < last:
        return "stale" if fresh else "update_id_regressed"
    if fresh:
        if pu is not None and pu == last:
            return ""
        if first is not None:
            return "" if first <= last else "update_id_gap"
        return "update_id_gap" if pu is not None else ""
    if pu is not None:
        return "" if pu == last else "update_id_gap"
    return "update_id_regressed" if u is not None and u == last else ""


def replay(rows: list[dict[str, Any]], levels: int, edges: list[float], strict: bool = True) -> list[Out]:
    default_rule = inferred_rule(rows)
    out: list[Out] = []
    bids: dict[float, float] | None = None
    asks: dict[float, float] = {}
    deep_b: float | None = None
    deep_a: float | None = None
    last: int | None = None
    fresh = False
    broken = ""
    prev_seq: Any = object()
    for i, r in enumerate(rows):
        if i > 0 and r["seq"] == prev_seq:
            out.append(Out(False, False, "duplicate"))
            continue
        prev_seq = r["seq"]
        restart, reason = False, ""
        if r["kind"] in ("delta", "invalid"):
            bad = ""
            if r["kind"] == "invalid":
                bad = "invalid_levels"
            elif bids is None:
                bad = "no_book"
            elif verdict := id_verdict(r.get("rule") or default_rule, r, last, fresh):
                bad = verdict
            else:
                for side, changes, deepest, better in (
                    (bids, r["bids"], deep_b, lambda a, b: a >= b),
                    (asks, r["asks"], deep_a, lambda a, b: a <= b),
                ):
                    for p, q in changes:
                        if q == 0:
                            if p in side:
                                del side[p]
                            elif strict and deepest is not None and better(p, deepest):
                                bad = "unknown_level_removed"
                                break
                        else:
                            side[p] = q
                    if bad:
                        break
            if bad == "stale":  # skipped; the book goes on
                out.append(Out(False, False, bad))
                continue
            if bad:
                if bids is not None:
                    broken = bad
                bids = None
                out.append(Out(False, False, bad))
                continue
            if r["last"] is not None:
                last = r["last"]
            fresh = False
        else:
            new_b = {p: q for p, q in r["bids"] if q > 0}
            new_a = {p: q for p, q in r["asks"] if q > 0}
            if r["kind"] == "snapshot":
                restart, reason = True, "snapshot"
            elif bids is None:
                restart, reason = True, ("series_start" if i == 0 or not broken else broken)
            elif new_b != bids or new_a != asks:
                restart, reason = True, "checkpoint_mismatch"
            bids, asks = new_b, new_a
            deep_b = min(bids) if bids else None
            deep_a = max(asks) if asks else None
            broken = ""
            last = r["last"]
            fresh = True
        bb = sorted(bids, reverse=True)
        aa = sorted(asks)
        o = Out(
            r["kind"] != "checkpoint",
            restart,
            reason,
            [(p, bids[p]) for p in bb[:levels]],
            [(p, asks[p]) for p in aa[:levels]],
        )
        if bb and aa:
            mid = (bb[0] + aa[0]) / 2
            o.bid_bands = bands_of(bids, bb, mid, edges)
            o.ask_bands = bands_of(asks, aa, mid, edges)
        else:
            o.bid_bands = o.ask_bands = [None] * (len(edges) - 1)
        out.append(o)
    return out


def same_float(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
