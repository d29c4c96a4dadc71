"""The lake on S3 (or any S3-compatible store): the `Lake` interface of lake/base.py over boto3.

DuckDB reads and writes the Parquet files itself through httpfs (`url()` hands it `s3://` URLs);
this class does everything around those files: list, stat, delete, the manifest and state JSON,
locks, and the verification of every file DuckDB wrote. Verification matters on S3 because an httpfs
write can report success without an object behind it (bad credentials on some servers, a proxy that
swallows the PUT): `verify_write` lists what was written and compares the row counts in the Parquet
footers (fetched with ranged GETs, through boto3, i.e. a second client) with what COPY reported.

S3 has no rename, so `write_atomic` is a single PUT (atomic per object: a reader sees the old or
the new object). Locks are objects created with a conditional PUT (`If-None-Match: *`); a lock left
by a dead process of this host is taken over, a lock of another host is reported with its owner.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daedalus import fsio
from daedalus.errors import StorageError
from daedalus.fsio import etag_matches, make_s3_client, split_s3_url
from daedalus.lake.base import FileInfo

if TYPE_CHECKING:
    from daedalus.config import Config

_HELD_LOCKS: set[str] = set()  # tokens of the locks this process holds (to spot its own stale ones)


def s3_client(config: Config | None) -> Any:
    """A boto3 client with the endpoint/region/url style of `config.s3`; credentials from the
    environment or the AWS chain (the same ones DuckDB's secret gets)."""
    if config is None:
        return make_s3_client()
    s3 = config.s3
    return make_s3_client(s3.endpoint, s3.region, s3.use_ssl, s3.url_style)


def describe_client_error(e: Exception) -> str:
    """One line for a boto3/botocore error: the S3 error code and message, or the connection error."""
    response = getattr(e, "response", None)
    if isinstance(response, dict) and "Error" in response:
        err = response["Error"]
        code = err.get("Code", "?")
        hint = ""
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "ExpiredToken"):
            hint = " (check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the AWS profile)"
        return f"{code}: {err.get('Message', '')}{hint}".strip()
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def _boto_errors() -> tuple[type[BaseException], ...]:
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    return (ClientError, BotoCoreError, Boto3Error)


