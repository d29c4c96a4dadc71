"""A loaded, parsed project over one lake: the state a plan and a build share.

The session owns the connection and the manifest; what the lake holds is its `inventory`
(inventory.py), how a model's SQL is rendered against it its `renderer` (resolvers.py), and what a
materialization may touch its `ctx` (materializations/base.py: lake, config, copy, compile).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from daedalus.build.compiler import Compiler
from daedalus.build.dag import Dag, build_dag
from daedalus.build.datatests import model_tests
from daedalus.build.inventory import Inventory
from daedalus.build.layout import new_staging
from daedalus.build.materializations import BuildContext, PartPlan
from daedalus.build.project import Model, Project, load_project
from daedalus.build.publish import prune_staging, purge, retire
from daedalus.build.resolvers import Renderer
from daedalus.build.selection import date_range
from daedalus.build.selection import select as select_models
from daedalus.errors import BuildError, ConfigError
from daedalus.lake import FileInfo, Lake, open_lake
from daedalus.lake.manifest import Manifest
from daedalus.sqltext import sql_str
from daedalus.udfs.relations import calls_python

if TYPE_CHECKING:
    import duckdb

    from daedalus.build.parts import InputPart
    from daedalus.config import Config


NO_UDFS_ENV = "DAEDALUS_NO_UDFS"
"""Set to 1 to skip UDF registration (projects that call no UDF, e.g. the toy project of the tests)."""


def connect(config: Config, udfs: bool = True) -> duckdb.DuckDBPyConnection:
    """`daedalus.duck.connect`, skipping UDF registration while `daedalus.udfs.register` is absent."""
    from daedalus import duck
    from daedalus.fsio import skip_pyarrow_pandas_probe

    skip_pyarrow_pandas_probe()  # a build never needs pandas: ~50 MB of RSS less (the Pi budget)
    con = duck.connect(config, udfs=udfs and udfs_available())
    # Dates of partitions are UTC dates: CAST(ts AS DATE) must not depend on the machine's zone.
    con.execute("SET TimeZone = 'UTC'")
    return con


def udfs_available() -> bool:
    """Whether the Daedalus UDFs can be registered: not turned off (NO_UDFS_ENV), and installed."""
    import importlib.util

    if os.environ.get(NO_UDFS_ENV, "") not in ("", "0"):
        return False
    try:
        return importlib.util.find_spec("daedalus.udfs.register") is not None
    except (ImportError, ValueError):
        return False


def iso_date(d: str | dt.date | None) -> str | None:
    if d is None or d == "":
        return None
    if isinstance(d, dt.datetime):
        return d.date().isoformat()
    if isinstance(d, dt.date):
        return d.isoformat()
    try:
        return dt.date.fromisoformat(str(d)).isoformat()
    except ValueError:
        raise ConfigError(f"--start/--end: '{d}' is not a date (YYYY-MM-DD)") from None


class Session:
    """A loaded, parsed project over one lake: the state a plan and a build share."""

    def __init__(
        self,
        config: Config,
        project: Project | None = None,
        lake: Lake | None = None,
        udfs: bool = True,
        start: str | dt.date | None = None,
        end: str | dt.date | None = None,
    ) -> None:
        from daedalus.fsio import skip_pyarrow_pandas_probe

        # Before anything converts to Arrow: compiling a model over an absent bronze channel builds its
        # empty table (resolvers.source_columns) before the connection below exists, and pyarrow's
        # first conversion would import pandas (~50 MB of RSS for the rest of the build).
        skip_pyarrow_pandas_probe()
        self.config = config
        self.project = project if project is not None else load_project(config)
        self.compiler = Compiler(self.project, config)
        self.compiler.parse_all()
        self.dag: Dag = build_dag(self.project)
        for m in self.project.models.values():
            model_tests(m)  # a misspelled data test is a compile error, found before any work
        self.lake = lake if lake is not None else open_lake(config)
        self.udfs = udfs
        self.start, self.end = date_range(iso_date(start), iso_date(end))
        self.staging = new_staging()  # where this session's writes wait to be published
        self.dropped: list[tuple[str, str]] = []  # obsolete partitions the last plan found
        self.connection: duckdb.DuckDBPyConnection | None = None
        self.udfs_registered = False
        self.reload()

    def reload(self) -> None:
        """Read the manifest again (what the lake holds now) and forget every cached partition list."""
        if self.connection is not None:
            from daedalus.udfs.relations import drop_memos

            drop_memos(self.connection)  # results of queries over the files the last look found
        self.manifest = Manifest.load(self.lake)
        self.inventory = Inventory(
            self.project, self.lake, self.manifest, lambda: self.con, self.start, self.end
        )
        self.renderer = Renderer(
            self.project, self.compiler, self.lake, self.manifest, self.inventory, self.con_for
        )

    # -- connection --------------------------------------------------------------------------

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The session's connection; the Daedalus UDFs are registered on it only once a query calls
        one (`con_for`)."""
        if self.connection is None:
            self.connection = connect(self.config, udfs=False)
            self.udfs_registered = False
        return self.connection

    def con_for(self, sql: str = "") -> duckdb.DuckDBPyConnection:
        """The connection, ready to run `sql`: the UDFs registered first if it calls one. Registering
        imports numba and loads the kernels (~100 MB resident for the rest of the process), so a build
        does it at the first model that needs it, and builds the models that need none before it
        (daedalus/build/dag.py); a build of those alone never loads numba."""
        con = self.con
        if self.udfs and not self.udfs_registered and calls_python(sql) and udfs_available():
            from daedalus.udfs.register import register_all

            register_all(con, self.config)
            self.udfs_registered = True
        return con

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None
        with contextlib.suppress(OSError):
            prune_staging(self.lake, own=self.staging, release=True)  # no empty folder tree left

    @property
    def ctx(self) -> BuildContext:
        """What a materialization sees of this session."""
        return BuildContext(
            lake=self.lake,
            config=self.config,
            inputs=self.inventory,
            con=self.con_for,
            execute_copy=self.execute_copy,
            query_error=self.query_error,
            compile=self.compile_model_sql,
            staging=self.staging,
        )

    # -- the few questions everyone asks (delegated) ------------------------------------------

    def select(
        self, select: Iterable[str] | str | None = None, exclude: Iterable[str] | str | None = None
    ) -> list[str]:
        return select_models(self.project, self.dag, select, exclude)

    def parts(self, rel: str) -> dict[str, InputPart]:
        return self.inventory.parts(rel)

    def compile_model_sql(
        self,
        model: Model,
        part: PartPlan | None,
        symbolic_empty: bool = False,
        bounds: tuple[dt.datetime, dt.datetime] | None = None,
    ) -> str:
        return self.renderer.compile_model_sql(model, part, symbolic_empty, bounds)

    def source_columns(self, name: str) -> list[tuple[str, str]]:
        return self.renderer.source_columns(name)

    # -- execution helpers -------------------------------------------------------------------

    def execute_copy(self, model: Model, part: PartPlan, sql: str) -> int:
        import duckdb

        from daedalus.udfs import relations

        con = self.con_for(sql)
        names = relations.bind(con, sql)
        try:
            row = con.execute(sql).fetchone()
        except duckdb.Error as e:
            raise self.query_error(model, part, e) from None
        finally:
            relations.unbind(con, names)
        return int(row[0]) if row else 0

    def query_error(self, model: Model, part: PartPlan, e: Exception) -> Exception:
        """A DuckDB error of the model's query as one line naming the model and partition (a
        StorageError for a full spill directory or an unreachable endpoint)."""
        where = f" partition {part.pid}" if part.pid else ""
        from daedalus.duck import storage_error  # a full spill directory, an unreachable endpoint

        storage = storage_error(self.config, str(e), f"{model.path}: {model.relation}{where}")
        if storage is not None:
            return storage
        return BuildError(f"{model.path}: {model.relation}{where}: {str(e).splitlines()[0]}")

    def apply_settings(self, model: Model) -> dict[str, Any]:
        """Set the model's DuckDB `settings`; returns the previous values (for restore_settings)."""
        old: dict[str, Any] = {}
        for key, value in model.config.settings.items():
            try:
                old[key] = self.con.execute(f"SELECT current_setting({sql_str(key)})").fetchone()[0]
                lit = str(value) if isinstance(value, bool | int | float) else sql_str(str(value))
                self.con.execute(f"SET {key} = {lit}")
            except Exception as e:
                raise BuildError(
                    f"{model.path}: settings: cannot set '{key}' = {value!r}: {str(e).splitlines()[0]}"
                ) from None
        return old

    def restore_settings(self, old: dict[str, Any]) -> None:
        for key, value in old.items():
            lit = str(value) if isinstance(value, bool | int | float) else sql_str(str(value))
            try:
                self.con.execute(f"SET {key} = {lit}")
            except Exception:
                self.con.execute(f"RESET {key}")

    def describe(self, f: FileInfo) -> list[list[str]]:
        """The columns of a written file ([name, type] pairs, as the manifest records them)."""
        rows = self.con.execute(
            f"DESCRIBE SELECT * FROM read_parquet({sql_str(self.lake.url(f.path))})"
        ).fetchall()
        return [[r[0], r[1]] for r in rows]

    def orphans(self, model: Model, part: PartPlan, known: set[str]) -> list[str]:
        """Files in the partition's folder that no manifest ever recorded (a killed build's writes)."""
        rel_dir = model.lake_prefix + (f"/{part.pid}" if part.pid else "")
        out = []
        for f in self.lake.list(rel_dir):
            if not part.pid and f.path.count("/") != rel_dir.count("/") + 1:
                continue  # a table's folder: only its own files
            if f.path.endswith(".parquet") and f.path not in known:
                out.append(f.path)
        return out

    def clean_orphans(self, plan: list[PartPlan]) -> set[str]:
        """Delete what a killed build left in the planned partitions' folders; returns the known files."""
        known = self.manifest.referenced() | {d["path"] for d in self.manifest.pending_deletions}
        for p in plan:
            orphans = self.orphans(self.project.models[p.model], p, known)
            if orphans:
                self.lake.delete(orphans)
        return known

    def purge_deletions(self, catalog_at: float = 0.0) -> list[str]:
        """Move replaced files out of the model folders, delete trash past the grace period (publish.py;
        no reader names a file by path any more, so `catalog_at` no longer matters)."""
        prune_staging(self.lake, own=self.staging)  # and stale empty batches of killed builds
        return retire(self.lake, self.manifest) + purge(
            self.lake, self.config.storage.retain_replaced_minutes
        )
