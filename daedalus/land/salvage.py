"""Read what is readable of a raw segment, and account exactly for what is not (issue 17).

A damaged segment used to be quarantined whole: one bad row group hid every good one, one torn
NDJSON line hid the 975 around it, and the event named neither exchange, symbol nor count. Here:
- Parquet: row group by row group. A group that does not decode is lost, but its `exchange`,
  `symbol` and `capture_ts` columns are read on their own when they decode (corruption is usually in
  one column chunk), else taken from the footer statistics, so the loss names its series and count.
- NDJSON: line by line. A line that does not parse (or does not fit the schema) is lost; its
  exchange and symbol are read from its text when they are there.
Each loss is placed on the receive clock between the last readable row before it and the first
after it (`after`, `before`), which is where ETL must break the series it names.
- Parquet without a footer (a file cut short): its complete row groups are found by walking the page
  headers (footerless.py); the rest is one loss of unknown count (a lower bound is in its error) for
  every exchange the readable rows name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from daedalus.collector.ndjson_segment import ndjson_to_table
from daedalus.collector.schemas import TS_NS_UTC
from daedalus.land.footerless import recover

READ_ERRORS = (pa.ArrowException, OSError, ValueError, KeyError, TypeError, OverflowError)
_KEY = {k: re.compile(rb'"' + k.encode() + rb'"\s*:\s*"([^"\\]{1,200})"') for k in ("exchange", "symbol")}


@dataclass
class Loss:
    """Rows of one series (exchange, symbol; symbol None = unknown) that could not be read."""

    exchange: str | None
    symbol: str | None
    count: int | None  # None: unknowable (no footer)
    part: str  # "row group 3" / "line 17"
    error: str
    after: int | None = None  # capture_ts (ns) of the last readable row before the loss
    before: int | None = None  # capture_ts (ns) of the first readable row after it
    lines: list[bytes] = field(default_factory=list)  # NDJSON: the bad lines themselves


@dataclass
class Salvage:
    """Losses found so far (filled while `batches` is consumed) and exchanges seen in good rows."""

    losses: list[Loss] = field(default_factory=list)
    exchanges: set[str] = field(default_factory=set)
    last_capture: int | None = None
    _open: list[Loss] = field(default_factory=list)  # losses still waiting for their `before`

    def good(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        names = batch.schema.names
        caps = batch.column(names.index("capture_ts")).cast(TS_NS_UTC).cast(pa.int64())
        lo, hi = pc.min(caps).as_py(), pc.max(caps).as_py()
        for loss in self._open:
            loss.before = lo
        self._open.clear()
        if hi is not None:
            self.last_capture = hi if self.last_capture is None else max(self.last_capture, hi)
        if "exchange" in names:
            self.exchanges.update(
                x for x in pc.unique(batch.column(names.index("exchange"))).to_pylist() if x
            )

    def lost(self, loss: Loss) -> None:
        loss.after = self.last_capture
        self.losses.append(loss)
        self._open.append(loss)

    def finish(self) -> None:
        """A loss of unknown exchange is a loss of every exchange the segment's readable rows name
        (one row each, symbol unknown: a break of each of their series), not of the source."""
        out: list[Loss] = []
        for loss in self.losses:
            if loss.exchange is None and len(self.exchanges) == 1:
                out.append(replace(loss, exchange=next(iter(self.exchanges))))
            elif loss.exchange is None and self.exchanges and not loss.lines:  # count: not whose
                out.extend(replace(loss, exchange=x, count=None) for x in sorted(self.exchanges))
            else:
                out.append(loss)
        self.losses = out


def _err(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"[:500]


def _stat(pf: pq.ParquetFile, i: int, name: str) -> str | None:
    """A column's value in row group i when the footer statistics say it is one value there."""
    if name not in pf.schema_arrow.names:
        return None
    col = pf.metadata.row_group(i).column(pf.schema_arrow.names.index(name))
    st = col.statistics
    if st is None or not st.has_min_max or st.min != st.max:
        return None
    v = st.min
    return v.decode() if isinstance(v, bytes) else str(v)


