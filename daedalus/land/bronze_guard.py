"""A damaged bronze file must not stop every build (issue 24).

Before a build reads bronze, every bronze file not yet seen (or changed since) has its footer read
(cheap: the footer only). A file whose footer or row groups cannot be read is repaired in place:
1. its readable part is found (row group by row group; for a file cut short, footerless.py walks
   its pages) and written to a hidden temp file next to it;
2. each loss becomes a `quarantine` events row naming the file's exchange and channel (from its
   path), the symbol when known, and the rows lost (exact from the footer; a file without footer
   only knows a lower bound, written in `detail`), so the silver models break those series there;
3. the original is moved whole to `<root>/quarantine/<its bronze path>`, then the temp file takes its
   name. A crash between the two leaves the temp file: the next check renames it into place.
Checked files are remembered in `_state/bronze_checked.json` (path -> size, mtime), so a build reads
each footer once. Damage a footer does not show (a page that does not decompress) surfaces when a
build reads the file: `repair_named` then decodes the bronze files the error names, repairs the
damaged ones the same way, and the build runs again.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from daedalus.collector.schemas import SCHEMAS
from daedalus.fsio import fsync_dir
from daedalus.land.landing import LandLayout, LandReport, write_loss_events
from daedalus.land.salvage import READ_ERRORS, Salvage, parquet_batches

STATE = Path("_state") / "bronze_checked.json"
TMP_PREFIX = ".guard-"


@dataclass
class GuardReport:
    repaired: list[str] = field(default_factory=list)  # bronze files rewritten with their readable rows
    rows_kept: int = 0
    messages: list[str] = field(default_factory=list)


def _load(root: Path) -> dict[str, list[int]]:
    try:
        return json.loads((root / STATE).read_text())
    except (OSError, ValueError):
        return {}


def _save(root: Path, seen: dict[str, list[int]]) -> None:
    path = root / STATE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(seen, sort_keys=True))
    os.replace(tmp, path)


def _readable(path: Path) -> bool:
    try:
        meta = pq.read_metadata(path)
        for i in range(meta.num_row_groups):
            meta.row_group(i)
    except READ_ERRORS:
        return False
    return True


def _finish_interrupted(bronze: Path) -> None:
    """A temp file left by a crash between moving the original aside and renaming the repair."""
    for tmp in bronze.rglob(f"{TMP_PREFIX}*.tmp"):
        final = tmp.with_name(tmp.name[len(TMP_PREFIX) : -len(".tmp")])
        if final.exists():
            tmp.unlink(missing_ok=True)
        else:
            os.replace(tmp, final)
            fsync_dir(final.parent)


def check_bronze(root: str | Path) -> GuardReport:
    """Check the footers of new bronze files; repair the damaged ones (see the module doc)."""
    root = Path(root).expanduser()
    report = GuardReport()
    bronze = root / "bronze"
    if not bronze.is_dir():
        return report
    _finish_interrupted(bronze)
    seen = _load(root)
    now: dict[str, list[int]] = {}
    for path in sorted(bronze.glob("*/exchange=*/date=*/*.parquet")):
        rel = path.relative_to(root).as_posix()
        try:
            st = path.stat()
        except FileNotFoundError:
            continue  # replaced by a concurrent land
        sig = [st.st_size, st.st_mtime_ns]
        if seen.get(rel) != sig and not _readable(path):
            _repair(root, path, report)
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            sig = [st.st_size, st.st_mtime_ns]
        now[rel] = sig
    if now != seen:
        _save(root, now)
    return report


def _repair(root: Path, path: Path, report: GuardReport) -> None:
    layout = LandLayout(root)
    channel = path.parents[2].name
    exchange = path.parents[1].name.split("=", 1)[1]
    date = path.parent.name.split("=", 1)[1]
    salvage = Salvage()
    batches = list(parquet_batches(path, salvage, SCHEMAS.get(channel)))
    kept = sum(b.num_rows for b in batches)
    day_start = int(dt.datetime.fromisoformat(date).replace(tzinfo=dt.UTC).timestamp()) * 1_000_000_000
    for loss in salvage.losses:
        loss.exchange = loss.exchange or exchange  # the file's own exchange, never the source
        if loss.after is None:  # nothing readable before the hole: break the series from the day's start
            loss.after = day_start
    rel = layout.rel(path)
    dst = root / "quarantine" / rel
    detail = {"bronze_file": rel, "moved_to": layout.rel(dst), "rows_kept": kept}
    write_loss_events(layout, "bronze", channel, f"bronze_{path.stem}", salvage.losses, detail, LandReport())
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.tmp")
    if batches:
        pq.write_table(pa.Table.from_batches(batches), tmp, compression="zstd")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, dst)
    fsync_dir(dst.parent)
    if batches:
        os.replace(tmp, path)
    fsync_dir(path.parent)
    report.repaired.append(rel)
    report.rows_kept += kept
    counts = [loss.count for loss in salvage.losses]
    unknown = [loss for loss in salvage.losses if loss.count is None]
    lost = f"{sum(c or 0 for c in counts)} rows lost" if not unknown else unknown[0].error.rsplit("; ", 1)[-1]
    report.messages.append(
        f"{rel}: damaged bronze file repaired ({kept} readable rows kept, {lost}; original moved to "
        f"{layout.rel(dst)}; a `quarantine` event breaks {exchange} {channel} there)"
    )


def _decodes(path: Path) -> bool:
    try:
        pf = pq.ParquetFile(path)
        for i in range(pf.num_row_groups):
            pf.read_row_group(i)
    except READ_ERRORS:
        return False
    return True


def repair_named(root: str | Path, text: str) -> GuardReport:
    """Repair the damaged bronze files a reader's error text names (DuckDB names the file it failed on)."""
    root = Path(root).expanduser().resolve()
    report = GuardReport()
    for name in sorted(set(re.findall(r"[^\s\"'`]+\.parquet", text))):
        path = Path(name) if Path(name).is_absolute() else root / name
        try:
            rel = path.resolve().relative_to(root)
        except (ValueError, OSError):
            continue
        if rel.parts[:1] == ("bronze",) and path.is_file() and not _decodes(path):
            _repair(root, path.resolve(), report)
    return report
