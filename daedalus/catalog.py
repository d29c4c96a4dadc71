"""`catalog.duckdb`: one view per source and model over the manifest's exact file lists; no data.

It is built in a temporary file and renamed into place, so a process holding the old catalog open
`READ_ONLY` (a shell, a BI tool through duckdb-engine) keeps its inode and never meets a lock: the
builder never opens the live file. Views use absolute paths (or S3 URLs), so the catalog can be
opened from any working directory. Column comments come from the YAML docs.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from daedalus.compiler import sql_ident, sql_str
from daedalus.errors import BuildError
from daedalus.lake import LocalLake

if TYPE_CHECKING:
    from daedalus.config import Config
    from daedalus.runner import Session

CATALOG = "catalog.duckdb"
ROOT_TABLE = "_daedalus.lake"  # a view: the root the catalog was written for (one row)


def _remote(root: str) -> bool:
    return "://" in root and not root.startswith("file://")


def lake_state_dir(config: Config) -> Path:
    """The local folder of one remote lake's state (its catalog): one per lake, the same from any
    working directory. `$DAEDALUS_STATE_DIR`, else `$XDG_STATE_HOME/daedalus`, else
    `~/.local/state/daedalus`, then `lakes/<sha256 of the root>[:16]`. Two S3 lakes used from one
    machine used to share `<temp_directory>/catalog.duckdb` and answer each other's queries."""
    base = os.environ.get("DAEDALUS_STATE_DIR") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state"), "daedalus")
    key = hashlib.sha256(config.storage.root.rstrip("/").encode()).hexdigest()[:16]
    return Path(base).expanduser().resolve() / "lakes" / key


def catalog_path(config: Config) -> str:
    """Where readers open the catalog (a local path; for an S3 lake, the lake's local copy)."""
    root = config.storage.root
    if _remote(root):
        return str(lake_state_dir(config) / CATALOG)
    return str(Path(root.removeprefix("file://")).expanduser().resolve() / CATALOG)


def catalog_root(path: str) -> str | None:
    """The lake root a catalog file was written for (None: no catalog, or one from before roots were
    recorded)."""
    import duckdb

    if not os.path.exists(path):
        return None
    try:
        con = duckdb.connect(path, read_only=True)
    except duckdb.Error:
        return None
    try:
        row = con.execute(f"SELECT root FROM {ROOT_TABLE}").fetchone()
        return row[0] if row else None
    except duckdb.Error:
        return None
    finally:
        con.close()


def catalog_current(config: Config) -> bool:
    """True when the catalog exists and belongs to this lake (a build refreshes it otherwise)."""
    return catalog_root(catalog_path(config)) == config.storage.root.rstrip("/")


def _check_root(config: Config, path: str) -> None:
    from daedalus.errors import StorageError

    found = catalog_root(path)
    want = config.storage.root.rstrip("/")
    if found is not None and found != want:
        raise StorageError(f"{path}: this catalog belongs to the lake {found}, not to storage.root {want}; "
                           "run `daedalus build` to write this lake's catalog")


def _comment(con, kind: str, target: str, text: str) -> None:  # noqa: ANN001
    if text:
        con.execute(f"COMMENT ON {kind} {target} IS {sql_str(text)}")


def write_catalog(session: Session) -> str:
    """Rebuild the catalog from the manifest and swap it into place; returns its path."""
    import duckdb

    s = session
    local = isinstance(s.lake, LocalLake)
    final = catalog_path(s.config)
    tmp_dir = os.path.dirname(final)
    os.makedirs(tmp_dir, exist_ok=True)
    tmp = os.path.join(tmp_dir, f".catalog-{uuid.uuid4().hex}.duckdb.tmp")
    con = duckdb.connect(tmp)
    try:
        if not local:
            from daedalus.duck import load_httpfs, s3_secret_sql

            load_httpfs(con)
            con.execute(s3_secret_sql(s.config))
        schemas = {"bronze"} | {m.layer for m in s.project.models.values()} | {
            src.source_name for src in s.project.sources.values()}
        for schema in sorted(schemas):
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {sql_ident(schema)}")
        views: list[tuple[str, str, object]] = []  # (schema, name, docs)
        for src in sorted(s.project.sources.values(), key=lambda x: x.name):
            sql = f"SELECT * FROM {s.relation_sql(f'source:{src.name}')}"
            views.append((src.source_name, src.name, src.docs))
            _create_view(con, src.source_name, src.name, sql)
        from daedalus.build_outcome import catalog_filter, failed_keys

        failed = failed_keys(s.lake, s.manifest)  # partitions whose data tests failed: left out
        for name in s.dag.order:
            m = s.project.models[name]
            if m.materialized == "view":
                body = s.compile_model_sql(m, None)
            else:
                body = f"SELECT * FROM {s.relation_sql(f'model:{name}')}" + catalog_filter(failed.get(name, []))
            _create_view(con, m.layer, m.name, body)
            views.append((m.layer, m.name, m.docs))
        for schema, name, docs in views:
            target = f"{sql_ident(schema)}.{sql_ident(name)}"
            _comment(con, "VIEW", target, docs.description)  # type: ignore[attr-defined]
            existing = {r[0] for r in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = ?",
                [schema, name]).fetchall()}
            for col in docs.columns.values():  # type: ignore[attr-defined]
                if col.name in existing:
                    _comment(con, "COLUMN", f"{target}.{sql_ident(col.name)}", col.description)
        con.execute("CREATE SCHEMA _daedalus")
        # a view, so the catalog still holds no data
        con.execute(f"CREATE VIEW {ROOT_TABLE} AS SELECT {sql_str(s.config.storage.root.rstrip('/'))} AS root")
        con.execute("CHECKPOINT")
    except BaseException:
        con.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    con.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp + ".wal")
    # Same directory as the final file, so the rename is atomic. For an S3 lake the catalog stays
    # local (its views read s3:// URLs); publishing a copy to the bucket is the S3 backend's job.
    os.replace(tmp, final)
    return final


