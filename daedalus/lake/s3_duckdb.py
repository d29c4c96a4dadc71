"""What DuckDB needs to read and write a lake on S3 with no download: httpfs from the
`duckdb-extension-httpfs` wheel (a bare `LOAD httpfs` looks under ~/.duckdb/extensions and fails
offline) and a secret from config + environment. Used by S3Lake.connection_sql only."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from daedalus.errors import StorageError
from daedalus.sqltext import sql_str as _sql_str

if TYPE_CHECKING:
    from daedalus.config import Config


def httpfs_extension_path() -> Path:
    """The httpfs extension file shipped by the wheel of the same version as duckdb."""
    import duckdb
    import duckdb_extension_httpfs

    base = Path(duckdb_extension_httpfs.__file__).parent / "extensions"
    path = base / f"v{duckdb.__version__}" / "httpfs.duckdb_extension"
    if not path.exists():
        found = sorted(base.glob("*/httpfs.duckdb_extension"))
        raise StorageError(
            f"httpfs extension for duckdb {duckdb.__version__} not found under {base} "
            f"(found: {[str(f.parent.name) for f in found]}); "
            f"install duckdb-extension-httpfs=={duckdb.__version__}"
        )
    return path


def s3_secret_sql(config: Config, name: str = "daedalus_s3") -> str:
    """CREATE SECRET for S3 from config + environment. Keys never come from YAML.

    With AWS_ACCESS_KEY_ID set, an explicit CONFIG secret is built from the environment; otherwise
    DuckDB's credential_chain provider asks the AWS chain (profile, instance role, ...).
    """
    s3 = config.s3
    parts = [
        "TYPE s3",
        f"REGION {_sql_str(s3.region)}",
        f"URL_STYLE {_sql_str(s3.url_style)}",
        f"USE_SSL {'true' if s3.use_ssl else 'false'}",
    ]
    if s3.endpoint:
        parts.append(f"ENDPOINT {_sql_str(s3.endpoint)}")
    key = os.environ.get("AWS_ACCESS_KEY_ID")
    if key:
        parts.append(f"KEY_ID {_sql_str(key)}")
        parts.append(f"SECRET {_sql_str(os.environ.get('AWS_SECRET_ACCESS_KEY', ''))}")
        token = os.environ.get("AWS_SESSION_TOKEN")
        if token:
            parts.append(f"SESSION_TOKEN {_sql_str(token)}")
    else:
        parts.append("PROVIDER credential_chain")
    return f"CREATE OR REPLACE SECRET {name} (" + ", ".join(parts) + ")"
