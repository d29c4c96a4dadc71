"""The check of sql/tests/orderbook_levels_valid.sql over flattened book sides, one pass per side.

The test's SQL (four list lambdas, two capturing the list) costs ~1 µs per level; this loop gives the
same verdict row by row, in DuckDB's semantics: a NULL level, price or size takes no part in a
comparison (bool_and skips NULLs), and NaN compares greater than every number (so NaN > 0 holds).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def _lt(a: float, b: float) -> bool:
    """a < b as DuckDB orders doubles: NaN is the greatest value, equal to itself."""
    if np.isnan(a):
        return False
    if np.isnan(b):
        return True
    return a < b


@njit(cache=True)
def side_invalid(
    px: np.ndarray,
    px_ok: np.ndarray,
    sz: np.ndarray,
    sz_ok: np.ndarray,
    off: np.ndarray,
    list_ok: np.ndarray,
    max_levels: int,
    bid: bool,
    out: np.ndarray,
) -> None:
    """out[n] |= snapshot n's side breaks the rule: more than max_levels levels, a price ≤ 0 or a size
    < 0, or a price not strictly better-first (bids decreasing, asks increasing) than the level
    before it."""
    for n in range(off.shape[0] - 1):
        if not list_ok[n]:
            continue  # a NULL side: NULL in every condition, which the test counts as valid
        lo, hi = off[n], off[n + 1]
        if hi - lo > max_levels:
            out[n] = True
            continue
        for k in range(lo, hi):
            if (px_ok[k] and not _lt(0.0, px[k])) or (sz_ok[k] and _lt(sz[k], 0.0)):
                out[n] = True
                break
            if k > lo and px_ok[k] and px_ok[k - 1]:
                better = _lt(px[k], px[k - 1]) if bid else _lt(px[k - 1], px[k])
                if not better:
                    out[n] = True
                    break
