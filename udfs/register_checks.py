"""DuckDB registrations of the row-wise kernels over order-book lists (no series, no state: any
vector, any thread, any order).

- `daedalus_levels_invalid(bids, asks, max_levels)` → BOOLEAN: true when a side of the row breaks
  sql/tests/orderbook_levels_valid.sql's rule; never NULL (udfs/kernels/levels.py).
- `daedalus_book_structural(bids, asks, max_levels, band_edges)` → one struct of the per-snapshot
  structural features of gold.orderbook_hf, band depths as two lists over the stored levels
  (udfs/kernels/structural.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from daedalus.udfs import arrow_io as aio
from daedalus.udfs.arrow_io import LEVEL_SQL
from daedalus.udfs.kernels.levels import side_invalid
from daedalus.udfs.kernels.structural import SCALARS, structural

if TYPE_CHECKING:
    import duckdb

LEVELS_INVALID = "daedalus_levels_invalid"


def _valid(arr: pa.Array) -> np.ndarray:
    return np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), np.bool_)


def levels_invalid_udf(bids, asks, max_levels) -> pa.Array:  # noqa: ANN001
    sides = [aio.flat(bids), aio.flat(asks)]
    limits = aio.flat(max_levels)
    n = len(sides[0])
    out = np.zeros(n, np.bool_)
    if n == 0:
        return pa.array(out, pa.bool_())
    limit = pc.max(limits).as_py()
    if limit is None or pc.min(limits).as_py() != limit:
        raise ValueError(f"{LEVELS_INVALID}: max_levels must be one non-NULL constant per query")
    for side, bid in zip(sides, (True, False), strict=True):
        px, sz, off = aio.levels(side)
        flat = pc.list_flatten(side)  # struct_field carries a NULL level into both of its fields
        px_ok = _valid(pc.struct_field(flat, "price"))
        sz_ok = _valid(pc.struct_field(flat, "size"))
        side_invalid(px, px_ok, sz, sz_ok, off, _valid(side), np.int64(limit), bid, out)
    return pa.array(out, pa.bool_())


def register_checks(con: duckdb.DuckDBPyConnection) -> None:
    import duckdb

    t = duckdb.sqltype
    if not aio.registered(con, LEVELS_INVALID):
        con.create_function(
            LEVELS_INVALID,
            levels_invalid_udf,
            [t(LEVEL_SQL), t(LEVEL_SQL), t("INTEGER")],
            t("BOOLEAN"),
            type="arrow",
            null_handling="special",
            side_effects=False,
        )
    if not aio.registered(con, BOOK_STRUCTURAL):
        con.create_function(
            BOOK_STRUCTURAL,
            book_structural_udf,
            [t(LEVEL_SQL), t(LEVEL_SQL), t("INTEGER"), t("DOUBLE[]")],
            t(STRUCTURAL_RETURN_SQL),
            type="arrow",
            null_handling="special",
            side_effects=False,
        )


# ------------------------------------------------------------------ per-snapshot structural features

BOOK_STRUCTURAL = "daedalus_book_structural"
STRUCTURAL_RETURN_SQL = (
    "STRUCT(" + ", ".join(f"{name} DOUBLE" for name in SCALARS) + ", bid_bands DOUBLE[], ask_bands DOUBLE[])"
)


def _null_nan(values: np.ndarray) -> pa.Array:
    # NaN is the kernel's NULL; ±inf stays what the SQL arithmetic would have given
    return pa.array(values, pa.float64(), mask=np.isnan(values))


def _bands(values: np.ndarray) -> pa.Array:
    rows, nb = values.shape
    off = pa.array(np.arange(0, rows * nb + 1, nb, dtype=np.int32), pa.int32())
    return pa.ListArray.from_arrays(off, _null_nan(np.ascontiguousarray(values).ravel()))


def book_structural_udf(bids, asks, max_levels, edges) -> pa.StructArray:  # noqa: ANN001
    """Arrow entry point of `daedalus_book_structural(bids, asks, max_levels, band_edges)`."""
    b, a, limits, edge_rows = (aio.flat(x) for x in (bids, asks, max_levels, edges))
    limit = pc.max(limits).as_py() if len(limits) else 0
    if len(b) and (limit is None or pc.min(limits).as_py() != limit):
        raise ValueError(f"{BOOK_STRUCTURAL}: max_levels must be one non-NULL constant per query")
    edge_list = edge_rows[0].as_py() if len(edge_rows) else [0.0, 1.0]
    scalars, bid_bands, ask_bands = structural(
        *aio.levels(b), *aio.levels(a), np.int64(limit or 0), np.asarray(edge_list, np.float64)
    )
    arrays = [_null_nan(scalars[i]) for i in range(len(SCALARS))]  # column-major: one contiguous column each
    arrays += [_bands(bid_bands), _bands(ask_bands)]
    return pa.StructArray.from_arrays(arrays, names=[*SCALARS, "bid_bands", "ask_bands"])
