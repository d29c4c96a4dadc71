"""IO helpers shared by the collector and the lake/land/build side: durable directory entries, the
S3 client and ETag rules, and pyarrow without its pandas probe.

A leaf on purpose (stdlib at import; pyarrow and boto3 only inside the functions that need them):
the collector may import it (tests/unit/test_layering.py allows it) and so may the lake, so neither
side imports the other for these few lines, and `import daedalus.lake` stays free of pyarrow.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
from pathlib import Path
from typing import Any

from daedalus.errors import ConfigError, StorageError

# --- local files ---------------------------------------------------------------------------------


def fsync_dir(path: Path) -> None:
    """Make a rename/creation in `path` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- lake roots ----------------------------------------------------------------------------------
# The one rule for "is this lake on this machine" and "where do raw segments live": the collector
# (which may not import daedalus.lake) and the Lake backends (lake/base.py, lake/s3.py) both ask here.


def root_scheme(root: str) -> str:
    """'file' for a local path or a file:// URL, else the URL scheme of `root` ('s3', ...)."""
    return root.split("://", 1)[0] if "://" in root else "file"


def is_local_root(root: str) -> bool:
    """True when the lake root is a local (or mounted) directory the collector can write into."""
    return root_scheme(root) == "file"


def local_path(root: str) -> Path:
    """A local root (path or file:// URL) as a Path, `~` expanded."""
    return Path(root.removeprefix("file://")).expanduser()


def raw_segments_root(storage_root: str, local_root: str | None) -> Path:
    """Where raw segments are written, landed from and looked at: the lake root when it is local,
    else `ingestion.local_root` (a local spool; required, one ConfigError line when it is missing)."""
    if is_local_root(storage_root):
        return local_path(storage_root)
    if not local_root:
        raise ConfigError(
            f"ingestion.local_root: required when storage.root is not local ({storage_root}): the local "
            "spool where `collect` writes raw segments and `land` lands them from"
        )
    return Path(local_root).expanduser()


# --- S3 objects ----------------------------------------------------------------------------------

PART_SIZE = 64 * 1024 * 1024  # fixed, so the expected multipart ETag can be computed locally


