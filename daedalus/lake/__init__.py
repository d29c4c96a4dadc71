"""Storage of the lake behind one small interface: list, stat, delete, atomic write, URLs for DuckDB.

The build, manifest and catalog only speak to a `Lake`, never to `os` or `boto3`. The interface
and the local backend live in lake/base.py, the S3 backend in lake/s3.py; this package picks one by
the URL scheme of `storage.root` (`LAKE_KINDS`). The backends import lake/base.py only, never this
registry, so adding one is an entry here (or `register_lake`) and no import cycle.

    from daedalus.lake import open_lake
    lake = open_lake(config)          # LocalLake or S3Lake
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from daedalus.errors import StorageError
from daedalus.fsio import root_scheme
from daedalus.lake.base import FileInfo, Lake, LocalLake, exclusive_lock

if TYPE_CHECKING:
    from daedalus.config import Config

__all__ = ["FileInfo", "LAKE_KINDS", "Lake", "LocalLake", "exclusive_lock", "open_lake", "register_lake"]


def _s3_lake(root: str, config: Config | None) -> Lake:
    from daedalus.lake.s3 import S3Lake  # boto3 and friends: only for a lake on S3

    return S3Lake(root, config)


# URL scheme → factory(root, config).
LAKE_KINDS: dict[str, Callable[[str, Config | None], Lake]] = {
    "file": lambda root, config: LocalLake(root),
    "s3": _s3_lake,
}


def register_lake(scheme: str, factory: Callable[[str, Config | None], Lake]) -> None:
    LAKE_KINDS[scheme] = factory


def open_lake(config: Config) -> Lake:
    """The Lake for `storage.root`: a local path, or a URL whose scheme has a registered backend."""
    root = config.storage.root
    scheme = root_scheme(root)  # the same rule the collector uses (daedalus/fsio.py)
    if scheme == "file":
        root = root.removeprefix("file://")
    factory = LAKE_KINDS.get(scheme)
    if factory is None:
        raise StorageError(
            f"storage.root: no storage backend for '{scheme}://' (available: {', '.join(sorted(LAKE_KINDS))})"
        )
    return factory(root, config)
