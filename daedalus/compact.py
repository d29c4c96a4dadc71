"""`daedalus compact`: rewrite a partition's files as files of about `compaction.target_mb`.

Small files (many partial writes, a table rebuilt in pieces) are merged; a file far above the target
is split. Compaction is a build step like any other, so it is atomic the same way: the new files are
written under new unique names, the row count in their footers must equal the partition's, the
manifest is switched to them in one atomic write, and the old files become pending deletions
(deleted after `storage.retain_replaced_minutes`, once a catalog without them is live). A reader
sees the old files or the new ones, never both, never neither. Rows and their order are unchanged
(the model's `order_by` when it has one); the partition keeps its fingerprint, so it is not
rebuilt, while models reading it see new files and are rebuilt by the next build (same rows).

Only partitions the manifest holds (silver, gold) are compacted: bronze is never rewritten.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from daedalus.compiler import read_parquet_sql, sql_ident, sql_str
from daedalus.errors import BuildError, StorageError
from daedalus.lake import FileInfo
from daedalus.materializations.base import copy_sql, new_file_name

if TYPE_CHECKING:
    from daedalus.config import Config
    from daedalus.runner import Session
    from daedalus.state import PartitionState

MB = 1024 * 1024


@dataclass
class CompactReport:
    partitions: int = 0  # partitions rewritten
    files_before: int = 0
    files_after: int = 0
    rows: int = 0
    rewritten: list[tuple[str, str]] = field(default_factory=list)  # (model, pid)
    seconds: float = 0.0

    def summary(self) -> str:
        return (f"compacted {self.partitions} partitions: {self.files_before} files → {self.files_after} "
                f"({self.rows} rows) in {self.seconds:.2f}s")


def files_wanted(total_bytes: int, target_bytes: int) -> int:
    """How many files of about the target size a partition of `total_bytes` should have."""
    return max(1, round(total_bytes / target_bytes)) if total_bytes > target_bytes else 1


def needs_compaction(files: list[FileInfo], target_bytes: int) -> bool:
    """More files than the target size calls for, or one far too big (> 2 × target)."""
    total = sum(f.size for f in files)
    if len(files) > files_wanted(total, target_bytes):
        return True
    return any(f.size > 2 * target_bytes for f in files) and files_wanted(total, target_bytes) > len(files)


def _rewrite(s: Session, model_name: str, pid: str, ps: PartitionState, target_bytes: int) -> list[FileInfo]:
    """Write the partition's rows into n new files; returns them (verified) or raises, leaving none."""
    import duckdb

    model = s.project.models[model_name]
    n = files_wanted(sum(f.size for f in ps.files), target_bytes)
    urls = [s.lake.url(f.path) for f in ps.files]
    url_list = "[" + ", ".join(sql_str(u) for u in urls) + "]"
    rel_dir = model.lake_prefix + (f"/{pid}" if pid else "")
    s.lake.prepare_dir(rel_dir)
    written: list[FileInfo] = []
    try:
        # Number the rows in the model's order (else in the files' order) and cut n contiguous
        # ranges: every row keeps its place, and the new files follow one another in order.
        if model.config.order_by:
            order_sql = ", ".join(sql_ident(c) for c in model.config.order_by)
            base = f"SELECT *, row_number() OVER (ORDER BY {order_sql}) - 1 AS __n FROM {read_parquet_sql(urls, hive=False)}"
            cols = "* EXCLUDE (__n)"
        else:
            base = (f"SELECT *, row_number() OVER (ORDER BY list_position({url_list}, filename), file_row_number) - 1 "
                    f"AS __n FROM read_parquet({url_list}, hive_partitioning=false, filename=true, file_row_number=true)")
            cols = "* EXCLUDE (__n, filename, file_row_number)"
        per = math.ceil(ps.rows / n) if ps.rows else 0
        for i in range(n):
            rel = f"{rel_dir}/{new_file_name(i)}"  # names sort in row order, as the files do
            where = f"__n >= {i * per} AND __n < {(i + 1) * per}" if n > 1 else "true"
            sql = f"SELECT {cols} FROM ({base}) WHERE {where} ORDER BY __n"
            try:
                rows = int(s.con.execute(copy_sql(sql, s.lake.url(rel), s.config.storage)).fetchone()[0])
            except duckdb.Error as e:
                raise BuildError(f"{s.lake.url(rel)}: compaction of {model.relation} {pid}: "
                                 f"{str(e).splitlines()[0]}") from None
            verify = getattr(s.lake, "verify_write", None)
            info = verify(rel, rows) if verify is not None else s.lake.stat(rel)
            if info is None:
                raise StorageError(f"{s.lake.url(rel)}: compaction wrote {rows} rows but the file is missing")
            written.append(info)
        got = _footer_rows(s, written)
        if got != ps.rows:
            raise StorageError(f"{s.lake.url(rel_dir)}: compaction wrote {got} rows, the partition has {ps.rows}; "
                               "nothing was replaced")
    except BaseException:
        s.lake.delete([f.path for f in written])
        raise
    return written


def _footer_rows(s: Session, files: list[FileInfo]) -> int:
    urls = [s.lake.url(f.path) for f in files]
    row = s.con.execute(f"SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata({urls})").fetchone()
    return int(row[0])


def compact(config: Config, select: Iterable[str] | str | None = None, target_mb: float | None = None,
            udfs: bool = False) -> CompactReport:
    """Compact every partition of the selected models that has more (or bigger) files than the target calls for."""
    from daedalus.runner import Session

    started = time.monotonic()
    target = int((target_mb if target_mb is not None else config.compaction.target_mb) * MB)
    s = Session(config, udfs=udfs)
    report = CompactReport()
    try:
        with s.lake.lock("build"):  # one writer of the manifest at a time, builds included
            names = s.select(select, None)
            for name in names:
                ms = s.manifest.models.get(name)
                if ms is None:
                    continue
                for pid, ps in sorted(ms.partitions.items()):
                    if not ps.files or not needs_compaction(ps.files, target):
                        continue
                    new = _rewrite(s, name, pid, ps, target)
                    report.files_before += len(ps.files)
                    report.files_after += len(new)
                    report.rows += ps.rows
                    from daedalus.state import PartitionState

                    state = PartitionState(keys=dict(ps.keys), files=new, fingerprint=ps.fingerprint, rows=ps.rows,
                                           bytes=sum(f.size for f in new), inputs=dict(ps.inputs),
                                           built_at=ps.built_at, seconds=ps.seconds)
                    s.manifest.replace_partition(name, pid, state, ms.materialized, ms.layer)
                    s.manifest.save()  # the switch: atomic, one partition at a time
                    report.partitions += 1
                    report.rewritten.append((name, pid))
            if report.partitions:
                s._parts = {}
                s.purge_deletions(s.refresh_catalog())
    finally:
        s.close()
    report.seconds = time.monotonic() - started
    return report
