"""How long the time slices of a sliced model's day are (`etl.slice_hours`, daedalus/config.py).

A sliced model (`slice_by`) runs one query per slice, and its memory follows the rows of one slice.
With `slice_hours: auto` the length is chosen per partition from the bronze it is built from: the
longest of AUTO_HOURS whose densest slice reads at most `etl.slice_bronze_mb` of compressed bronze.
The estimate needs no data read: each row group's bytes are spread evenly over its receive-time range
(`collected_at` statistics in the Parquet footer). So a quiet day is built in one query, a busy one
in hours, and a few busy hours of an otherwise empty day are cut as finely as a busy day would be.
Results are identical for any slice length (tests/integration/test_models_sliced.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

# Divisors of a day, longest first: slices of one length tile the day exactly.
AUTO_HOURS: tuple[float, ...] = (24, 12, 8, 6, 4, 3, 2, 1, 0.5, 0.25)
DAY_MS = 86_400_000


def densest_slice_bytes(
    spans: Iterable[tuple[int, int | None, int | None]], day_start_ms: int, hours: float
) -> float:
    """The most compressed bytes any slice of `hours` would read, for row groups given as
    (bytes, first ms, last ms). A row group is clipped to the day; one without a time range (a file
    written without statistics) is spread over the whole day."""
    step = hours * 3_600_000
    n = math.ceil(DAY_MS / step)
    acc = [0.0] * n
    day_end = day_start_ms + DAY_MS - 1
    for size, lo, hi in spans:
        if lo is None or hi is None:
            lo, hi = day_start_ms, day_end
        lo, hi = min(max(lo, day_start_ms), day_end), min(max(hi, day_start_ms), day_end)
        if hi < lo:
            lo, hi = hi, lo
        width = hi - lo + 1
        first, last = int((lo - day_start_ms) // step), int((hi - day_start_ms) // step)
        for i in range(first, last + 1):
            a = max(lo, day_start_ms + i * step)
            b = min(hi + 1, day_start_ms + (i + 1) * step)
            acc[i] += size * (b - a) / width
    return max(acc)


def auto_slice_hours(
    spans: Iterable[tuple[int, int | None, int | None]], day_start_ms: int, budget_bytes: float
) -> float:
    """The longest slice in AUTO_HOURS whose densest slice stays within `budget_bytes` (the shortest
    when none does)."""
    spans = list(spans)
    for hours in AUTO_HOURS:
        if densest_slice_bytes(spans, day_start_ms, hours) <= budget_bytes:
            return hours
    return AUTO_HOURS[-1]
