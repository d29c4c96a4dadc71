"""Full-depth order-book rebuild from bronze `book_updates` (docs/features.md "Books — what silver serves").

One call replays the rows of ONE connection of one series, in `seq` order:
- `snapshot` (a venue (re)load) and `checkpoint` (the whole book the collector held: its own storage
  row) replace the book; a snapshot always restarts the series (a reload is a resync), a checkpoint
  restarts it only when the book before it was broken, absent, or different from it;
- `delta` rows set absolute sizes of the changed levels (size 0 deletes), if the row's sync rule
  (`rule`, docs/contracts.md "Sync rules") accepts its ids:
  - CONTIGUOUS (Binance spot/US): first diff after a load: first ≤ load_last + 1 ≤ last; then
    first == previous last + 1;
  - PREV_CHAIN (Binance futures `pu`, OKX prevSeqId): first diff after a load: prev == load_last, or
    first ≤ load_last ≤ last; then prev == previous last (OKX's no-change update, prev == last, too);
  - INCREASING (Bybit, Coinbase): last > previous last;
  - NONE (Kraken): no ids to check.
  Under CONTIGUOUS / PREV_CHAIN a diff entirely older than the load (before the first applied one) is
  STALE: skipped and counted, the book goes on. A row with only `last` (ccxt applied it outside a
  frame) is accepted when last increases.

Served (`emit`) are the accepted venue messages only: snapshots and applied deltas, never a checkpoint
and never a row marked `hold` (the same message already received on another connection: applied, not
served). A delta that cannot apply breaks the book until the next load, never silently:
REGRESSED, GAP, INVALID (silver refuses its levels), UNKNOWN_LEVEL (with `strict_deletes`, a delete of
a level the book does not hold inside the depth of the last load; Binance deletes unseen levels as a
matter of course, so it is not strict), then NO_BOOK for the rows after it. A row whose seq repeats
the previous one (a re-delivered segment) is DUPLICATE. Every row that is not served and not a
checkpoint has its reason: `account` holds it (silver.rejects counts it).

`place_breaks` then moves what a checkpoint (or held row) causes — a restart, a break event, a
staleness gap — onto the next served row, so `break_before` / `break_reason` stay on served rows.

After every applied row: the top `max_levels` levels per side (best first), and per band
[lo, hi) of `bands` the summed size of levels with d = abs(P − mid)·10000/mid in the band, over the
WHOLE book, summed from the touch outwards; NaN (NULL) when there is no mid or the side's deepest
held level lies at d < hi (docs/features.md's visibility rule with the whole book as what is kept).

Sides are kept as sorted arrays with the best level LAST (bids by price, asks by −price), so the
inserts and deletes near the touch that dominate real streams shift only a few elements.
"""

from __future__ import annotations

import numpy as np
from numba import njit

KIND_SNAPSHOT, KIND_DELTA, KIND_CHECKPOINT, KIND_INVALID, KIND_INVALID_CHECKPOINT = 0, 1, 2, 3, 4
"""KIND_INVALID: a message silver refuses (a non-finite or non-positive level, macros/quality.sql); it
is a lost update, so it breaks the book like any delta that cannot apply. KIND_INVALID_CHECKPOINT: a
refused checkpoint: it breaks the book too, but it is no message (not accounted)."""
RULE_CONTIGUOUS, RULE_PREV_CHAIN, RULE_INCREASING, RULE_NONE = 0, 1, 2, 3
RULES = ("contiguous", "prev_chain", "increasing", "none")
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
    STALE,
) = range(11)
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
    "stale",
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
def _sync(rule: int, f: int, u: int, p: int, last: int, after_load: bool) -> int:
    """OK, STALE, REGRESSED or GAP for a delta with ids (first f, last u, prev p; NO_ID = absent)
    after a book whose last id is `last` (`after_load`: no delta applied since the load)."""
    if last == NO_ID or rule == RULE_NONE:
        return OK
    if rule == RULE_INCREASING:
        return REGRESSED if u != NO_ID and u <= last else OK
    if rule == RULE_CONTIGUOUS:
        if after_load:
            if u != NO_ID and u <= last:
                return STALE
            return GAP if f != NO_ID and f > last + 1 else OK
        if u != NO_ID and u <= last:
            return REGRESSED
        return GAP if f != NO_ID and f != last + 1 else OK
    # RULE_PREV_CHAIN
    if after_load:
        if u != NO_ID and u < last:
            return STALE
        if p != NO_ID and p == last:
            return OK  # OKX: the first update's prevSeqId is the snapshot's seqId
        if f != NO_ID:
            return OK if f <= last else GAP  # Binance futures: U <= lastUpdateId <= u
        return GAP if p != NO_ID else OK
    if u != NO_ID and u < last:
        return REGRESSED
    if p != NO_ID:
        return OK if p == last else GAP
    return REGRESSED if u != NO_ID and u == last else OK


