"""DuckDB registration of the data-test helpers over order-book lists (udfs/kernels/levels.py).

- `daedalus_levels_invalid(bids, asks, max_levels)` → BOOLEAN: true when a side of the row breaks
  sql/tests/orderbook_levels_valid.sql's rule; never NULL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from daedalus.udfs import arrow_io as aio
from daedalus.udfs.arrow_io import LEVEL_SQL
from daedalus.udfs.kernels.levels import side_invalid

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

    if aio.registered(con, LEVELS_INVALID):
        return
    t = duckdb.sqltype
    con.create_function(
        LEVELS_INVALID,
        levels_invalid_udf,
        [t(LEVEL_SQL), t(LEVEL_SQL), t("INTEGER")],
        t("BOOLEAN"),
        type="arrow",
        null_handling="special",
        side_effects=False,
    )
