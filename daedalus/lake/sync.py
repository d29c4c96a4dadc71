"""`daedalus sync push|pull`: copy lake files between a local root and S3 with boto3.

- parallel: a thread pool of transfers (boto3 clients are thread-safe);
- verified: a copy counts only when its size and MD5/ETag match the source (single PUT: the MD5;
  multipart: MD5 of the part MD5s + `-N`, with our fixed part size, see daedalus/fsio.py);
- resumable: before copying, the destination is listed once; a file whose copy is already there
  with the same size and ETag is skipped, so an interrupted sync re-run sends only what is missing;
- never deletes a source before its copy is verified (`--move` deletes each source right after
  its own verification, nothing else is ever deleted).

Silver and gold are copied as the manifest lists them (not replaced files awaiting deletion), and
`_state/manifest.json` is copied last, so the destination's readers see complete partitions.
Downloads go to a temp file beside the target, are verified, then renamed into place.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from daedalus.errors import ConfigError, StorageError
from daedalus.fsio import etag_matches, expected_etag, is_local_root, raw_segments_root, root_scheme

if TYPE_CHECKING:
    from daedalus.config import Config
    from daedalus.lake.s3 import S3Lake

LAYERS = ("bronze", "silver", "gold")
MANIFEST = "_state/manifest.json"
KILL_ENV = "DAEDALUS_TEST_SYNC_KILL"
"""Test hook: SIGKILL the sync after this many verified copies (simulates an interrupt)."""
_DATE = re.compile(r"date=(\d{4}-\d{2}-\d{2})")


@dataclass
class SyncReport:
    direction: str
    copied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already present and verified
    deleted_sources: list[str] = field(default_factory=list)
    bytes: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"{self.direction}: {len(self.copied)} copied ({self.bytes} bytes), {len(self.skipped)} already "
            f"verified"
            + (f", {len(self.deleted_sources)} sources deleted" if self.deleted_sources else "")
            + f" in {self.seconds:.2f}s"
        )


def _date_ok(rel: str, since: str | None) -> bool:
    if since is None:
        return True
    m = _DATE.search(rel)
    return m is None or m.group(1) >= since


def _selected(layers: list[str] | None) -> list[str]:
    chosen = list(layers or LAYERS)
    bad = [x for x in chosen if x not in LAYERS]
    if bad:
        raise ConfigError(f"--layer: unknown layer {bad[0]!r} (allowed: {', '.join(LAYERS)})")
    return chosen


def _manifest_files(raw: bytes | None) -> set[str]:
    if raw is None:
        return set()
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        raise StorageError(
            f"{MANIFEST}: corrupt manifest; cannot tell which silver/gold files are current"
        ) from None
    return {
        f[0]
        for m in data.get("models", {}).values()
        for p in m.get("partitions", {}).values()
        for f in p.get("files", [])
    }


class _Killer:
    """The test hook of KILL_ENV: counts verified copies across threads."""

    def __init__(self) -> None:
        self.after = int(os.environ.get(KILL_ENV, "0") or 0)
        self.count = 0
        self.lock = threading.Lock()

    def tick(self) -> None:
        if not self.after:
            return
        with self.lock:
            self.count += 1
            if self.count >= self.after:
                os.kill(os.getpid(), signal.SIGKILL)


def resolve_ends(config: Config, remote: str | None, local: str | None) -> tuple[Path, S3Lake]:
    """(local root, remote S3 lake): the lake root when it is local, else ingestion.local_root."""
    from daedalus.lake.s3 import S3Lake

    root = config.storage.root
    on_s3 = root_scheme(root) == "s3"
    remote = remote or (root if on_s3 else None)
    if not local and (is_local_root(root) or config.ingestion.local_root):
        local = str(raw_segments_root(root, config.ingestion.local_root))  # the spool `collect` fills
    if not remote or not remote.startswith("s3://"):
        raise ConfigError("sync: no S3 side; pass --remote s3://bucket/prefix (or set storage.root to it)")
    if not local:
        raise ConfigError(
            "sync: no local side; set ingestion.local_root (storage.root is on S3) or pass --local"
        )
    return Path(local).expanduser().resolve(), S3Lake(remote, config)


def push_files(
    lake: S3Lake,
    local_root: Path,
    rels: list[str],
    workers: int = 8,
    move: bool = False,
    on_copied: Callable[[str], None] | None = None,
) -> SyncReport:
    """Upload local files (paths relative to `local_root`) to the same paths under the lake,
    skipping verified copies; `move` deletes each local file after its copy is verified."""
    report = SyncReport("push")
    if not rels:
        return report
    prefixes = sorted({r.split("/", 1)[0] for r in rels})
    remote = {f.path: f for p in prefixes for f in lake.list(p)}
    killer = _Killer()

    def one(rel: str) -> tuple[str, bool, int]:
        path = local_root / rel
        have = remote.get(rel)
        size = path.stat().st_size
        if have is not None and have.size == size and str(have.mtime) == expected_etag(path):
            copied = False
        else:
            lake.upload(path, rel)
            copied = True
        if move:
            path.unlink()
        killer.tick()
        if on_copied is not None:
            on_copied(rel)
        return rel, copied, size

    _run_pool(one, rels, workers, report)
    if move:
        report.deleted_sources = list(rels)
    return report


def pull_files(
    lake: S3Lake, local_root: Path, rels: list[str], workers: int = 8, move: bool = False
) -> SyncReport:
    """Download objects to the same relative paths under `local_root`, verified before the rename."""
    report = SyncReport("pull")
    remote = {f.path: f for p in sorted({r.split("/", 1)[0] for r in rels}) for f in lake.list(p)}
    killer = _Killer()

    def one(rel: str) -> tuple[str, bool, int]:
        info = remote[rel]
        target = local_root / rel
        copied = False
        if not (target.exists() and etag_matches(target, str(info.mtime), info.size)):
            lake.download(rel, target, str(info.mtime), info.size)
            copied = True
        if move:
            lake.delete([rel])
        killer.tick()
        return rel, copied, info.size

    _run_pool(one, [r for r in rels if r in remote], workers, report)
    if move:
        report.deleted_sources = [r for r in rels if r in remote]
    return report


def _run_pool(
    one: Callable[[str], tuple[str, bool, int]], rels: list[str], workers: int, report: SyncReport
) -> None:
    errors: list[str] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(one, r) for r in rels]
        for fut in as_completed(futures):
            try:
                rel, copied, size = fut.result()
            except (StorageError, OSError) as e:
                errors.append(str(e))
                continue
            (report.copied if copied else report.skipped).append(rel)
            report.bytes += size if copied else 0
    if errors:
        raise StorageError(f"{len(errors)} of {len(rels)} copies failed (re-run to resume): {errors[0]}")


def _local_files(local_root: Path, layer: str) -> list[str]:
    base = local_root / layer
    out = []
    if base.is_dir():
        for p in base.rglob("*.parquet"):
            if not p.name.startswith("."):
                out.append(p.relative_to(local_root).as_posix())
    return sorted(out)


def sync(
    config: Config,
    direction: str,
    layers: list[str] | None = None,
    since: str | dt.date | None = None,
    remote: str | None = None,
    local: str | None = None,
    workers: int = 8,
    move: bool = False,
) -> SyncReport:
    """Copy the chosen layers (default all) from the local lake to S3 (`push`) or back (`pull`)."""
    import time

    started = time.monotonic()
    if direction not in ("push", "pull"):
        raise ConfigError(f"sync: unknown direction {direction!r} (allowed: push, pull)")
    since_s = None
    if since:
        try:
            since_s = dt.date.fromisoformat(str(since)).isoformat()
        except ValueError:
            raise ConfigError(f"--since: {since!r} is not a date (YYYY-MM-DD)") from None
    chosen = _selected(layers)
    local_root, lake = resolve_ends(config, remote, local)
    if direction == "push":
        manifest_raw = (local_root / MANIFEST).read_bytes() if (local_root / MANIFEST).exists() else None
        current = _manifest_files(manifest_raw)
        rels: list[str] = []
        for layer in chosen:
            files = _local_files(local_root, layer)
            if layer != "bronze":
                files = [f for f in files if f in current]  # replaced files are not part of the lake
            rels.extend(f for f in files if _date_ok(f, since_s))
        report = push_files(
            lake, local_root, rels, workers, move=move and "bronze" in chosen and chosen == ["bronze"]
        )
        if manifest_raw is not None and any(x != "bronze" for x in chosen):
            lake.write_atomic(MANIFEST, manifest_raw)  # last: it names only files already verified there
    else:
        current = _manifest_files(lake.read_bytes(MANIFEST))
        rels = []
        for layer in chosen:
            files = [f.path for f in lake.list(layer) if f.path.endswith(".parquet")]
            if layer != "bronze":
                files = [f for f in files if f in current]
            rels.extend(f for f in files if _date_ok(f, since_s))
        report = pull_files(lake, local_root, rels, workers, move=move and chosen == ["bronze"])
        raw = lake.read_bytes(MANIFEST)
        if raw is not None and any(x != "bronze" for x in chosen):
            from daedalus.lake.base import LocalLake

            LocalLake(local_root).write_atomic(MANIFEST, raw)
    report.seconds = time.monotonic() - started
    return report