def rebuild_books(*args: object) -> tuple:
    """Replay one connection's rows (seq order): `rebuild_chunk`'s first 18 arguments (kind …
    anchored), from a fresh state. Returns, per input row: emit (served), restart, reason (the
    restart's on loads and served rows; why not, on the others), applied (the row loaded or changed
    the book), account (why a message is not served: DUPLICATE for a held row, OK when
    served and for checkpoints), then the served books' top levels flattened (bid px/sz/offsets, ask
    px/sz/offsets; a row not served or not `wanted` has no levels), and the band sums (rows × bands,
    NaN = NULL) of bids and asks. `wanted` marks the rows whose books are asked for: the warm-up rows
    a slice replays from its anchor are applied and checked, but their levels are never copied out.
    `anchored`: the first row is a slice's anchor (a load before the slice), not a series start."""
    state, front = new_state()
    scratch = [np.empty(64) for _ in range(4)]
    return rebuild_chunk(*args, np.int64(0), state, front, *scratch)[:13]


@njit(cache=True)
def new_state() -> tuple[np.ndarray, np.ndarray]:
    """A fresh replay state for `rebuild_chunk`: no book, nothing seen."""
    state = np.zeros(7, np.int64)
    state[3], state[4], state[6] = OK, NO_ID, NO_ID
    return state, np.full(2, np.inf)


@njit(cache=True)
def rebuild_chunk(
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
    rule: np.ndarray,
    hold: np.ndarray,
    anchored: bool,
    base: np.int64,
    state: np.ndarray,
    front: np.ndarray,
    bk: np.ndarray,
    bs: np.ndarray,
    ak: np.ndarray,
    asz: np.ndarray,
) -> tuple:
    """`rebuild_books` over one chunk of a connection's rows, resumable: the chunk's first row is row
    `base` of the connection, and the replay's state is carried from the previous chunk in `state`
    (n_bids, n_asks, have, broken, last, after_load, prev_seq; updated in place), `front` (the
    sides' frontiers; in place) and the sides `bk, bs, ak, asz` (returned after the 13 outputs: they
    grow). A connection replayed in chunks gives exactly what one call over all its rows gives."""
    n = kind.shape[0]
    emit = np.zeros(n, np.bool_)
    applied = np.zeros(n, np.bool_)
    restart = np.zeros(n, np.bool_)
    reason = np.zeros(n, np.int8)
    account = np.zeros(n, np.int8)
    nb = bands.shape[0] - 1
    bid_band = np.full((n, nb), np.nan)
    ask_band = np.full((n, nb), np.nan)
    ob_off = np.zeros(n + 1, np.int64)
    oa_off = np.zeros(n + 1, np.int64)
    cap = max(int(wanted.sum()) * min(max_levels, 64), 16)
    ob_px, ob_sz = np.empty(cap), np.empty(cap)
    oa_px, oa_sz = np.empty(cap), np.empty(cap)

    n_b, n_a = state[0], state[1]
    f_b, f_a = front[0], front[1]
    have = state[2] != 0  # a book is held
    broken = state[3]  # why the book was lost (reason carried to the recovering load), OK when never lost
    last = state[4]
    after_load = state[5] != 0
    prev_seq = state[6]
    for i in range(n):
        b0, b1, a0, a1 = bid_off[i], bid_off[i + 1], ask_off[i], ask_off[i + 1]
        ob_off[i + 1], oa_off[i + 1] = ob_off[i], oa_off[i]
        if i + base > 0 and seq[i] == prev_seq:
            reason[i] = account[i] = DUPLICATE
            continue
        prev_seq = seq[i]
        k = kind[i]
        if k != KIND_SNAPSHOT and k != KIND_CHECKPOINT:
            if k != KIND_DELTA:
                reason[i] = INVALID
            elif not have:
                reason[i] = NO_BOOK
            else:
                reason[i] = _sync(rule[i], first_id[i], last_id[i], prev_id[i], last, after_load)
                if reason[i] == OK:
                    bk, bs, n_b, ok_b = _apply(bid_px, bid_sz, b0, b1, 1.0, bk, bs, n_b, f_b, strict_deletes)
                    ok_a = False
                    if ok_b:
                        ak, asz, n_a, ok_a = _apply(
                            ask_px, ask_sz, a0, a1, -1.0, ak, asz, n_a, f_a, strict_deletes
                        )
                    if not (ok_b and ok_a):
                        reason[i] = UNKNOWN_LEVEL
            if reason[i] != OK:
                if k != KIND_INVALID_CHECKPOINT:
                    account[i] = reason[i]
                if reason[i] != STALE:  # a stale diff is skipped: the book goes on
                    if have:
                        broken = reason[i]
                    have = False
                continue
            if last_id[i] != NO_ID:
                last = last_id[i]
            after_load = False
        else:
            if k == KIND_SNAPSHOT:
                restart[i], reason[i] = True, SNAPSHOT
            elif not have:
                if not (i + base == 0 and anchored):
                    restart[i] = True
                    reason[i] = SERIES_START if i + base == 0 or broken == OK else broken
            elif not (
                _same(bid_px, bid_sz, b0, b1, 1.0, bk, bs, n_b)
                and _same(ask_px, ask_sz, a0, a1, -1.0, ak, asz, n_a)
            ):
                restart[i], reason[i] = True, CHECKPOINT_MISMATCH
            bk, bs, n_b, f_b = _load(bid_px, bid_sz, b0, b1, 1.0, bk, bs)
            ak, asz, n_a, f_a = _load(ask_px, ask_sz, a0, a1, -1.0, ak, asz)
            have, broken = True, OK
            last = last_id[i]
            after_load = True
        applied[i] = True
        if k == KIND_CHECKPOINT:
            continue
        if hold[i]:
            account[i] = DUPLICATE
            continue
        emit[i] = True
        if not wanted[i]:
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
    state[0], state[1], state[2], state[3] = n_b, n_a, have, broken
    state[4], state[5], state[6] = last, after_load, prev_seq
    front[0], front[1] = f_b, f_a
    return (
        emit,
        restart,
        reason,
        applied,
        account,
        ob_px[: ob_off[n]],
        ob_sz[: ob_off[n]],
        ob_off,
        oa_px[: oa_off[n]],
        oa_sz[: oa_off[n]],
        oa_off,
        bid_band,
        ask_band,
        bk,
        bs,
        ak,
        asz,
    )


