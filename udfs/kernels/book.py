"""Full-depth order-book rebuild from bronze `book_updates` (FEATURES.md "Per snapshot", bands).

One call replays the rows of ONE connection of one series, in `seq` order:
- `snapshot` (a (re)load at venue depth) and `checkpoint` (the whole book the collector held) replace
  the book; a snapshot always restarts the series (a reload is a resync), a checkpoint restarts it only
  when the book before it was broken, absent (first row handed to the kernel), or different from it;
- `delta` rows set absolute sizes of the changed levels (size 0 deletes).

A delta that cannot apply breaks the book until the next snapshot/checkpoint, never silently:
`last_update_id` ≤ the previous one (REGRESSED); `prev_update_id` ≠ the previous `last_update_id`
(Binance futures pu, OKX prevSeqId), or `first_update_id` > previous `last_update_id` + 1 (GAP);
with `strict_deletes`, a delete of a level the book does not hold inside its complete region
(UNKNOWN_LEVEL). The complete region of a side is from the touch to the deepest level of the last
load: beyond it the book only holds what deltas inserted. Strictness is per venue: Binance's diffs
aggregate 100 ms of changes and delete levels the local book never saw as a matter of course
(documented as normal; 9,348 such deletes inside the REST depth in the shared 6-minute capture), so
there an unknown delete changes nothing. Rows after the failure are NO_BOOK; the recovering load carries
the failure's reason. A row whose seq repeats the previous one (a re-delivered segment) is skipped.

After every applied row: the top `max_levels` levels per side (best first), and per band
[lo, hi) of `bands` the summed size of levels with d = abs(P − mid)·10000/mid in the band, over the
WHOLE book, summed from the touch outwards; NaN (NULL) when there is no mid or the side's deepest
held level lies at d < hi (FEATURES.md's visibility rule with the whole book as what is kept: the
band may continue beyond what the book holds). Beyond the depth of the last load the book holds the
levels updates inserted since, which is what the venue's own diff replay holds too.

Sides are kept as sorted arrays with the best level LAST (bids by price, asks by −price), so the
inserts and deletes near the touch that dominate real streams shift only a few elements.
"""

from __future__ import annotations

import numpy as np
from numba import njit

KIND_SNAPSHOT, KIND_DELTA, KIND_CHECKPOINT, KIND_INVALID = 0, 1, 2, 3
"""KIND_INVALID: a row silver refuses (a non-finite or non-positive level, macros/quality.sql); it is
a lost update, so it breaks the book like any delta that cannot apply."""
NO_ID = np.iinfo(np.int64).min
"""The kernel's NULL for update ids."""

# Reason codes: why a row restarts the series (emitted rows) or why it was not applied (the others).
(
    OK,
    SERIES_START,
    SNAPSHOT,
    CHECKPOINT_MISMATCH,
    NO_BOOK,
    UNKNOWN_LEVEL,
    REGRESSED,
    GAP,
    DUPLICATE,
    INVALID,
) = range(10)
REASONS = (
    "",
    "series_start",
    "snapshot",
    "checkpoint_mismatch",
    "no_book",
    "unknown_level_removed",
    "update_id_regressed",
    "update_id_gap",
    "duplicate",
    "invalid_levels",
)


@njit(cache=True)
def _grow(keys: np.ndarray, sizes: np.ndarray, need: int) -> tuple[np.ndarray, np.ndarray]:
    if need <= keys.shape[0]:
        return keys, sizes
    cap = max(need, 2 * keys.shape[0])
    k2 = np.empty(cap, np.float64)
    s2 = np.empty(cap, np.float64)
    k2[: keys.shape[0]] = keys
    s2[: sizes.shape[0]] = sizes
    return k2, s2


@njit(cache=True)
def _load(
    px: np.ndarray, sz: np.ndarray, lo: int, hi: int, sign: float, keys: np.ndarray, sizes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int, float]:
    """A side from a full list (any order; size 0 levels dropped): (keys, sizes, count, frontier key).
    The frontier is the deepest loaded key (the smallest); +inf when the side is empty."""
    keys, sizes = _grow(keys, sizes, hi - lo)
    n = 0
    for j in range(lo, hi):
        if sz[j] > 0:
            keys[n] = sign * px[j]
            sizes[n] = sz[j]
            n += 1
    order = np.argsort(keys[:n], kind="mergesort")
    k = keys[:n][order].copy()
    s = sizes[:n][order].copy()
    # a load listing a price twice keeps its last size (the venue's latest word on it)
    m = 0
    for j in range(n):
        if m > 0 and k[j] == keys[m - 1]:
            sizes[m - 1] = s[j]
        else:
            keys[m] = k[j]
            sizes[m] = s[j]
            m += 1
    frontier = keys[0] if m > 0 else np.inf
    return keys, sizes, m, frontier


