"""How a build's files reach the lake so that every reader sees a partition whole: before or after.

Readers come in three kinds: the catalog (views over the model folders), a connection held for
hours by a BI pool, and engines that glob the folders themselves (DuckDB `read_parquet('…/**')`,
Polars, Spark). The only multi-reader-safe step a filesystem offers is the rename of one file over
another: a reader that opens the path gets the old inode or the new one, and a reader that opened the
old one keeps reading it. A set of files cannot be swapped at once (a glob lists a folder, then opens
its files). So the layout is:

    <layer>/<model>/<partition>/data.parquet        a partition is exactly one file, with a stable name
    _staging/<batch>/<layer>/<model>/<partition>/…  where builds write (outside every model folder)
    _trash/<batch>/<original path>                  files taken out of the model folders, deleted
                                                    after storage.retain_replaced_minutes

A build writes a partition into `_staging/` (time slices streamed into one file there), and a
model's partitions are *published* together once the last one is written: each staged file is
renamed over its partition's `data.parquet`. On S3, the "rename" is a server-side copy over the key
(one object replaced: a reader gets the old or the new object; DuckDB's httpfs fails a read whose
object changed mid-read with an ETag error instead of mixing) and a delete of the staged copy.

Files that leave a model folder without being replaced in place — partitions written by older
versions (`part-<uuid>.parquet`, `symbol=BTC-USDT` folders), partitions a changed `partition_by`
drops — are moved to `_trash/` when the new version is published and deleted once the grace period
has passed. Nothing a reader can name is ever deleted: catalog views glob the folders (daedalus/
catalog_paths.py), so neither a held connection nor a grace period of 0 can meet a missing file.

Fingerprints do not see the staging prefix (`unstaged`, `normalize_sql`): a partition compiled
against a staged input (the previous date of a carry_state series, a Dask task's upstream) has the
same fingerprint as when its input is published.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

from daedalus.build.layout import STAGING, STAGING_MAX_AGE_S, TRASH, new_batch
from daedalus.lake import FileInfo
from daedalus.lake.manifest import STAGED, unstaged

if TYPE_CHECKING:
    from daedalus.lake import Lake
    from daedalus.lake.manifest import Manifest, PartitionState


def normalize_sql(sql: str) -> str:
    """Compiled SQL with staged input URLs spelled as their published URLs (for fingerprints)."""
    return STAGED.sub("", sql)


# -- publishing ---------------------------------------------------------------------------------


def move_into_place(lake: Lake, state: PartitionState) -> None:
    """Rename the partition's staged file over its published path; `state.files` then names it.
    The FileInfo keeps the written file's size and mtime/ETag: the same content, so fingerprints
    computed against the staged file stay valid."""
    files: list[FileInfo] = []
    for f in state.files:
        dst = unstaged(f.path)
        if dst != f.path:
            lake.rename(f.path, dst)
        files.append(FileInfo(dst, f.size, f.mtime))
    state.files = files


def publish_model(lake: Lake, m: Manifest, name: str) -> list[FileInfo]:
    """Publish every staged partition of `name` (renames), record them in the manifest (saved), then
    take the files they replace out of the model folders. Returns the published files (the caller
    forgets its registry of the model's partitions: ref() reads the published files from now on)."""
    staged = m.staged(name)
    for state in staged.values():
        move_into_place(lake, state)
    m.publish(name)
    m.save()  # before anything leaves the folders: a killed build never leaves a manifest naming trash
    retire(lake, m)
    return [f for state in staged.values() for f in state.files]


def retire(lake: Lake, manifest: Manifest) -> list[str]:
    """Move the manifest's replaced files out of the model folders now (staged leftovers are deleted,
    published ones go to `_trash/`); saves the manifest when something moved."""
    used = manifest.referenced()
    paths = [d["path"] for d in manifest.pending_deletions if d["path"] not in used]
    if not paths:
        return []
    lake.delete([p for p in paths if p.startswith(f"{STAGING}/")])
    batch = f"{TRASH}/{new_batch()}"
    for p in paths:
        if p.startswith((f"{STAGING}/", f"{TRASH}/")):
            continue
        with contextlib.suppress(FileNotFoundError):  # already gone (a killed earlier retire)
            if lake.exists(p):
                lake.rename(p, f"{batch}/{p}")
    manifest.forget_deletions(paths)
    manifest.save()
    return paths


def _batches_older_than(lake: Lake, area: str, seconds: float, now: float) -> list[str]:
    out = []
    for f in lake.list(area):
        batch = f.path.split("/", 2)[1] if f.path.count("/") >= 2 else ""
        try:
            born = int(batch.split("-", 1)[0])
        except ValueError:
            continue
        if now - born >= seconds:
            out.append(f.path)
    return out


def purge(lake: Lake, retain_minutes: float, now: float | None = None) -> list[str]:
    """Delete trash older than the grace period and staging batches of builds long dead."""
    now = time.time() if now is None else now
    due = _batches_older_than(lake, TRASH, retain_minutes * 60, now)
    due += _batches_older_than(lake, STAGING, STAGING_MAX_AGE_S, now)
    if due:
        lake.delete(due)
    return due


OWNER = ".owner"  # `<host> <pid>` of the build writing into a staging batch (local lakes)


def claim_staging(lake: Lake, staging: str) -> None:
    """Mark a local staging batch with its owner, so a later build can tell a killed build's batch
    from a running one's whatever its age (prune_staging)."""
    import os
    import socket
    from pathlib import Path

    base = lake.url(staging)
    if "://" in base:
        return
    Path(base).mkdir(parents=True, exist_ok=True)
    Path(base, OWNER).write_text(f"{socket.gethostname()} {os.getpid()}\n")


def _owner_dead(batch: object) -> bool:
    """True when the batch's owner ran on this host and its process is gone."""
    import os
    import socket
    from pathlib import Path

    try:
        host, pid = Path(str(batch), OWNER).read_text().split()
    except (OSError, ValueError):
        return False
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def prune_staging(lake: Lake, own: str | None = None, now: float | None = None, release: bool = False) -> int:
    """Remove the empty folders a build leaves under `_staging/` (publishing renames the files out of
    them; 4 builds left 780 folders, issue 24): all of this session's batch `own`, those of a batch
    whose owner (claim_staging) died on this host (a killed build), and those of batches older than
    STAGING_MAX_AGE_S (as `purge`; an unlocked shard elsewhere may be writing into a younger one).
    `release`: this session is over, its own claim goes too. Local lakes only (object stores have
    no folders). Returns how many folders went."""
    import os
    from pathlib import Path

    base = lake.url(STAGING)
    if "://" in base or not os.path.isdir(base):
        return 0
    now = time.time() if now is None else now
    removed = 0
    for batch in Path(base).iterdir():
        try:
            born = int(batch.name.split("-", 1)[0])
        except ValueError:
            continue
        mine = f"{STAGING}/{batch.name}" == own
        if not mine and now - born < STAGING_MAX_AGE_S and not _owner_dead(batch):
            continue
        if release or not mine:
            with contextlib.suppress(OSError):
                (batch / OWNER).unlink()
        for folder, _dirs, _files in os.walk(batch, topdown=False):
            try:
                os.rmdir(folder)  # only if empty: files a build still publishes stay
                removed += 1
            except OSError:
                continue
    with contextlib.suppress(OSError):
        os.rmdir(base)
    return removed