def split_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/prefix` → ('bucket', 'prefix') without slashes at either end of the prefix."""
    if root_scheme(url) != "s3":
        raise StorageError(f"{url}: not an s3:// URL (expected s3://bucket/prefix)")
    bucket, _, prefix = url[5:].partition("/")
    if not bucket:
        raise StorageError(f"{url}: no bucket in the S3 URL (expected s3://bucket/prefix)")
    return bucket, prefix.strip("/")


def expected_etag(path: Path, part_size: int | None = None) -> str:
    """The ETag S3 gives this file when uploaded our way: its MD5, or for a multipart upload of
    `part_size` (default PART_SIZE) parts the MD5 of the part MD5s + `-N`."""
    part_size = part_size or PART_SIZE
    size = path.stat().st_size
    with open(path, "rb") as f:
        if size <= part_size:
            return hashlib.md5(f.read()).hexdigest()
        digests = []
        while chunk := f.read(part_size):
            digests.append(hashlib.md5(chunk).digest())
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


def etag_matches(path: Path, etag: str, size: int) -> bool:
    """Whether a local file is the object with this ETag and size (multipart part size inferred)."""
    if path.stat().st_size != size:
        return False
    etag = etag.strip('"')
    if "-" not in etag:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "md5").hexdigest() == etag
    parts = int(etag.rsplit("-", 1)[1])
    mb = 1024 * 1024
    even = math.ceil(size / parts)
    guesses = {8 * mb, 16 * mb, 64 * mb, even, math.ceil(even / mb) * mb}
    return any(math.ceil(size / g) == parts and expected_etag(path, g) == etag for g in guesses if g > 0)


def make_s3_client(
    endpoint: str | None = None, region: str = "us-east-1", use_ssl: bool = True, url_style: str = "path"
) -> Any:
    """A boto3 S3 client; credentials from the environment / AWS chain, endpoint from config or
    AWS_ENDPOINT_URL(_S3)."""
    import boto3
    from botocore.config import Config as BotoConfig

    endpoint_url = None
    if endpoint:
        endpoint_url = endpoint if "://" in endpoint else f"{'https' if use_ssl else 'http'}://{endpoint}"
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        config=BotoConfig(
            s3={"addressing_style": "path" if url_style == "path" else "virtual"},
            retries={"max_attempts": 2, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
        ),
    )


# --- pyarrow -------------------------------------------------------------------------------------


def use_system_arrow_pool() -> None:
    """Have pyarrow allocate with the C library's malloc, not its default mimalloc (a build's process).

    mimalloc keeps what a build frees in its per-thread heaps, so a build's resident memory only grows
    from model to model: at the Pi profile the system allocator measured 60–130 MB less peak RSS for
    the same full build at the same CPU time (`daedalus bench build --updates`). pyarrow picks its pool
    once, when it is imported (ARROW_DEFAULT_MEMORY_POOL), so this must run before that; a pool the
    user chose is kept. The collector keeps mimalloc (its many small batches; it is measured apart).
    """
    if "pyarrow" not in sys.modules:
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")


DUCKDB_ALLOCATOR_CONF = "muzzy_decay_ms:0"


def tune_duckdb_allocator() -> None:
    """Have DuckDB's jemalloc hand freed pages straight back to the system (a build's process).

    DuckDB's jemalloc keeps freed pages 1 s ("dirty"), then marks them MADV_FREE ("muzzy") for
    another second before returning them. A MADV_FREE page stays in the process's RSS until the kernel
    is short of memory, so every page a slice's sorts and joins freed counted for ~2 s, over the next
    slice's. With muzzy_decay_ms 0 the dirty pages are returned outright after their second (Pi
    profile, 24 h updates day, full build: silver.orderbook's peak 435 / 446 → 424-432 MB, +0.3 s of
    system time; a dirty decay of 250 ms too cost +1.5 s for no further gain, docs/benchmarks.md).
    jemalloc reads DUCKDB_JE_MALLOC_CONF once, when DuckDB is loaded, so this must run before that;
    a value the user set is kept.
    """
    if "duckdb" not in sys.modules:
        os.environ.setdefault("DUCKDB_JE_MALLOC_CONF", DUCKDB_ALLOCATOR_CONF)


M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8  # glibc's mallopt() parameters (malloc.h)
MMAP_THRESHOLD = 1024 * 1024
ARENA_MAX = 2


def fix_malloc_thresholds() -> None:
    """Keep glibc's malloc from holding a build's large freed buffers (a build's process, as
    `use_system_arrow_pool`, which routes Arrow's buffers through this malloc).

    glibc serves a block of ≥ 128 KiB with its own mmap, unmapped when freed, but raises that threshold
    (up to 32 MiB) each time such a block is freed: after the first slices, Arrow batches and kernel
    arrays come from the heap, and what they leave free there stays resident. A fixed threshold turns
    the raising off; at 1 MiB, not glibc's 128 KiB, the many mid-sized arrays of the sequential
    kernels stay on the heap (at 128 KiB, gold.orderbook_seq spent +3.4 s of system time mapping and
    unmapping them, for the same peak). Two arenas instead of eight per core: the Python relations run
    on DuckDB's threads, and each arena keeps its own free pages. Pi profile, 24 h updates day,
    silver.orderbook alone: peak RSS 486 / 539 MB → 456 / 456 MB; 4 MiB gave 476 MB. A value the user
    set in the environment (MALLOC_MMAP_THRESHOLD_, MALLOC_ARENA_MAX) is kept; a no-op off glibc.
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    if "MALLOC_ARENA_MAX" not in os.environ:
        mallopt(M_ARENA_MAX, ARENA_MAX)


def skip_pyarrow_pandas_probe() -> None:
    """Stop pyarrow importing pandas the first time it converts Python lists.

    pyarrow probes for pandas on its first Python→Arrow conversion just to recognise pandas inputs,
    which neither the collector nor a build passes: the import costs ~50 MB of RSS and ~0.6 s (with
    the collector's event loop blocked). With `pandas` made unimportable for that first probe pyarrow
    notes "no pandas" and converts lists as before; anything that really needs pandas (to_pandas,
    from_pandas) imports it again on use. A no-op where pandas is already imported.
    """
    if "pandas" in sys.modules:
        return
    import pyarrow as pa

    blocker = _NoPandas()
    sys.meta_path.insert(0, blocker)
    try:
        # Each inference path probes on its own (typed ints, untyped strings and booleans, nested
        # lists); probing all of them once here keeps every later conversion pandas-free.
        for values, typ in (
            ([0], pa.int64()),
            (["x"], None),
            ([True], None),
            ([[0.0]], pa.list_(pa.float64())),
        ):
            pa.array(values, type=typ)
    finally:
        sys.meta_path.remove(blocker)


class _NoPandas:
    """Import hook for skip_pyarrow_pandas_probe: `import pandas` fails while it is installed."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named '{name}'", name=name)
