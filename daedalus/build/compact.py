"""`daedalus compact`: bring partitions written by older versions to the one-file layout.

A partition is one file, `data.parquet` (daedalus/build/publish.py: the only layout a glob reader sees
whole). Builds write it that way; partitions of older lakes may still hold several `part-<uuid>`
files. Compaction rewrites each such partition into one staged file (rows and their order
unchanged: the model's `order_by` when it has one, else the files' order), checks the footer rows
against the manifest, renames it into place, records it and moves the old files to `_trash/` — the
same publish step as a build. The partition keeps its fingerprint, so it is not rebuilt, while models
reading it are rebuilt by the next build (same rows). Files are no longer split to
`compaction.target_mb` (kept in the config so older files load): several files per partition is
exactly what a glob reader cannot see atomically.

Only partitions the manifest holds (silver, gold) are compacted: bronze is never rewritten.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from daedalus.build.materializations.base import copy_sql
from daedalus.errors import BuildError, StorageError
from daedalus.lake import FileInfo
from daedalus.sqltext import read_parquet_sql, sql_ident, sql_str

if TYPE_CHECKING:
    from daedalus.build.session import Session
    from daedalus.config import Config
    from daedalus.lake.manifest import PartitionState


@dataclass
class CompactReport:
    partitions: int = 0  # partitions rewritten
    files_before: int = 0
    files_after: int = 0
    rows: int = 0
    rewritten: list[tuple[str, str]] = field(default_factory=list)  # (model, pid)
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"compacted {self.partitions} partitions: {self.files_before} files → {self.files_after} "
            f"({self.rows} rows) in {self.seconds:.2f}s"
        )


def needs_compaction(files: list[FileInfo]) -> bool:
    """Anything but exactly one `data.parquet` (the layout of older versions)."""
    from daedalus.build.layout import DATA_FILE

    return len(files) != 1 or files[0].path.rsplit("/", 1)[-1] != DATA_FILE


def _rewrite(s: Session, model_name: str, pid: str, ps: PartitionState) -> FileInfo:
    """Write the partition's rows into one staged file; returns it (verified) or raises, leaving none."""
    import duckdb

    from daedalus.build.layout import staged_path

    model = s.project.models[model_name]
    urls = [s.lake.url(f.path) for f in ps.files]
    url_list = "[" + ", ".join(sql_str(u) for u in urls) + "]"
    rel = staged_path(s.staging, model, pid)
    s.lake.prepare_dir(rel.rsplit("/", 1)[0])
    if model.config.order_by:
        order_sql = ", ".join(sql_ident(c) for c in model.config.order_by)
        sql = f"SELECT * FROM {read_parquet_sql(urls, hive=False)} ORDER BY {order_sql}"
    else:
        sql = (
            f"SELECT * EXCLUDE (filename, file_row_number) FROM read_parquet({url_list}, "
            "hive_partitioning=false, union_by_name=true, filename=true, file_row_number=true) "
            f"ORDER BY list_position({url_list}, filename), file_row_number"
        )
    try:
        try:
            rows = int(s.con.execute(copy_sql(sql, s.lake.url(rel), s.config.storage)).fetchone()[0])
        except duckdb.Error as e:
            from daedalus.duck import storage_error

            storage = storage_error(
                s.config, str(e), f"{s.lake.url(rel)}: compaction of {model.relation} {pid}"
            )
            if storage is not None:
                raise storage from None
            raise BuildError(
                f"{s.lake.url(rel)}: compaction of {model.relation} {pid}: {str(e).splitlines()[0]}"
            ) from None
        info = s.lake.verify_write(rel, rows)
        if info is None:
            raise StorageError(f"{s.lake.url(rel)}: compaction wrote {rows} rows but the file is missing")
        got = _footer_rows(s, [info])
        if got != ps.rows:
            raise StorageError(
                f"{s.lake.url(rel)}: compaction wrote {got} rows, the partition has {ps.rows}; "
                "nothing was replaced"
            )
    except BaseException:
        s.lake.delete([rel])
        raise
    return info


def _footer_rows(s: Session, files: list[FileInfo]) -> int:
    urls = [s.lake.url(f.path) for f in files]
    row = s.con.execute(f"SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata({urls})").fetchone()
    return int(row[0])


def compact(config: Config, select: Iterable[str] | str | None = None, udfs: bool = False) -> CompactReport:
    """Rewrite every partition of the selected models that is not one `data.parquet` into one."""
    from daedalus.build.catalog_views import refresh_catalog
    from daedalus.build.publish import move_into_place, retire
    from daedalus.build.session import Session
    from daedalus.lake.manifest import PartitionState

    started = time.monotonic()
    s = Session(config, udfs=udfs)
    report = CompactReport()
    try:
        with s.lake.lock("build"):  # one writer of the manifest at a time, builds included
            for name in s.select(select, None):
                ms = s.manifest.models.get(name)
                if ms is None:
                    continue
                for pid, ps in sorted(ms.partitions.items()):
                    if not ps.files or not needs_compaction(ps.files):
                        continue
                    state = PartitionState(
                        keys=dict(ps.keys),
                        files=[_rewrite(s, name, pid, ps)],
                        fingerprint=ps.fingerprint,
                        rows=ps.rows,
                        bytes=0,
                        inputs=dict(ps.inputs),
                        built_at=ps.built_at,
                        seconds=ps.seconds,
                    )
                    report.files_before += len(ps.files)
                    move_into_place(s.lake, state)  # the switch for glob readers
                    state.bytes = sum(f.size for f in state.files)
                    s.manifest.replace_partition(name, pid, state, ms.materialized, ms.layer)
                    s.manifest.save()  # the switch for the manifest
                    retire(s.lake, s.manifest)  # the old files leave the folder
                    report.files_after += 1
                    report.rows += ps.rows
                    report.partitions += 1
                    report.rewritten.append((name, pid))
            if report.partitions:
                s._parts = {}
                s.purge_deletions(refresh_catalog(s))
    finally:
        s.close()
    report.seconds = time.monotonic() - started
    return report