def place_breaks(
    emit: np.ndarray,
    applied: np.ndarray,
    restart: np.ndarray,
    reason: np.ndarray,
    ts_us: np.ndarray,
    n_breaks: np.ndarray,
    staleness_us: np.int64,
    anchored: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """`place_breaks_chunk` over all of one connection's rows."""
    return place_breaks_chunk(
        emit, applied, restart, reason, ts_us, n_breaks, staleness_us, anchored, np.int64(0), new_breaks()
    )


@njit(cache=True)
def new_breaks() -> np.ndarray:
    """A fresh `place_breaks_chunk` state: (has_prev, prev ts, prev n_breaks, pending, pending_why)."""
    return np.zeros(5, np.int64)


@njit(cache=True)
def place_breaks_chunk(
    emit: np.ndarray,
    applied: np.ndarray,
    restart: np.ndarray,
    reason: np.ndarray,
    ts_us: np.ndarray,
    n_breaks: np.ndarray,
    staleness_us: np.int64,
    anchored: bool,
    base: np.int64,
    state: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """break_before and break reason of the served rows (False / OK elsewhere). Over the rows that
    loaded or changed the book, a row breaks on a restart, a break event since the previous such row
    (`n_breaks` grew), more than `staleness_us` of exchange time since it, or when it is the first
    (unless it is a slice's anchor, `anchored`); a break on a row that is not served (a checkpoint, a
    held row) moves to the next served row, with the first restart's reason unless that row restarts
    itself. Resumable like `rebuild_chunk`: row 0 is the connection's row `base`, `state` carries on."""
    n = emit.shape[0]
    out = np.zeros(n, np.bool_)
    why = np.zeros(n, np.int8)
    has_prev, prev_ts, prev_nb = state[0] != 0, state[1], state[2]
    pending, pending_why = state[3] != 0, state[4]
    for i in range(n):
        if not applied[i]:
            continue
        if not has_prev:
            flag = restart[i] or not (anchored and i + base == 0)
        else:
            flag = restart[i] or n_breaks[i] > prev_nb or ts_us[i] - prev_ts > staleness_us
        if flag:
            pending = True
            if restart[i] and pending_why == OK:
                pending_why = reason[i]
        if emit[i]:
            out[i] = pending
            why[i] = reason[i] if restart[i] else pending_why
            pending, pending_why = False, OK
        has_prev, prev_ts, prev_nb = True, ts_us[i], n_breaks[i]
    state[0], state[1], state[2], state[3], state[4] = has_prev, prev_ts, prev_nb, pending, pending_why
    return out, why
