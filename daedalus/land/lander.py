"""`daedalus land` for any `storage.root`: a local lake lands in place; a lake on S3 lands through
the local spool (`ingestion.local_root`), then pushes the bronze files, verified, to the bucket.

Here and not in lake/s3.py: landing is the land layer's job, the S3 backend only stores files.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daedalus.fsio import is_local_root, raw_segments_root
from daedalus.land.landing import SEGMENT_SUFFIXES, LandReport, land, land_lock

if TYPE_CHECKING:
    from daedalus.config import Config
    from daedalus.lake.s3 import S3Lake


def land_any(config: Config, on_step: Any = None) -> LandReport:
    """`daedalus land` for any storage.root.

    Segments the collector uploaded to the bucket's `raw/ready/` (`ingestion.upload_to_s3`, maybe
    deleted locally by `delete_after_upload`) are first downloaded into the spool (verified by
    ETag) unless the spool has them; once landed, their bucket copies are deleted as well.

    With the lake on S3, raw segments spool locally (the collector writes them under
    `ingestion.local_root`, see collector/pipeline.py): `land` lands them into bronze under that
    local root exactly as for a local lake (claim, write, verify, retire), then every local bronze
    file is uploaded to the same path in the bucket, verified by size + ETag, and only then removed
    locally. Bronze file names derive from the segment, so a crash anywhere is repaired by the next
    run (leftover local bronze files are uploaded again, overwriting the same keys): no row is
    landed twice and none is lost.
    """
    if is_local_root(config.storage.root):
        return land(config, on_step)
    root = raw_segments_root(config.storage.root, config.ingestion.local_root).resolve()
    local_cfg = config.model_copy(update={"storage": config.storage.model_copy(update={"root": str(root)})})
    with land_lock(root):  # pull, land and push: one lander per spool at a time
        return _land_s3(config, local_cfg, root, on_step)


def _land_s3(config: Config, local_cfg: Config, root: Path, on_step: Any) -> LandReport:
    from daedalus.lake.s3 import S3Lake  # boto3: only for a lake on S3
    from daedalus.lake.sync import push_files

    lake = S3Lake(config.storage.root, config)
    uploaded = _pull_uploaded_segments(lake, root)
    report = land(local_cfg, on_step, lock=False)
    pending = (
        sorted(
            p.relative_to(root).as_posix()
            for p in (root / "bronze").rglob("*.parquet")
            if not p.name.startswith(".")
        )
        if (root / "bronze").is_dir()
        else []
    )
    push_files(lake, root, pending, move=True)
    # The bucket's copies of segments now landed (or quarantined) are retired too; a segment still
    # waiting in the spool's ready/ or processing/ (an error this run) keeps its copy.
    waiting = [
        root / "raw" / state / rel.split("/", 2)[2] for rel in uploaded for state in ("ready", "processing")
    ]
    waiting_names = {p.relative_to(root).as_posix().split("/", 2)[2] for p in waiting if p.exists()}
    lake.delete([rel for rel in uploaded if rel.split("/", 2)[2] not in waiting_names])
    for rel in pending:
        m = re.match(r"bronze/([^/]+)/exchange=([^/]+)/date=([^/]+)/", rel)
        if m:
            report.partitions.add((m.group(1), m.group(2), m.group(3)))
    return report


def _pull_uploaded_segments(lake: S3Lake, spool: Path) -> list[str]:
    """Download `raw/ready/` segments of the bucket that the spool lacks; returns every key listed.

    Re-landing a segment is harmless (its bronze file names derive from the segment and are
    overwritten with the same rows), so a crash between download, land and delete loses nothing."""
    listed = [
        f
        for f in lake.list("raw/ready")
        if f.path.rsplit("/", 1)[-1].startswith("segment_") and f.path.endswith(SEGMENT_SUFFIXES)
    ]
    for f in listed:
        tail = f.path.split("/", 2)[2]  # {source}/{channel}/segment_*.parquet
        local = [spool / "raw" / state / tail for state in ("ready", "processing", "archive", "quarantine")]
        if not any(p.exists() for p in local):
            lake.download(f.path, local[0], str(f.mtime), f.size)
    return [f.path for f in listed]
