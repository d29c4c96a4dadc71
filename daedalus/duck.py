"""DuckDB connections: every connection takes its limits from config and can reach S3 with no download.

httpfs comes from the `duckdb-extension-httpfs` wheel; its path is resolved here, in one place,
because a bare `LOAD httpfs` looks under ~/.duckdb/extensions and fails offline.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from daedalus.errors import StorageError

if TYPE_CHECKING:
    import duckdb

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


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def configure(con: duckdb.DuckDBPyConnection, config: Config) -> None:
    """Apply memory/thread/spill settings from config to an open connection."""
    d = config.duckdb
    tmp = Path(d.temp_directory).expanduser()
    tmp.mkdir(parents=True, exist_ok=True)
    con.execute(f"SET memory_limit = {_sql_str(d.memory_limit)}")
    if d.threads is not None:
        con.execute(f"SET threads = {int(d.threads)}")
    con.execute(f"SET temp_directory = {_sql_str(str(tmp))}")
    con.execute(f"SET max_temp_directory_size = {_sql_str(d.max_temp_directory_size)}")
    # Builds order explicitly where order matters; letting DuckDB drop insertion order saves memory.
    con.execute("SET preserve_insertion_order = false")


def load_httpfs(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"LOAD {_sql_str(str(httpfs_extension_path()))}")


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


def connect(
    config: Config,
    database: str = ":memory:",
    read_only: bool = False,
    udfs: bool = True,
) -> duckdb.DuckDBPyConnection:
    """A configured connection: limits from config, httpfs + S3 secret when the lake is on S3,
    and the Daedalus UDFs registered (imports numba; pass udfs=False where they are not needed)."""
    import duckdb

    con = duckdb.connect(database, read_only=read_only)
    configure(con, config)
    from daedalus.lake import open_lake

    open_lake(config).configure_connection(con)  # the backend's hook: S3 loads httpfs + its secret
    if udfs:
        from daedalus.udfs.register import register_all

        register_all(con, config)
    return con


def spill_error(config: Config, message: str) -> StorageError | None:
    """A DuckDB error caused by a full spill directory, as one clear StorageError (else None).

    DuckDB's own first line ("failed to offload data block ...") does not say where or why; the
    lake is untouched in that case (the COPY wrote nothing that the manifest names)."""
    d = config.duckdb
    where = str(Path(d.temp_directory).expanduser().resolve())
    if "max_temp_directory_size" in message:
        return StorageError(
            f"duckdb.temp_directory {where}: spill limit duckdb.max_temp_directory_size "
            f"({d.max_temp_directory_size}) reached; raise it, or lower duckdb.threads / the "
            "partition size; the lake is unchanged"
        )
    if "No space left on device" in message:
        return StorageError(
            f"duckdb.temp_directory {where}: disk full while spilling; free space there or point "
            "duckdb.temp_directory at a bigger disk; the lake is unchanged"
        )
    return None
