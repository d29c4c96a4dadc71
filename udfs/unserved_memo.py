"""The unserved book messages silver.orderbook's rebuild already found, kept for silver.orderbook_unserved.

silver.orderbook and silver.orderbook_unserved replay the same connection rows through the same kernel
(macros/book_updates.sql): which messages are served, and why the others are not, depends only on the
rows' keys, ids, kinds, flags and the slice start (and on the levels where deletes are strict); the
levels themselves only shape the served books. So the served pass (register_book.rebuild_connection)
also computes the unserved rows and files them here under a digest of exactly those inputs; the
unserved call of the same rows finds them and skips its kernel pass. A miss (the model built alone, in
another process, or after the memo dropped the entry) replays as before: same rows, same result.

A whole slice at once (`put_slice` / `take_slice`): the served stream (udfs/book_stream.py) that ran to
its end files every connection's unserved rows under its relation's name (a digest of its input
query's text, which names the exact bronze files and the slice) and a stamp of those files (size,
modification time). silver.orderbook_unserved names the same stream (macros/book_updates.sql
`book_unserved_relation`): on a hit it neither reads bronze nor replays; the connections' own entries
go with it.

Bounded: at most MAX_ROWS unserved rows in MAX_ENTRIES entries (each taken once, oldest dropped first).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np
import pyarrow as pa

MAX_ROWS = 200_000
"""Unserved rows kept at most (~100 bytes each): a slice rarely has more than a few hundred."""
MAX_ENTRIES = 4_096
"""Connection slices kept at most (an entry costs a few kB even without rows): past it, the oldest
are dropped and their unserved call replays (a build of many series and days, or the unserved model
not selected)."""

_lock = threading.Lock()
_entries: OrderedDict[bytes, dict[str, pa.Array]] = OrderedDict()
_held = 0
_hits = 0
_slices: OrderedDict[str, tuple[pa.Table, list[bytes]]] = OrderedDict()


class Digest:
    """A digest of the inputs that decide which rows are unserved and what they hold, fed in pieces:
    the arrays of a connection's rows given chunk by chunk (the same arrays, in the same order, each
    call) digest as the whole arrays given at once."""

    def __init__(self, scalars: tuple[int, ...]) -> None:
        self.scalars = scalars
        self.parts: list[tuple[hashlib.blake2b, list[int], list[str]]] = []

    def update(self, arrays: list[np.ndarray]) -> Digest:
        if not self.parts:
            self.parts = [(hashlib.blake2b(digest_size=20), [0], []) for _ in arrays]
        for (h, n, dtype), a in zip(self.parts, arrays, strict=True):
            a = np.ascontiguousarray(a)
            n[0] += a.shape[0]
            dtype[:] = [str(a.dtype)]
            h.update(memoryview(a).cast("B"))
        return self

    def digest(self) -> bytes:
        h = hashlib.blake2b(digest_size=20)
        h.update(np.asarray(self.scalars, np.int64).tobytes())
        for part, n, dtype in self.parts:
            h.update(np.int64(n[0]).tobytes())
            h.update("".join(dtype).encode())
            h.update(part.digest())
        return h.digest()


def digest(arrays: list[np.ndarray], scalars: tuple[int, ...]) -> bytes:
    """A digest of the inputs that decide which rows are unserved and what the unserved rows hold."""
    return Digest(scalars).update(arrays).digest()


def _rows(cols: dict[str, pa.Array]) -> int:
    return len(next(iter(cols.values()))) if cols else 0


def put(key: bytes, cols: dict[str, pa.Array]) -> None:
    """Keep the unserved rows of one connection's rows (replacing the same key's)."""
    global _held
    n = _rows(cols)
    if n > MAX_ROWS:
        return
    with _lock:
        old = _entries.pop(key, None)
        if old is not None:
            _held -= _rows(old)
        _entries[key] = cols
        _held += n
        while _entries and (_held > MAX_ROWS or len(_entries) > MAX_ENTRIES):
            _, dropped = _entries.popitem(last=False)
            _held -= _rows(dropped)


def take(key: bytes) -> dict[str, pa.Array] | None:
    """The unserved rows filed under `key`, removed from the memo; None when not there."""
    global _held, _hits
    with _lock:
        cols = _entries.pop(key, None)
        if cols is not None:
            _held -= _rows(cols)
            _hits += 1
        return cols


def put_slice(key: str, rows: pa.Table, conns: list[bytes]) -> None:
    """Keep one stream's unserved rows (every connection of a slice: `rows`), the keys of its
    connections' own entries (`conns`) with them."""
    global _held
    with _lock:
        old = _slices.pop(key, None)
        if old is not None:
            _held -= old[0].num_rows
        _slices[key] = (rows, conns)
        _held += rows.num_rows
        while _slices and (_held > MAX_ROWS or len(_slices) > MAX_ENTRIES):
            _, (dropped, _conns) = _slices.popitem(last=False)
            _held -= dropped.num_rows


def take_slice(key: str) -> pa.Table | None:
    """The unserved rows a stream filed under `key`, removed from the memo with its connections'
    entries; None when not there."""
    global _held, _hits
    with _lock:
        found = _slices.pop(key, None)
        if found is None:
            return None
        rows, conns = found
        _held -= rows.num_rows
        for c in conns:
            cols = _entries.pop(c, None)
            if cols is not None:
                _held -= _rows(cols)
        _hits += 1
        return rows


def hits() -> int:
    """How many unserved calls this process answered from the memo (so far)."""
    return _hits


def held() -> int:
    """How many unserved rows the memo holds (entries not taken yet)."""
    return _held


def pending() -> int:
    """How many connection slices (and whole slices) are filed and not taken yet."""
    return len(_entries) + len(_slices)


def clear() -> None:
    global _held
    with _lock:
        _entries.clear()
        _slices.clear()
        _held = 0
