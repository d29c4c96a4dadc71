"""Upload of closed `ready/` segments to S3 (boto3), verified before the local copy may go.

Verification: after the upload, HEAD the object and compare its size and ETag with what the local
file must produce (MD5 for a single PUT, MD5-of-part-MD5s + `-N` for a multipart upload with our
fixed part size). Only a verified segment may be deleted locally (`ingestion.delete_after_upload`).
Failures retry with capped exponential backoff; segments not yet verified are the upload backlog,
reported in stats and the health file. On start every ready/ segment is offered again — an object
already present with the right size and ETag is not re-sent — so a crash never loses an upload.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daedalus import fsio
from daedalus.errors import StorageError
from daedalus.fsio import make_s3_client, split_s3_url


@dataclass(slots=True)
class UploadResult:
    path: Path
    key: str
    size: int
    etag: str
    skipped: bool  # already present and verified
    deleted_local: bool


class S3Uploader:
    """Synchronous upload + verification of one file; `UploadQueue` runs it off the event loop."""

    def __init__(
        self,
        s3_root: str,
        local_root: str | Path,
        client: Any = None,
        delete_after_upload: bool = False,
        max_attempts: int = 5,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        self.bucket, self.prefix = split_s3_url(s3_root)
        self.local_root = Path(local_root)
        self.client = client if client is not None else make_s3_client()
        self.delete_after_upload = delete_after_upload
        self.max_attempts = max_attempts
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max

    def key_for(self, path: Path) -> str:
        rel = Path(path).resolve().relative_to(self.local_root.resolve()).as_posix()
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def _remote_matches(self, key: str, size: int, etag: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return head["ContentLength"] == size and head["ETag"].strip('"') == etag

    def upload(self, path: Path) -> UploadResult:
        """Upload (unless already there), verify size + ETag, optionally delete the local copy.

        Raises StorageError after `max_attempts` failed or unverifiable attempts."""
        from boto3.exceptions import Boto3Error
        from boto3.s3.transfer import TransferConfig
        from botocore.exceptions import BotoCoreError, ClientError

        path = Path(path)
        key = self.key_for(path)
        size = path.stat().st_size
        etag = fsio.expected_etag(path)
        transfer = TransferConfig(multipart_threshold=fsio.PART_SIZE + 1, multipart_chunksize=fsio.PART_SIZE)
        last_error = "unknown"
        for attempt in range(self.max_attempts):
            try:
                skipped = self._remote_matches(key, size, etag)
                if not skipped:
                    self.client.upload_file(str(path), self.bucket, key, Config=transfer)
                    if not self._remote_matches(key, size, etag):
                        raise StorageError(
                            f"s3://{self.bucket}/{key}: uploaded object does not match size/ETag"
                        )
                deleted = False
                if self.delete_after_upload:
                    path.unlink()
                    deleted = True
                return UploadResult(path, key, size, etag, skipped, deleted)
            except (ClientError, BotoCoreError, Boto3Error, StorageError, OSError) as e:
                last_error = f"{type(e).__name__}: {e}"
                if attempt + 1 < self.max_attempts:
                    delay = min(self.backoff_max, self.backoff_initial * 2**attempt)
                    time.sleep(random.uniform(0, delay))  # full jitter
        raise StorageError(
            f"s3://{self.bucket}/{key}: upload of {path.name} "
            f"failed after {self.max_attempts} attempts ({last_error})"
        )


class UploadQueue:
    """Background uploads: segments are offered as they close; failures go back into the backlog."""

    def __init__(self, uploader: S3Uploader, retry_after: float = 5.0) -> None:
        self.uploader = uploader
        self.retry_after = retry_after
        self._pending: deque[Path] = deque()
        self._wake = asyncio.Event()
        self.uploaded = 0
        self.failures = 0
        self.last_error: str | None = None
        self.results: list[UploadResult] = []

    def offer(self, path: Path) -> None:
        self._pending.append(Path(path))
        self._wake.set()

    @property
    def backlog(self) -> int:
        return len(self._pending)

    def backlog_by_stream(self) -> dict[str, int]:
        """Pending uploads per `source/channel` (a segment's path is .../{source}/{channel}/name)."""
        out: dict[str, int] = {}
        for p in list(self._pending):
            key = f"{p.parent.parent.name}/{p.parent.name}"
            out[key] = out.get(key, 0) + 1
        return out

    async def _one(self, path: Path) -> bool:
        try:
            result = await asyncio.to_thread(self.uploader.upload, path)
        except StorageError as e:
            self.failures += 1
            self.last_error = str(e)
            return False
        self.uploaded += 1
        self.results.append(result)
        if len(self.results) > 1000:
            del self.results[:500]  # bounded memory over months
        return True

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if not self._pending:
                self._wake.clear()
                waiter = asyncio.ensure_future(self._wake.wait())
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
                continue
            path = self._pending[0]
            if not path.exists():
                self._pending.popleft()
                continue
            if await self._one(path):
                self._pending.popleft()
            else:
                self._pending.rotate(-1)  # try the others, come back to this one later
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.retry_after)

    async def drain(self, attempts: int = 1) -> None:
        """Try every pending upload `attempts` times (at shutdown); what fails stays in ready/."""
        for _ in range(attempts):
            for _ in range(len(self._pending)):
                path = self._pending.popleft()
                if path.exists() and not await self._one(path):
                    self._pending.append(path)
