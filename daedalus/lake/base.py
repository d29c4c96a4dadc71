"""The lake's interface and its local backend: list, stat, delete, atomic write, URLs for DuckDB.

Paths handed to a Lake are relative to its root and use `/`; `url(rel)` is what DuckDB reads or
writes (an absolute local path, or an `s3://` URL). Backends (this module's LocalLake, lake/s3.py's
S3Lake) import this module only; `daedalus.lake.open_lake` picks one by URL scheme.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from daedalus.errors import StorageError
from daedalus.fsio import fsync_dir, raw_segments_root


@dataclass(frozen=True, order=True)
class FileInfo:
    """One file of the lake: its path relative to the root, size in bytes, mtime (ns) or etag."""

    path: str
    size: int
    mtime: int | str

    def as_list(self) -> list:
        return [self.path, self.size, self.mtime]


class Lake(Protocol):
    """What the build needs from a storage backend."""

    root: str

    def url(self, rel: str) -> str:
        """Where DuckDB reads or writes `rel` (absolute path or URL)."""

    def list(self, prefix: str) -> list[FileInfo]:
        """Every file under `prefix` (recursive), sorted by path; [] when the prefix does not exist."""

    def stat(self, rel: str) -> FileInfo | None:
        """The file's info, or None when it does not exist."""

    def exists(self, rel: str) -> bool: ...

    def read_bytes(self, rel: str) -> bytes | None:
        """The file's content, or None when it does not exist."""

    def write_atomic(self, rel: str, data: bytes) -> None:
        """Replace `rel` with `data` so a reader sees the old or the new content, never a mix."""

    def put_file(self, local_path: str | Path, rel: str) -> None:
        """Move a finished local file into place atomically (the catalog is built locally)."""

    def delete(self, rels: list[str]) -> None:
        """Delete files; a file already gone is not an error."""

    def rename(self, src: str, dst: str) -> None:
        """Move `src` to `dst`, replacing `dst` so that a reader opening `dst` gets the old or the
        new file, never neither (POSIX rename; on S3 a server-side copy, then a delete of `src`)."""

    def prepare_dir(self, rel: str) -> None:
        """Make sure a directory exists before DuckDB writes into it (no-op on object stores)."""

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """An exclusive lock held for the duration of a build."""

    def verify_write(self, rel: str, rows: int) -> FileInfo | None:
        """The file DuckDB's COPY just wrote at `rel` (reporting `rows` rows), checked as far as the
        backend must (object stores: it exists and its footer holds `rows`); None when it is missing."""

    def configure_connection(self, con: Any) -> None:
        """Prepare a DuckDB connection to read and write `url(...)` (S3: httpfs + the secret), like
        dbt-duckdb's plugins; every connection that reads the lake passes through here."""

    def connection_sql(self) -> list[str]:
        """The statements of configure_connection, for the duckdb shell's init file."""

    def raw_segments_root(self, local_root: str | None) -> Path:
        """Where the collector writes raw segments and `land` finds them (daedalus.fsio decides)."""


class LocalLake:
    """A lake on a local (or mounted) filesystem."""

    def __init__(self, root: str | Path) -> None:
        self.root = str(Path(root).expanduser().resolve())
        self._root = Path(self.root)

    def __repr__(self) -> str:
        return f"LocalLake({self.root!r})"

    def _path(self, rel: str) -> Path:
        return self._root / rel

    def url(self, rel: str) -> str:
        return str(self._path(rel))

    def list(self, prefix: str) -> list[FileInfo]:
        base = self._path(prefix)
        if not base.is_dir():
            return []
        out: list[FileInfo] = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in filenames:
                if name.startswith(".") or name.endswith(".tmp"):
                    continue  # temp files of writers still at work
                full = os.path.join(dirpath, name)
                try:
                    st = os.stat(full)
                except FileNotFoundError:
                    continue
                rel = os.path.relpath(full, self._root).replace(os.sep, "/")
                out.append(FileInfo(rel, st.st_size, st.st_mtime_ns))
        out.sort()
        return out

    def stat(self, rel: str) -> FileInfo | None:
        try:
            st = os.stat(self._path(rel))
        except FileNotFoundError:
            return None
        return FileInfo(rel, st.st_size, st.st_mtime_ns)

    def exists(self, rel: str) -> bool:
        return self._path(rel).exists()

    def read_bytes(self, rel: str) -> bytes | None:
        try:
            return self._path(rel).read_bytes()
        except FileNotFoundError:
            return None

    def write_atomic(self, rel: str, data: bytes) -> None:
        target = self._path(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException as e:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            if isinstance(e, OSError):  # a full disk: one line, the previous version kept
                why = e.strerror or e
                raise StorageError(f"{target}: cannot write: {why}; the previous version is kept") from None
            raise
        fsync_dir(target.parent)

    def put_file(self, local_path: str | Path, rel: str) -> None:
        target = self._path(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(local_path, target)
        fsync_dir(target.parent)

    def delete(self, rels: list[str]) -> None:
        for rel in rels:
            p = self._path(rel)
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
            # Drop directories left empty so `ls` of the lake stays readable.
            parent = p.parent
            while parent != self._root and parent.is_relative_to(self._root):
                try:
                    parent.rmdir()
                except OSError:
                    break
                parent = parent.parent

    def rename(self, src: str, dst: str) -> None:
        target = self._path(dst)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._path(src), target)
        fsync_dir(target.parent)

    def prepare_dir(self, rel: str) -> None:
        self._path(rel).mkdir(parents=True, exist_ok=True)

    def verify_write(self, rel: str, rows: int) -> FileInfo | None:
        return self.stat(rel)  # a local COPY's row count is DuckDB's own; the file is there or not

    def configure_connection(self, con: Any) -> None:
        # DuckDB's external file cache keeps what it read of each file in its buffer pool until
        # memory_limit evicts it: a local file is in the OS page cache already, so it only added to
        # the build's resident memory (a 24 h symbol-day at the Pi profile: −70 to −100 MB peak RSS
        # without it, and no slower; docs/benchmarks.md). S3 keeps it: there it saves requests.
        con.execute("SET enable_external_file_cache = false")

    def connection_sql(self) -> list[str]:
        return []

    def raw_segments_root(self, local_root: str | None) -> Path:
        return raw_segments_root(self.root, local_root)

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        with exclusive_lock(
            self._path(f"_state/{name}.lock"), "{path}: another build holds the lock; wait for it to finish"
        ):
            yield


@contextlib.contextmanager
def exclusive_lock(path: Path, busy: str) -> Iterator[None]:
    """An flock on `path` (the kernel releases it if the holder dies) that records our pid. `busy` is
    the one-line error when another process holds it; `{path}` and `{pid}` (the holder) are filled in."""
    import fcntl

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "a+")  # noqa: SIM115 (closed below, after the yield)
    except OSError as e:
        raise StorageError(f"{path}: cannot create the lock file: {e.strerror or e}") from None
    with f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = (f.read().strip() or "unknown").split()[0]
            raise StorageError(busy.format(path=path, pid=holder)) from None
        try:
            try:  # unbuffered: a write that failed leaves nothing for close() to flush again
                os.ftruncate(f.fileno(), 0)
                os.pwrite(f.fileno(), f"{os.getpid()} {time.time():.0f}\n".encode(), 0)
            except OSError as e:  # a full disk: say so before any work starts
                raise StorageError(f"{path}: cannot record the lock's holder: {e.strerror or e}") from None
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