def _row_group_losses(pf: pq.ParquetFile, i: int, error: str) -> list[Loss]:
    part = f"row group {i}"
    try:  # the key columns alone often decode when another column's chunk is damaged
        keys = (
            pf.read_row_group(i, columns=["exchange", "symbol"])
            .group_by(["exchange", "symbol"])
            .aggregate([([], "count_all")])
        )
        return [
            Loss(e, s, n, part, error)
            for e, s, n in zip(
                keys.column("exchange").to_pylist(),
                keys.column("symbol").to_pylist(),
                keys.column("count_all").to_pylist(),
                strict=True,
            )
        ]
    except READ_ERRORS:
        n = pf.metadata.row_group(i).num_rows
        return [Loss(_stat(pf, i, "exchange"), _stat(pf, i, "symbol"), n, part, error)]


def parquet_batches(
    path: Path, salvage: Salvage, schema: pa.Schema | None = None
) -> Iterator[pa.RecordBatch]:
    try:
        pf = pq.ParquetFile(path)
    except READ_ERRORS as e:
        yield from footerless_batches(path.read_bytes(), salvage, schema, _err(e))
        return
    for i in range(pf.num_row_groups):
        try:  # one whole row group before any of it is written: a group lands entirely or not at all
            table = pf.read_row_group(i)
        except READ_ERRORS as e:
            for loss in _row_group_losses(pf, i, _err(e)):
                salvage.lost(loss)
            continue
        for batch in table.to_batches():
            salvage.good(batch)
            yield batch


def footerless_batches(
    data: bytes, salvage: Salvage, schema: pa.Schema | None, error: str
) -> Iterator[pa.RecordBatch]:
    """A file cut short: its complete row groups (daedalus/land/footerless.py), then one loss for the
    rest, whose row count died with the footer (only a lower bound is known)."""
    found = recover(data, schema) if schema is not None else None
    for table in found.tables if found else []:
        for batch in table.to_batches():
            salvage.good(batch)
            yield batch
    kept = sum(t.num_rows for t in found.tables) if found else 0
    least = found.rows_lost_at_least if found else 0
    part = f"after row {kept} (footer lost; {kept} rows in complete row groups kept)"
    if found is not None and found.partial_keys is not None:  # the cut row group: its series are known
        keys = found.partial_keys.group_by(["exchange", "symbol"]).aggregate([([], "count_all")])
        for e, s, n in zip(
            *(keys.column(c).to_pylist() for c in ("exchange", "symbol", "count_all")), strict=True
        ):
            salvage.lost(Loss(e, s, n, f"row group after row {kept} (cut)", f"{error}; {n} rows lost"))
        part = f"after the cut row group (footer lost; {kept} rows in complete row groups kept)"
        least = 0
    salvage.lost(
        Loss(None, None, None, part, f"{error}; at least {least} rows lost (count died with the footer)")
    )


def _line_loss(line: bytes, lineno: int, error: str) -> Loss:
    found = {
        k: (m.group(1).decode(errors="replace") if (m := rx.search(line)) else None) for k, rx in _KEY.items()
    }
    return Loss(found["exchange"], found["symbol"], 1, f"line {lineno}", error, lines=[line])


def _capture(row: dict) -> int | None:
    v = row.get("capture_ts")
    return v if isinstance(v, int) else None


def ndjson_batches(path: Path, schema: pa.Schema, salvage: Salvage) -> Iterator[pa.RecordBatch]:
    """The good lines of an NDJSON segment as one table (one schema, extra keys included)."""
    lines = [ln for ln in path.read_bytes().splitlines() if ln.strip()]
    try:  # the usual case: every line is fine, one conversion
        table = ndjson_to_table(lines, schema)
    except READ_ERRORS:
        table = None
    if table is None:
        good: list[bytes] = []
        bad: list[tuple[int, Loss]] = []  # (index among good lines it precedes, loss)
        prev: int | None = None
        for lineno, line in enumerate(lines, 1):
            try:  # each line alone: a bad one costs itself, not its neighbours
                ndjson_to_table([line], schema)
            except READ_ERRORS as e:
                loss = _line_loss(line, lineno, _err(e))
                loss.after = prev
                bad.append((len(good), loss))
                continue
            good.append(line)
            prev = _capture(json.loads(line)) or prev
        for idx, loss in bad:
            nxt = next(
                (c for ln in good[idx : idx + 50] if (c := _capture(json.loads(ln))) is not None), None
            )
            loss.before = nxt
            salvage.losses.append(loss)
        table = ndjson_to_table(good, schema) if good else None
    if table is None:
        return
    for batch in table.to_batches():
        salvage.good(batch)  # exchanges seen (the losses already know their neighbours)
        yield batch
