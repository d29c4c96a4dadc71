"""DuckDB connections: every connection takes its limits from config, then the lake's backend
prepares it (`Lake.configure_connection`: S3 loads httpfs from the wheel and its secret, see
daedalus/lake/s3_duckdb.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from daedalus.errors import StorageError

if TYPE_CHECKING:
    import duckdb

    from daedalus.config import Config


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
    # Hand freed memory back to the system soon after each task (DuckDB keeps up to 128 MB per thread
    # by default): a build's resident memory then follows the model running, not the largest one
    # before it (about −40 MB peak RSS of a full build at the Pi profile, `daedalus bench build`).
    con.execute("SET allocator_flush_threshold = '8MB'")
    con.execute("SET allocator_bulk_deallocation_flush_threshold = '32MB'")
    con.execute("SET allocator_background_threads = true")


def connect(
    config: Config,
    database: str = ":memory:",
    read_only: bool = False,
    udfs: bool = True,
) -> duckdb.DuckDBPyConnection:
    """A configured connection: limits from config, the lake backend's hook (S3: httpfs + secret),
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


# DuckDB httpfs's first lines when the storage endpoint cannot be reached (refused, reset, timed out):
# not a fault of the model or its data, and nothing the failed step wrote is named by the manifest
_UNREACHABLE = (
    "Could not connect to server",
    "Could not establish connection",
    "Connection refused",
    "Connection reset",
    "Unable to connect",
    "Failed to connect",
    "Timeout was reached",
    "Server returned nothing",
)


def storage_error(config: Config | None, message: str, where: str) -> StorageError | None:
    """A DuckDB error that is the storage's (a full spill directory when `config` is given, an
    unreachable S3 endpoint) as one StorageError line (exit 5), else None. `where` names what was
    being read or written."""
    spill = spill_error(config, message) if config is not None else None
    if spill is not None:
        return spill
    first = message.splitlines()[0] if message else ""
    if any(m in message for m in _UNREACHABLE):
        return StorageError(
            f"{where}: storage unreachable ({first}); nothing half-written is published, "
            "run the build again once the endpoint answers"
        )
    return None
