"""`catalog.duckdb`: one view per source and model over the manifest's exact file lists; no data.

It is built in a temporary file and renamed into place (only when its statements changed), so a
process holding the old catalog open `READ_ONLY` (a shell, a BI tool through duckdb-engine) keeps its
inode and never meets a lock: the builder never opens the live file. Views glob the model folders
with paths relative to the lake root, which readers resolve with `file_search_path` = the catalog's
folder, and a plain `duckdb` on the file from any folder resolves against the file's folder
(daedalus/serve/catalog_paths.py; S3 lakes: `s3://` URLs). Column comments come from the YAML docs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daedalus.errors import BuildError
from daedalus.serve.catalog_paths import CATALOG_NAME
from daedalus.sqltext import sql_ident, sql_str

if TYPE_CHECKING:
    from collections.abc import Callable

    from daedalus.config import Config


@dataclass
class CatalogView:
    schema: str
    name: str
    sql: str  # the SELECT the view is defined as
    description: str = ""
    columns: dict[str, str] = field(default_factory=dict)  # column → its comment (documented ones)


@dataclass
class CatalogSpec:
    """Everything the catalog file holds, as plain data."""

    schemas: list[str]
    views: list[CatalogView]
    root: str  # what `_daedalus.lake` records: '.' for a local lake, else its URL
    remote: bool  # views read remote URLs (httpfs and the S3 secret are needed to bind them)

    def fingerprint(self) -> str:
        """Of everything the file would hold, docs included: an equal one needs no new catalog."""
        doc = [self.schemas, [asdict(v) for v in self.views], self.root]
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]


CATALOG = CATALOG_NAME
ROOT_TABLE = "_daedalus.lake"  # a view: the root the catalog was written for (one row)


def _remote(root: str) -> bool:
    return "://" in root and not root.startswith("file://")


def lake_state_dir(config: Config) -> Path:
    """The local folder of one remote lake's state (its catalog): one per lake, the same from any
    working directory. `$DAEDALUS_STATE_DIR`, else `$XDG_STATE_HOME/daedalus`, else
    `~/.local/state/daedalus`, then `lakes/<sha256 of the root>[:16]`. Two S3 lakes used from one
    machine used to share `<temp_directory>/catalog.duckdb` and answer each other's queries."""
    base = os.environ.get("DAEDALUS_STATE_DIR") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state"),
        "daedalus",
    )
    key = hashlib.sha256(config.storage.root.rstrip("/").encode()).hexdigest()[:16]
    return Path(base).expanduser().resolve() / "lakes" / key


def catalog_path(config: Config) -> str:
    """Where readers open the catalog (a local path; for an S3 lake, the lake's local copy)."""
    root = config.storage.root
    if _remote(root):
        return str(lake_state_dir(config) / CATALOG)
    return str(Path(root.removeprefix("file://")).expanduser().resolve() / CATALOG)


def catalog_root(path: str) -> str | None:
    """The lake root a catalog file was written for: '.' for a local lake's catalog (paths relative
    to its folder), the URL for an S3 lake's (None: no catalog, or one from before roots were recorded)."""
    import duckdb

    from daedalus.serve.catalog_paths import reader_config

    if not os.path.exists(path):
        return None
    try:
        con = duckdb.connect(path, read_only=True, config=reader_config(path))
    except duckdb.Error:
        return None
    try:
        row = con.execute(f"SELECT root FROM {ROOT_TABLE}").fetchone()
        return row[0] if row else None
    except duckdb.Error:
        return None
    finally:
        con.close()


def expected_root(config: Config) -> str:
    from daedalus.serve.catalog_paths import RELATIVE_ROOT

    root = config.storage.root.rstrip("/")
    return root if _remote(root) else RELATIVE_ROOT


def catalog_current(config: Config) -> bool:
    """True when the catalog exists and belongs to this lake (a build refreshes it otherwise)."""
    return catalog_root(catalog_path(config)) == expected_root(config)


