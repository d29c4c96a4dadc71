"""The complete row groups of a Parquet file whose footer is gone (a file cut short, issue 24).

A Parquet file is `PAR1`, then each row group's column chunks in schema order, each chunk a run of
pages (an optional dictionary page, then data pages), each page a Thrift header and its bytes; the
footer that says where the chunks are comes last, so a cut file loses it. Here the page headers are
walked from the start, split into row groups and column chunks (the page counts of flat columns
must add up to the row count, a dictionary page only opens a chunk), and each candidate row group is
proved by reading it: it is copied after a fresh `PAR1` with a footer built from a template of the
file's schema, and pyarrow must decode it with exactly its row count. What follows the last proved
row group is lost; its row count is known only as a lower bound (the first column's pages).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

MAGIC = b"PAR1"
_CODECS = (6, 1, 0, 2, 7, 4, 5)  # ZSTD, SNAPPY, UNCOMPRESSED, GZIP, LZ4_RAW, BROTLI, LZ4: tried in turn
_TYPES = {"BOOLEAN": 0, "INT32": 1, "INT64": 2, "INT96": 3, "FLOAT": 4, "DOUBLE": 5}
_TYPES |= {"BYTE_ARRAY": 6, "FIXED_LEN_BYTE_ARRAY": 7}
_MAX_TRIES = 64  # candidate splits proved per row group before giving up on it


# -- Thrift compact protocol: values are (type, value); a struct is a list of (field id, type, value) --


class _Reader:
    def __init__(self, data: bytes | memoryview, pos: int = 0) -> None:
        self.data, self.pos = data, pos

    def byte(self) -> int:
        b = self.data[self.pos]
        self.pos += 1
        return b

    def varint(self) -> int:
        out = shift = 0
        while True:
            b = self.byte()
            out |= (b & 0x7F) << shift
            if not b & 0x80:
                return out
            shift += 7
            if shift > 70:
                raise ValueError("varint too long")

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def value(self, t: int) -> object:
        if t in (1, 2):
            return t == 1
        if t == 3:
            return struct.unpack("b", bytes([self.byte()]))[0]
        if t in (4, 5, 6):
            return self.zigzag()
        if t == 7:
            self.pos += 8
            return struct.unpack("<d", bytes(self.data[self.pos - 8 : self.pos]))[0]
        if t == 8:
            n = self.varint()
            self.pos += n
            if self.pos > len(self.data):
                raise ValueError("binary past the end")
            return bytes(self.data[self.pos - n : self.pos])
        if t in (9, 10):
            h = self.byte()
            n, et = h >> 4, h & 0x0F
            if n == 15:
                n = self.varint()
            if et in (1, 2):  # booleans in a list are one byte each
                return (et, [self.byte() == 1 for _ in range(n)])
            return (et, [self.value(et) for _ in range(n)])
        if t == 11:
            n = self.varint()
            kv = self.byte() if n else 0
            return (kv, [(self.value(kv >> 4), self.value(kv & 0x0F)) for _ in range(n)])
        if t == 12:
            return self.struct()
        raise ValueError(f"thrift type {t}")

    def struct(self) -> list[tuple[int, int, object]]:
        fields, last = [], 0
        while True:
            h = self.byte()
            if h == 0:
                return fields
            t, delta = h & 0x0F, h >> 4
            fid = last + delta if delta else self.zigzag()
            fields.append((fid, t, self.value(t)))
            last = fid


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _zigzag(n: int) -> bytes:
    return _varint((n << 1) ^ (n >> 63))


def _enc_value(t: int, v: object) -> bytes:
    if t in (1, 2):
        return b""  # a struct field's boolean lives in its type nibble
    if t == 3:
        return struct.pack("b", v)
    if t in (4, 5, 6):
        return _zigzag(int(v))
    if t == 7:
        return struct.pack("<d", v)
    if t == 8:
        return _varint(len(v)) + v
    if t in (9, 10):
        et, items = v
        head = (
            bytes([(len(items) << 4) | et]) if len(items) < 15 else bytes([0xF0 | et]) + _varint(len(items))
        )
        if et in (1, 2):
            return head + bytes(1 if x else 2 for x in items)
        return head + b"".join(_enc_value(et, x) for x in items)
    if t == 11:
        kv, items = v
        if not items:
            return b"\x00"
        body = b"".join(_enc_value(kv >> 4, k) + _enc_value(kv & 0x0F, x) for k, x in items)
        return _varint(len(items)) + bytes([kv]) + body
    if t == 12:
        return _enc_struct(v)
    raise ValueError(f"thrift type {t}")


def _enc_struct(fields: list[tuple[int, int, object]]) -> bytes:
    out, last = bytearray(), 0
    for fid, t, v in fields:
        if t in (1, 2):
            t = 1 if v else 2
        delta = fid - last
        out += bytes([(delta << 4) | t]) if 0 < delta <= 15 else bytes([t]) + _zigzag(fid)
        out += _enc_value(t, v)
        last = fid
    return bytes(out + b"\x00")


# -- pages, chunks, row groups ----------------------------------------------------------------------


@dataclass
class _Page:
    offset: int  # of its header
    body: int  # offset of its body (after the header)
    end: int  # of its body
    kind: int  # 0 data, 2 dictionary, 3 data v2
    values: int
    uncompressed: int
    encodings: tuple[int, ...]


def _pages(data: bytes) -> Iterator[_Page]:
    pos = len(MAGIC)
    while pos < len(data):
        r = _Reader(data, pos)
        try:
            head = {fid: v for fid, _, v in r.struct()}
        except (IndexError, ValueError, struct.error):
            return
        kind, size, raw = head.get(1), head.get(3), head.get(2)
        sub_fields = head.get({0: 5, 2: 7, 3: 8}.get(kind, -1))
        if not isinstance(sub_fields, list) or not isinstance(size, int) or size < 0:
            return  # not a page header: the cut, or garbage
        sub = {fid: v for fid, _, v in sub_fields}
        if r.pos + size > len(data):
            return  # not a page header, or its body was cut off
        encs = tuple(v for k, v in sorted(sub.items()) if k in ((2, 3, 4) if kind == 0 else (2,)))
        yield _Page(pos, r.pos, r.pos + size, kind, int(sub.get(1, 0)), int(raw or 0), encs)
        pos = r.pos + size


def _template(schema: pa.Schema) -> tuple[list, list[tuple[str, int, int]]]:
    """The footer of an empty file of this schema (as Thrift fields) and its leaves (path, type, max rep)."""
    buf = io.BytesIO()
    pq.write_table(schema.empty_table(), buf)
    data = buf.getvalue()
    n = struct.unpack("<I", data[-8:-4])[0]
    meta = _Reader(data[-8 - n : -8]).struct()
    ps = pq.ParquetFile(io.BytesIO(data)).schema
    leaves = [
        (c.path, _TYPES[c.physical_type], c.max_repetition_level)
        for c in (ps.column(i) for i in range(len(ps)))
    ]
    return meta, leaves


def _chunk_ends(pages: list[_Page], i: int, flat: bool, rows: int | None) -> Iterator[int]:
    """Possible ends (exclusive page index) of a column chunk starting at page i."""
    j = i + 1 if pages[i].kind == 2 else i
    total = 0
    while j < len(pages) and pages[j].kind != 2:
        total += pages[j].values
        j += 1
        if rows is None or (not flat and total >= rows) or (flat and total == rows):
            yield j
        if flat and rows is not None and total >= rows:
            return


def _footer(
    template: list,
    leaves: list,
    pages: list[_Page],
    chunks: list[tuple[int, int]],
    rows: int,
    codec: int,
    base: int,
) -> bytes:
    columns = []
    for (path, ptype, _), (a, b) in zip(leaves, chunks, strict=True):
        first = pages[a]
        dict_page = first.offset - base if first.kind == 2 else None
        data_page = (pages[a + 1] if first.kind == 2 else first).offset - base
        encs = sorted({e for p in pages[a:b] for e in p.encodings})
        size = pages[b - 1].end - first.offset
        meta = [
            (1, 5, ptype),
            (2, 9, (5, encs)),
            (3, 9, (8, [s.encode() for s in path.split(".")])),
            (4, 5, codec),
            (5, 6, sum(p.values for p in pages[a:b] if p.kind != 2)),
            (6, 6, sum(p.body - p.offset + p.uncompressed for p in pages[a:b])),
            (7, 6, size),
            (9, 6, data_page),
        ] + ([(11, 6, dict_page)] if dict_page is not None else [])
        columns.append([(2, 6, first.offset - base), (3, 12, meta)])
    total = pages[chunks[-1][1] - 1].end - pages[chunks[0][0]].offset
    group = [(1, 9, (12, columns)), (2, 6, total), (3, 6, rows)]
    fields = [f for f in template if f[0] not in (3, 4)] + [(3, 6, rows), (4, 9, (12, [group]))]
    body = _enc_struct(sorted(fields, key=lambda f: f[0]))
    return body + struct.pack("<I", len(body)) + MAGIC


def _prove(
    data: bytes,
    template: list,
    leaves: list,
    pages: list[_Page],
    chunks: list[tuple[int, int]],
    rows: int,
    codecs: list[int],
) -> pa.Table | None:
    start, end = pages[chunks[0][0]].offset, pages[chunks[-1][1] - 1].end
    for codec in codecs:
        blob = MAGIC + data[start:end] + _footer(template, leaves, pages, chunks, rows, codec, start - 4)
        try:
            table = pq.read_table(io.BytesIO(blob))
        except (pa.ArrowException, OSError, ValueError):
            continue
        if table.num_rows == rows:
            codecs[:] = [codec]  # one file, one codec
            return table
    return None


@dataclass
class Recovered:
    tables: list[pa.Table]  # the complete row groups, in file order
    rows_lost_at_least: int  # rows of the first column seen after the last complete row group
    bytes_lost: int
    partial_keys: pa.Table | None = None  # exchange, symbol of each row of the row group the cut went through


def recover(data: bytes, schema: pa.Schema) -> Recovered:
    """The complete row groups of a Parquet file without a (readable) footer, written with `schema`."""
    if not data.startswith(MAGIC):
        return Recovered([], 0, len(data))
    template, leaves = _template(schema)
    pages = list(_pages(data))
    codecs = list(_CODECS)
    tables: list[pa.Table] = []
    i, done_at = 0, len(MAGIC)
    while i < len(pages):
        found = _row_group(data, template, leaves, pages, i, codecs)
        if found is None:
            break
        table, i = found
        tables.append(table)
        done_at = pages[i - 1].end
    first = next(_chunk_ends(pages, i, True, None), None) if i < len(pages) else None
    rest = pages[i:first] if first is not None else []
    lost = sum(p.values for p in rest if p.kind != 2) if leaves and leaves[0][2] == 0 else 0
    keys = _partial_keys(data, schema, leaves, pages, i, codecs) if i < len(pages) else None
    return Recovered(tables, max(lost, keys.num_rows if keys is not None else 0), len(data) - done_at, keys)


def _partial_keys(
    data: bytes, schema: pa.Schema, leaves: list, pages: list[_Page], i: int, codecs: list[int]
) -> pa.Table | None:
    """`exchange` and `symbol` of the row group the cut went through, when their chunks are whole
    (they come early in every bronze schema), so its loss names its series and count."""
    names = [leaf[0] for leaf in leaves]
    if "exchange" not in names or "symbol" not in names:
        return None
    a, b = names.index("exchange"), names.index("symbol")
    if b != a + 1 or any(leaf[2] for leaf in leaves[: b + 1]):
        return None
    sub_template, sub_leaves = _template(pa.schema([schema.field("exchange"), schema.field("symbol")]))
    for end0 in _chunk_ends(pages, i, True, None):
        rows = sum(p.values for p in pages[i:end0] if p.kind != 2)
        chunks, at = [(i, end0)], end0
        for _ in range(1, b + 1):
            end = next(_chunk_ends(pages, at, True, rows), None) if at < len(pages) else None
            if end is None:
                break
            chunks.append((at, end))
            at = end
        if len(chunks) == b + 1:
            table = _prove(data, sub_template, sub_leaves, pages, chunks[a:], rows, list(codecs))
            if table is not None:
                return table
    return None


def _row_group(
    data: bytes, template: list, leaves: list, pages: list[_Page], i: int, codecs: list[int]
) -> tuple[pa.Table, int] | None:
    tries = 0

    def walk(
        col: int, at: int, rows: int | None, chunks: list[tuple[int, int]]
    ) -> tuple[pa.Table, int] | None:
        nonlocal tries
        if col == len(leaves):
            tries += 1
            table = _prove(data, template, leaves, pages, chunks, rows or 0, codecs)
            return (table, at) if table is not None else None
        if at >= len(pages) or tries >= _MAX_TRIES:
            return None
        flat = leaves[col][2] == 0
        # leaves of one repeated struct (bids.price, bids.size) share their levels, so their value
        # counts are equal: a split that disagrees is wrong, whatever decodes
        sibling = (
            col > 0 and not flat and leaves[col][0].rsplit(".", 1)[0] == leaves[col - 1][0].rsplit(".", 1)[0]
        )
        prev = sum(p.values for p in pages[chunks[-1][0] : chunks[-1][1]] if p.kind != 2) if sibling else None
        for end in _chunk_ends(pages, at, flat, rows):
            got = sum(p.values for p in pages[at:end] if p.kind != 2)
            if prev is not None and got != prev:
                continue
            found = walk(
                col + 1, end, rows if rows is not None else (got if flat else None), [*chunks, (at, end)]
            )
            if found is not None or tries >= _MAX_TRIES:
                return found
        return None

    return walk(0, i, None, [])