@njit(cache=True)
def _apply(
    px: np.ndarray,
    sz: np.ndarray,
    lo: int,
    hi: int,
    sign: float,
    keys: np.ndarray,
    sizes: np.ndarray,
    n: int,
    frontier: float,
    strict: bool,
) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """Apply changed levels to a side; (keys, sizes, count, ok). ok is False on an unknown delete
    inside the complete region (the side is then left as far as applied; the caller drops it)."""
    keys, sizes = _grow(keys, sizes, n + (hi - lo))
    for j in range(lo, hi):
        k = sign * px[j]
        i = np.searchsorted(keys[:n], k)
        found = i < n and keys[i] == k
        if sz[j] == 0:
            if found:
                keys[i : n - 1] = keys[i + 1 : n].copy()
                sizes[i : n - 1] = sizes[i + 1 : n].copy()
                n -= 1
            elif strict and k >= frontier:
                return keys, sizes, n, False
        elif found:
            sizes[i] = sz[j]
        else:
            keys[i + 1 : n + 1] = keys[i:n].copy()
            sizes[i + 1 : n + 1] = sizes[i:n].copy()
            keys[i] = k
            sizes[i] = sz[j]
            n += 1
    return keys, sizes, n, True


@njit(cache=True)
def _same(
    px: np.ndarray, sz: np.ndarray, lo: int, hi: int, sign: float, keys: np.ndarray, sizes: np.ndarray, n: int
) -> bool:
    """Does a full side list (best first, no zero sizes) hold exactly the book side?"""
    m = 0
    for j in range(lo, hi):
        if sz[j] > 0:
            m += 1
    if m != n:
        return False
    t = n - 1
    for j in range(lo, hi):
        if sz[j] > 0:
            if keys[t] != sign * px[j] or sizes[t] != sz[j]:
                return False
            t -= 1
    return True


@njit(cache=True)
def _bands(
    keys: np.ndarray, sizes: np.ndarray, n: int, sign: float, mid: float, bands: np.ndarray, out: np.ndarray
) -> None:
    """Band sums of one side into out[0 : len(bands) − 1], touch outwards; NaN where not visible."""
    nb = bands.shape[0] - 1
    top = bands[nb]
    for b in range(nb):
        out[b] = 0.0
    for t in range(n - 1, -1, -1):
        d = abs(sign * keys[t] - mid) * 10000 / mid
        if d >= top:
            break
        for b in range(nb):
            if bands[b] <= d < bands[b + 1]:
                out[b] += sizes[t]
                break
    d_deep = abs(sign * keys[0] - mid) * 10000 / mid
    for b in range(nb):
        if d_deep < bands[b + 1]:
            out[b] = np.nan