def _check_root(config: Config, path: str) -> None:
    from daedalus.errors import StorageError

    found = catalog_root(path)
    want = expected_root(config)
    if found is not None and found != want:
        if not _remote(config.storage.root):
            raise StorageError(
                f"{path}: this catalog was written by an older version with absolute paths "
                f"(into {found}); run `daedalus catalog` to rewrite it"
            )
        raise StorageError(
            f"{path}: this catalog belongs to the lake {found}, not to storage.root {want}; "
            "run `daedalus build` to write this lake's catalog"
        )


def _comment(run, kind: str, target: str, text: str) -> None:  # noqa: ANN001
    if text:
        run(f"COMMENT ON {kind} {target} IS {sql_str(text)}")


def write_catalog(config: Config, spec: CatalogSpec, force: bool = False) -> str:
    """Write the catalog's views (computed by the build: daedalus/build/catalog_views.py) into a new
    file and swap it into place when its statements changed (or `force`); returns its path."""
    import duckdb

    from daedalus.serve import catalog_paths as cp

    final = catalog_path(config)
    tmp_dir = os.path.dirname(final)
    os.makedirs(tmp_dir, exist_ok=True)
    tmp = os.path.join(tmp_dir, f".catalog-{uuid.uuid4().hex}.duckdb.tmp")
    # The views are bound here, so relative paths resolve against the lake root like a reader's.
    con = duckdb.connect(tmp, config=cp.reader_config(final))
    done: list[str] = []  # every statement that defines the catalog (its fingerprint)

    def run(sql: str) -> None:
        con.execute(sql)
        done.append(sql)

    try:
        if spec.remote:
            from daedalus.lake import open_lake

            open_lake(config).configure_connection(con)
        # One transaction for the whole file: ~400 statements (a COMMENT per documented column) each
        # committed on its own cost ~4 ms apiece, most of a build's catalog refresh.
        con.execute("BEGIN TRANSACTION")
        for schema in spec.schemas:
            run(f"CREATE SCHEMA IF NOT EXISTS {sql_ident(schema)}")
        for v in spec.views:
            _create_view(run, v.schema, v.name, v.sql)
        for v in spec.views:
            target = f"{sql_ident(v.schema)}.{sql_ident(v.name)}"
            _comment(run, "VIEW", target, v.description)
            existing = {
                r[0]
                # literals, not bound parameters: binding makes DuckDB import pandas (~50 MB of RSS)
                # to check whether a parameter is a DataFrame, and a build never needs pandas
                for r in con.execute(
                    "SELECT column_name FROM duckdb_columns() "
                    f"WHERE schema_name = {sql_str(v.schema)} AND table_name = {sql_str(v.name)}"
                ).fetchall()
            }
            for col, text in v.columns.items():
                if col in existing:
                    _comment(run, "COLUMN", f"{target}.{sql_ident(col)}", text)
        run("CREATE SCHEMA _daedalus")
        # a view, so the catalog still holds no data
        run(f"CREATE VIEW {ROOT_TABLE} AS SELECT {sql_str(spec.root)} AS root")
        con.execute("COMMIT")
        con.execute("CHECKPOINT")
    except BaseException:
        con.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    con.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp + ".wal")
    fp = cp.fingerprint(done)
    if not force and cp.unchanged(final, fp):
        # Same views: keep the live file, so processes holding it (one DuckDB instance per file
        # and process) and processes opening it meanwhile read the same catalog.
        os.unlink(tmp)
        cp.record(final, fp, spec.fingerprint())
        return final
    # Same directory as the final file, so the rename is atomic. For an S3 lake the catalog stays
    # local (its views read s3:// URLs); publishing a copy to the bucket is the S3 backend's job.
    os.replace(tmp, final)
    cp.record(final, fp, spec.fingerprint())
    return final


def catalog_holds(config: Config, spec: CatalogSpec) -> bool:
    """True when the live catalog was written from an equal spec (views and docs), so writing it again
    would change nothing; cheap: no catalog is opened or written."""
    from daedalus.serve import catalog_paths as cp

    return cp.spec_recorded(catalog_path(config), spec.fingerprint())