def _is_missing(e: BaseException) -> bool:
    response = getattr(e, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return code in ("404", "NoSuchKey", "NotFound")


class _RangeFile(io.RawIOBase):
    """A read-only, seekable file over one S3 object via ranged GETs (for Parquet footers)."""

    def __init__(self, client: Any, bucket: str, key: str, size: int) -> None:
        self.client, self.bucket, self.key, self.size = client, bucket, key, size
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def read(self, n: int = -1) -> bytes:
        end = self.size if n is None or n < 0 else min(self.size, self.pos + n)
        if end <= self.pos:
            return b""
        body = self.client.get_object(Bucket=self.bucket, Key=self.key, Range=f"bytes={self.pos}-{end - 1}")
        data = body["Body"].read()
        self.pos += len(data)
        return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


def parquet_rows(client: Any, bucket: str, key: str, size: int) -> int:
    """Rows in the footer of a Parquet object (two small ranged GETs, never the whole file)."""
    import pyarrow.parquet as pq

    if size < 12:
        raise StorageError(f"s3://{bucket}/{key}: {size} bytes is not a Parquet file")
    f = _RangeFile(client, bucket, key, size)
    f.seek(-8, 2)
    tail = f.read(8)
    if tail[4:] != b"PAR1":
        raise StorageError(f"s3://{bucket}/{key}: not a Parquet file (no PAR1 footer)")
    footer_len = struct.unpack("<I", tail[:4])[0]
    f.seek(-(8 + footer_len), 2)
    footer = f.read(footer_len + 8)
    # A buffer that is the file's tail only: pyarrow needs just the footer to read metadata.
    meta = pq.read_metadata(io.BytesIO(b"PAR1" + footer)) if footer_len + 8 == len(footer) else None
    if meta is None:
        raise StorageError(f"s3://{bucket}/{key}: truncated Parquet footer")
    return int(meta.num_rows)


class S3Lake:
    """A lake under `s3://bucket/prefix`."""

    def __init__(self, root: str, config: Config | None = None, client: Any = None) -> None:
        self.root = root.rstrip("/")
        self.bucket, self.prefix = split_s3_url(self.root)
        self.config = config
        self.client = client if client is not None else s3_client(config)

    def __repr__(self) -> str:
        return f"S3Lake({self.root!r})"

    # -- paths -------------------------------------------------------------------------------

    def key(self, rel: str) -> str:
        rel = rel.strip("/")
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def rel(self, key: str) -> str:
        return key[len(self.prefix) + 1 :] if self.prefix else key

    def url(self, rel: str) -> str:
        return f"s3://{self.bucket}/{self.key(rel)}"

    def _fail(self, what: str, rel: str, e: BaseException) -> StorageError:
        return StorageError(f"{self.url(rel)}: cannot {what}: {describe_client_error(e)}")

    # -- the Lake interface ------------------------------------------------------------------

    def list(self, prefix: str) -> list[FileInfo]:
        key_prefix = (
            self.key(prefix).rstrip("/") + "/"
            if prefix.strip("/")
            else (f"{self.prefix}/" if self.prefix else "")
        )
        out: list[FileInfo] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=key_prefix
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    rel = self.rel(obj["Key"])
                    name = rel.rsplit("/", 1)[-1]
                    if name.startswith(".") or name.endswith(".tmp") or not name:
                        continue
                    out.append(FileInfo(rel, int(obj["Size"]), obj["ETag"].strip('"')))
        except _boto_errors() as e:
            raise self._fail("list", prefix, e) from None
        out.sort()
        return out

    def stat(self, rel: str) -> FileInfo | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key(rel))
        except _boto_errors() as e:
            if _is_missing(e):
                return None
            raise self._fail("stat", rel, e) from None
        return FileInfo(rel, int(head["ContentLength"]), head["ETag"].strip('"'))

    def exists(self, rel: str) -> bool:
        return self.stat(rel) is not None

    def read_bytes(self, rel: str) -> bytes | None:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.key(rel))["Body"].read()
        except _boto_errors() as e:
            if _is_missing(e):
                return None
            raise self._fail("read", rel, e) from None

    def write_atomic(self, rel: str, data: bytes) -> None:
        import hashlib

        md5 = hashlib.md5(data).hexdigest()
        try:
            put = self.client.put_object(Bucket=self.bucket, Key=self.key(rel), Body=data)
        except _boto_errors() as e:
            raise self._fail("write", rel, e) from None
        if put.get("ETag", "").strip('"') != md5:
            raise StorageError(f"{self.url(rel)}: written object's ETag does not match its MD5 {md5}")

    def put_file(self, local_path: str | Path, rel: str) -> None:
        path = Path(local_path)
        self.upload(path, rel)
        path.unlink()  # like os.replace: the local file is gone once its copy is verified

    def upload(self, path: Path, rel: str) -> FileInfo:
        """Upload a local file to `rel` and verify size + ETag (MD5, or multipart MD5 of our part size)."""
        from boto3.s3.transfer import TransferConfig

        etag = fsio.expected_etag(path)
        try:
            self.client.upload_file(
                str(path),
                self.bucket,
                self.key(rel),
                Config=TransferConfig(
                    multipart_threshold=fsio.PART_SIZE + 1, multipart_chunksize=fsio.PART_SIZE
                ),
            )
        except (*_boto_errors(), OSError) as e:
            raise self._fail(f"upload {path}", rel, e) from None
        info = self.stat(rel)
        if info is None or info.size != path.stat().st_size or str(info.mtime) != etag:
            raise StorageError(
                f"{self.url(rel)}: copy of {path} does not verify (size/ETag); re-run to retry"
            )
        return info

    def download(self, rel: str, target: Path, etag: str, size: int) -> None:
        """Download `rel` to a temp file beside `target`, verify it against the ETag, rename into place."""
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            self.client.download_file(self.bucket, self.key(rel), str(tmp))
        except (*_boto_errors(), OSError) as e:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise self._fail("download", rel, e) from None
        if not etag_matches(tmp, etag, size):
            tmp.unlink()
            raise StorageError(
                f"{self.url(rel)}: downloaded copy does not match the object's ETag; re-run to retry"
            )
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)

    def delete(self, rels: list[str]) -> None:
        for i in range(0, len(rels), 1000):
            chunk = rels[i : i + 1000]
            try:
                resp = self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": self.key(r)} for r in chunk], "Quiet": True},
                )
            except _boto_errors() as e:
                raise self._fail("delete", chunk[0], e) from None
            errors = [e for e in resp.get("Errors", []) if e.get("Code") != "NoSuchKey"]
            if errors:
                raise StorageError(
                    f"s3://{self.bucket}/{errors[0].get('Key')}: cannot delete: "
                    f"{errors[0].get('Code')}: {errors[0].get('Message')}"
                )

    def rename(self, src: str, dst: str) -> None:
        """A server-side copy (one PUT of `dst` as far as readers go: the old or the new object), then
        the delete of `src`. boto3's managed copy takes objects past the 5 GB single-copy limit."""
        try:
            self.client.copy({"Bucket": self.bucket, "Key": self.key(src)}, self.bucket, self.key(dst))
        except _boto_errors() as e:
            raise self._fail(f"copy {self.url(src)} to", dst, e) from None
        self.delete([src])

    def prepare_dir(self, rel: str) -> None:
        return None  # object stores have no directories

    def raw_segments_root(self, local_root: str | None) -> Path:
        return fsio.raw_segments_root(self.root, local_root)  # the local spool: segments never go to S3 first

    # -- DuckDB connections ------------------------------------------------------------------

    def connection_sql(self) -> list[str]:
        """LOAD httpfs (the wheel's file, no download) and the S3 secret (config.s3 + environment)."""
        from daedalus.config import Config
        from daedalus.lake.s3_duckdb import httpfs_extension_path, s3_secret_sql
        from daedalus.sqltext import sql_str

        config = self.config if self.config is not None else Config()
        return [f"LOAD {sql_str(str(httpfs_extension_path()))}", s3_secret_sql(config)]

    def configure_connection(self, con: Any) -> None:
        for statement in self.connection_sql():
            con.execute(statement)

    # -- verification of DuckDB's writes -----------------------------------------------------

    def verify_write(self, rel: str, rows: int) -> FileInfo:
        """The object DuckDB's COPY wrote at `rel` exists and its footer holds `rows` rows."""
        info = self.stat(rel)
        if info is None:
            raise StorageError(
                f"{self.url(rel)}: COPY reported {rows} rows written but the object does not "
                "exist (the write was lost: check credentials and the endpoint)"
            )
        try:
            found = parquet_rows(self.client, self.bucket, self.key(rel), info.size)
        except _boto_errors() as e:
            raise self._fail("verify", rel, e) from None
        if found != rows:
            raise StorageError(f"{self.url(rel)}: COPY reported {rows} rows but the object holds {found}")
        return info

    # -- locks -------------------------------------------------------------------------------

    def _lock_owner(self, rel: str) -> dict[str, Any] | None:
        raw = self.read_bytes(rel)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return {}

    def _stale(self, owner: dict[str, Any]) -> bool:
        """A lock of this host whose process is gone (or a lock of this process no longer held)."""
        import psutil

        if owner.get("host") != socket.gethostname():
            return False
        pid = int(owner.get("pid", -1))
        if pid == os.getpid():
            return owner.get("token") not in _HELD_LOCKS
        return not psutil.pid_exists(pid)

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        rel = f"_state/{name}.lock"
        token = uuid.uuid4().hex
        body = json.dumps(
            {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time(), "token": token}
        ).encode()
        for _ in range(2):
            try:
                self.client.put_object(Bucket=self.bucket, Key=self.key(rel), Body=body, IfNoneMatch="*")
                break
            except _boto_errors() as e:
                code = getattr(e, "response", {}).get("Error", {}).get("Code")
                if code not in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                    raise self._fail("take the lock", rel, e) from None
            owner = self._lock_owner(rel) or {}
            if owner and self._stale(owner):
                with contextlib.suppress(*_boto_errors()):
                    self.client.delete_object(Bucket=self.bucket, Key=self.key(rel))
                continue
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(owner.get("since", 0))))
            raise StorageError(
                f"{self.url(rel)}: held by pid {owner.get('pid')} on {owner.get('host')} since "
                f"{since} UTC; wait for it, or delete the object if that process is gone"
            )
        else:
            raise StorageError(f"{self.url(rel)}: cannot take the lock (contended)")
        _HELD_LOCKS.add(token)
        try:
            yield
        finally:
            _HELD_LOCKS.discard(token)
            # A release that fails (endpoint down) leaves a lock the next run of this host takes over.
            with contextlib.suppress(*_boto_errors()):
                self.client.delete_object(Bucket=self.bucket, Key=self.key(rel))
