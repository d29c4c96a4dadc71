"""Arrow ↔ numpy for the UDF wrappers (register.py, register_book.py): one home for the conversions.

NULL doubles become NaN on the way in; NaN and ±inf become NULL on the way out (a feature is a
finite number or NULL, docs/features.md).
"""

from __future__ import annotations

import ctypes
import functools
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    import duckdb

TS = pa.timestamp("us", tz="UTC")
F64 = pa.float64()
LEVEL_SQL = "STRUCT(price DOUBLE, size DOUBLE)[]"


def flat(arr: pa.Array) -> pa.Array:
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def f64(arr: pa.Array) -> np.ndarray:
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)


def ts_us(arr: pa.Array) -> np.ndarray:
    return np.asarray(pc.cast(arr, TS).cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def bools(arr: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=np.bool_)


def levels(side: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lengths = np.asarray(pc.fill_null(pc.list_value_length(side), 0).to_numpy(zero_copy_only=False), np.int64)
    off = np.zeros(len(side) + 1, np.int64)
    np.cumsum(lengths, out=off[1:])
    flat = pc.list_flatten(side)
    return f64(pc.struct_field(flat, "price")), f64(pc.struct_field(flat, "size")), off


def f64_array(values: np.ndarray) -> pa.Array:
    # NaN and ±inf alike become NULL: a feature is a finite number or NULL (docs/features.md), whatever
    # the kernel met (e.g. a variance of 0 in a ratio, an overflow of a sum of squares).
    return pa.array(values, F64, mask=~np.isfinite(values))


def list_array(values: pa.Array, lengths: list[int], valid: list[bool]) -> pa.ListArray:
    off = np.zeros(len(lengths) + 1, np.int32)
    np.cumsum(lengths, out=off[1:])
    mask = pa.array([not v for v in valid], pa.bool_())
    return pa.ListArray.from_arrays(pa.array(off, pa.int32()), values, mask=mask)


def concat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.empty(0, dtype)


@functools.cache
def _malloc_trim() -> Any:
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc
    except (OSError, AttributeError):
        return None


def release_memory() -> None:
    """Hand the heap pages freed so far back to the OS: pyarrow's pool's, and glibc's (malloc_trim,
    every arena: the Python relations run on DuckDB's threads, whose arenas keep what they freed)."""
    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def registered(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    # The name inlined, not bound: binding a Python parameter makes DuckDB import pandas (~50 MB RSS)
    # to check whether it is a DataFrame. Names are this module's constants.
    row = con.execute(f"SELECT count(*) FROM duckdb_functions() WHERE function_name = '{name}'").fetchone()
    return bool(row and row[0])