def _create_view(run, schema: str, name: str, sql: str) -> None:  # noqa: ANN001
    import duckdb

    try:
        run(f"CREATE OR REPLACE VIEW {sql_ident(schema)}.{sql_ident(name)} AS\n{sql}")
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
    from daedalus.serve.catalog_paths import reader_config

    con = duckdb.connect(path, read_only=True, config=reader_config(path))
    con.execute("SET TimeZone = 'UTC'")
    from daedalus.lake import open_lake

    open_lake(config).configure_connection(con)  # S3: httpfs + the secret; local: nothing
    return con


FORMATS = ("table", "csv", "json", "parquet")


def each_view(config: Config, views_sql: str, read: Callable[[Any, str, str], Any]) -> dict[str, Any]:
    """`read(con, schema, name)` of every view that `views_sql` lists (schema, name rows) in the
    catalog, by "schema.name"; a view it reads as None is left out."""
    con = open_catalog(config)
    try:
        out = {}
        for schema, name in con.execute(views_sql).fetchall():
            got = read(con, schema, name)
            if got is not None:
                out[f"{schema}.{name}"] = got
        return out
    finally:
        con.close()


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
    from daedalus.serve.catalog_paths import reader_config

    search = reader_config(catalog_path(config))["file_search_path"]
    lines = ["SET TimeZone = 'UTC';", f"SET file_search_path = {sql_str(search)};"]
    from daedalus.lake import open_lake

    lines += [statement + ";" for statement in open_lake(config).connection_sql()]
    return "\n".join(lines) + "\n"


def shell_argv(config: Config, init: str) -> list[str]:
    """The command line `daedalus shell` runs; `init` is the path of its init SQL (shell_init_sql)."""
    from daedalus.errors import StorageError

    path = catalog_path(config)
    if not os.path.exists(path):
        raise StorageError(f"{path}: no catalog yet; run `daedalus build` first")
    _check_root(config, path)
    return [duckdb_cli_path(), "-readonly", "-init", init, path]


def _die_with_parent(parent: int) -> Callable[[], None]:
    """preexec_fn: the CLI gets SIGKILL when `daedalus shell` dies, however it dies (SIGTERM, SIGHUP,
    kill -9): a shell holding S3 credentials must not outlive its owner."""

    def setup() -> None:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL (Linux)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return setup


def _remove_stale_init_files(config: Config) -> None:
    """Init files of older versions (`shell_init-<pid>-*.sql`, possibly holding the S3 secret) whose
    shell is gone: a kill -9 left them behind."""
    folder = Path(config.duckdb.temp_directory).expanduser()
    for f in folder.glob("shell_init-*-*.sql") if folder.is_dir() else []:
        pid = f.name.split("-")[1]
        alive = pid.isdigit() and Path(f"/proc/{pid}").exists()
        if not alive:
            f.unlink(missing_ok=True)


def run_shell(config: Config, extra: list[str] | None = None, **kw: object) -> int:
    """Run the DuckDB CLI on the catalog. Its init SQL (UTC, file_search_path and, on S3, httpfs and
    the secret with key id, secret and token) goes through a pipe, never a file, so nothing of it is
    on disk after any end (the file it used to be outlived SIGTERM, SIGHUP and kill -9); the CLI
    dies with this process. Returns the CLI's exit code."""
    import signal
    import subprocess

    _remove_stale_init_files(config)
    read_end, write_end = os.pipe()
    try:
        argv = shell_argv(config, f"/dev/fd/{read_end}")
        os.write(write_end, shell_init_sql(config).encode())  # a few hundred bytes: fits the pipe
    finally:
        os.close(write_end)
    sys.stdout.flush()
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C belongs to the CLI, not to us
    try:
        return subprocess.call(  # type: ignore[call-overload]
            [*argv[:-1], *(extra or []), argv[-1]],
            pass_fds=(read_end,),
            preexec_fn=_die_with_parent(os.getpid()),
            **kw,
        )
    finally:
        signal.signal(signal.SIGINT, old)
        os.close(read_end)


def exec_shell(config: Config) -> None:
    rc = run_shell(config)
    if rc:
        raise SystemExit(rc)
