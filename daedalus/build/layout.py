"""Where a build's files live: one `data.parquet` per partition, `_staging/` batches, `_trash/`
batches (daedalus/build/publish.py says why). A leaf module: materializations write staged paths,
publish renames them into place.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from daedalus.build.project import Model

DATA_FILE = "data.parquet"
STAGING = "_staging"
TRASH = "_trash"
STAGING_MAX_AGE_S = 24 * 3600  # a staging batch this old belongs to a killed build (shards run unlocked)


def new_batch() -> str:
    """A staging or trash batch name: creation time (for cleanup by age) + a random part."""
    return f"{int(time.time())}-{uuid.uuid4().hex[:10]}"


def new_staging() -> str:
    """A staging folder (one per build, per Dask worker session, per shard)."""
    return f"{STAGING}/{new_batch()}"


def partition_dir(model: Model, pid: str) -> str:
    return model.lake_prefix + (f"/{pid}" if pid else "")


def staged_path(staging: str, model: Model, pid: str, name: str = DATA_FILE) -> str:
    return f"{staging}/{partition_dir(model, pid)}/{name}"