def _create_view(con, schema: str, name: str, sql: str) -> None:  # noqa: ANN001
    import duckdb

    try:
        con.execute(f"CREATE OR REPLACE VIEW {sql_ident(schema)}.{sql_ident(name)} AS\n{sql}")
    except duckdb.Error as e:
        raise BuildError(f"catalog: view {schema}.{name}: {str(e).splitlines()[0]}") from None


def open_catalog(config: Config):  # noqa: ANN201
    """A read-only connection to the catalog (httpfs + secret when the lake is on S3)."""
    import duckdb

    from daedalus.errors import StorageError

    path = catalog_path(config)
    if not os.path.exists(path):
        raise StorageError(f"{path}: no catalog yet; run `daedalus build` first")
    _check_root(config, path)
    con = duckdb.connect(path, read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    if config.storage.root.startswith("s3://"):
        from daedalus.duck import load_httpfs, s3_secret_sql

        load_httpfs(con)
        con.execute(s3_secret_sql(config))
    return con


FORMATS = ("table", "csv", "json", "parquet")


def run_query(config: Config, sql: str, fmt: str = "table", output: str | None = None, limit: int = 1000) -> None:
    """`daedalus query` (kept for callers of this module; the code lives in daedalus/query.py)."""
    from daedalus.query import run_query as _run

    _run(config, sql, fmt, output, limit)


def duckdb_cli_path() -> str:
    """The `duckdb` binary shipped by the duckdb-cli wheel."""
    from daedalus.errors import StorageError

    try:
        import duckdb_cli
    except ImportError:
        raise StorageError("the duckdb CLI is not installed: pip install duckdb-cli") from None
    path = Path(duckdb_cli.__file__).parent / "duckdb"
    if not path.exists():
        raise StorageError(f"{path}: the duckdb-cli package has no binary")
    return str(path)


def shell_init_sql(config: Config) -> str:
    lines = ["SET TimeZone = 'UTC';"]
    if config.storage.root.startswith("s3://"):
        from daedalus.duck import httpfs_extension_path, s3_secret_sql

        lines.append(f"LOAD {sql_str(str(httpfs_extension_path()))};")
        lines.append(s3_secret_sql(config) + ";")
    return "\n".join(lines) + "\n"


def shell_argv(config: Config) -> list[str]:
    """The command line `daedalus shell` runs (an init file sets UTC and, on S3, httpfs + secret)."""
    from daedalus.errors import StorageError

    path = catalog_path(config)
    if not os.path.exists(path):
        raise StorageError(f"{path}: no catalog yet; run `daedalus build` first")
    _check_root(config, path)
    init_dir = Path(config.duckdb.temp_directory).expanduser().resolve()
    init_dir.mkdir(parents=True, exist_ok=True)
    # One file per shell, created 0600 before anything is written (it may hold the S3 secret from
    # the environment); run_shell removes it when the shell exits.
    init = init_dir / f"shell_init-{os.getpid()}-{uuid.uuid4().hex[:8]}.sql"
    fd = os.open(init, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(shell_init_sql(config))
    exe = duckdb_cli_path()
    return [exe, "-readonly", "-init", str(init), path]


def run_shell(config: Config, extra: list[str] | None = None, **kw: object) -> int:
    """Run the DuckDB CLI on the catalog and remove its init file when it exits, however it exits
    (it used to be exec'd and left the S3 key and secret behind). Returns the CLI's exit code."""
    import signal
    import subprocess

    argv = shell_argv(config)
    init = Path(argv[argv.index("-init") + 1])
    sys.stdout.flush()
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C belongs to the CLI, not to us
    try:
        return subprocess.call([*argv[:-1], *(extra or []), argv[-1]], **kw)  # type: ignore[arg-type]
    finally:
        signal.signal(signal.SIGINT, old)
        init.unlink(missing_ok=True)


def exec_shell(config: Config) -> None:
    rc = run_shell(config)
    if rc:
        raise SystemExit(rc)