@njit(cache=True)
def rebuild_books(
    kind: np.ndarray,
    seq: np.ndarray,
    first_id: np.ndarray,
    last_id: np.ndarray,
    prev_id: np.ndarray,
    bid_px: np.ndarray,
    bid_sz: np.ndarray,
    bid_off: np.ndarray,
    ask_px: np.ndarray,
    ask_sz: np.ndarray,
    ask_off: np.ndarray,
    max_levels: np.int64,
    bands: np.ndarray,
    strict_deletes: bool,
    wanted: np.ndarray,
) -> tuple[
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
]:
    """Replay one connection's rows (seq order). Returns, per input row: emit, restart, reason, then
    the emitted books' top levels flattened (bid px/sz/offsets, ask px/sz/offsets; a row not emitted
    or not `wanted` has no levels), and the band sums (rows × bands, NaN = NULL) of bids and asks.
    `wanted` marks the rows whose books are asked for: the warm-up rows a slice replays from its
    anchor are applied and checked, but their levels are never copied out."""
    n = kind.shape[0]
    emit = np.zeros(n, np.bool_)
    restart = np.zeros(n, np.bool_)
    reason = np.zeros(n, np.int8)
    nb = bands.shape[0] - 1
    bid_band = np.full((n, nb), np.nan)
    ask_band = np.full((n, nb), np.nan)
    ob_off = np.zeros(n + 1, np.int64)
    oa_off = np.zeros(n + 1, np.int64)
    cap = max(int(wanted.sum()) * min(max_levels, 64), 16)
    ob_px, ob_sz = np.empty(cap), np.empty(cap)
    oa_px, oa_sz = np.empty(cap), np.empty(cap)

    bk, bs = np.empty(64), np.empty(64)
    ak, asz = np.empty(64), np.empty(64)
    n_b = n_a = 0
    f_b = f_a = np.inf
    have = False  # a book is held
    broken = OK  # why the book was lost (reason carried to the recovering load), OK when never lost
    last = NO_ID
    last_is_delta = False
    prev_seq = NO_ID
    for i in range(n):
        b0, b1, a0, a1 = bid_off[i], bid_off[i + 1], ask_off[i], ask_off[i + 1]
        if i > 0 and seq[i] == prev_seq:
            reason[i] = DUPLICATE
            ob_off[i + 1], oa_off[i + 1] = ob_off[i], oa_off[i]
            continue
        prev_seq = seq[i]
        if kind[i] == KIND_DELTA or kind[i] == KIND_INVALID:
            if kind[i] == KIND_INVALID:
                reason[i] = INVALID
            elif not have:
                reason[i] = NO_BOOK
            elif last != NO_ID and last_id[i] != NO_ID and last_id[i] <= last:
                reason[i] = REGRESSED
            elif (last != NO_ID and last_is_delta and prev_id[i] != NO_ID and prev_id[i] != last) or (
                last != NO_ID and first_id[i] != NO_ID and first_id[i] > last + 1
            ):
                reason[i] = GAP
            else:
                bk, bs, n_b, ok_b = _apply(bid_px, bid_sz, b0, b1, 1.0, bk, bs, n_b, f_b, strict_deletes)
                ok_a = False
                if ok_b:
                    ak, asz, n_a, ok_a = _apply(
                        ask_px, ask_sz, a0, a1, -1.0, ak, asz, n_a, f_a, strict_deletes
                    )
                if not (ok_b and ok_a):
                    reason[i] = UNKNOWN_LEVEL
            if reason[i] != OK:
                if have:
                    broken = reason[i]
                have = False
                ob_off[i + 1], oa_off[i + 1] = ob_off[i], oa_off[i]
                continue
            if last_id[i] != NO_ID:
                last = last_id[i]
            last_is_delta = True
        else:
            if kind[i] == KIND_SNAPSHOT:
                restart[i], reason[i] = True, SNAPSHOT
            elif not have:
                restart[i] = True
                reason[i] = SERIES_START if i == 0 or broken == OK else broken
            elif not (
                _same(bid_px, bid_sz, b0, b1, 1.0, bk, bs, n_b)
                and _same(ask_px, ask_sz, a0, a1, -1.0, ak, asz, n_a)
            ):
                restart[i], reason[i] = True, CHECKPOINT_MISMATCH
            bk, bs, n_b, f_b = _load(bid_px, bid_sz, b0, b1, 1.0, bk, bs)
            ak, asz, n_a, f_a = _load(ask_px, ask_sz, a0, a1, -1.0, ak, asz)
            have, broken = True, OK
            last = last_id[i]
            last_is_delta = False
        emit[i] = True
        if not wanted[i]:
            ob_off[i + 1], oa_off[i + 1] = ob_off[i], oa_off[i]
            continue
        # top levels, best first
        kb, ka = min(n_b, max_levels), min(n_a, max_levels)
        need = max(ob_off[i] + kb, oa_off[i] + ka)
        if need > ob_px.shape[0]:
            ob_px, ob_sz = _grow(ob_px, ob_sz, need)
        if need > oa_px.shape[0]:
            oa_px, oa_sz = _grow(oa_px, oa_sz, need)
        for m in range(kb):
            ob_px[ob_off[i] + m] = bk[n_b - 1 - m]
            ob_sz[ob_off[i] + m] = bs[n_b - 1 - m]
        for m in range(ka):
            oa_px[oa_off[i] + m] = -ak[n_a - 1 - m]
            oa_sz[oa_off[i] + m] = asz[n_a - 1 - m]
        ob_off[i + 1] = ob_off[i] + kb
        oa_off[i + 1] = oa_off[i] + ka
        if n_b > 0 and n_a > 0:
            mid = (bk[n_b - 1] + -ak[n_a - 1]) / 2
            _bands(bk, bs, n_b, 1.0, mid, bands, bid_band[i])
            _bands(ak, asz, n_a, -1.0, mid, bands, ask_band[i])
    return (
        emit,
        restart,
        reason,
        ob_px[: ob_off[n]],
        ob_sz[: ob_off[n]],
        ob_off,
        oa_px[: oa_off[n]],
        oa_sz[: oa_off[n]],
        oa_off,
        bid_band,
        ask_band,
    )
