"""Plan and execute builds: which partitions are stale, then rebuild them partition by partition.

In-process API (what the CLI, the other parts and the tests call):

    from daedalus.build.runner import build
    result = build(config, select=["+orderbook_hf"], full_refresh=False, start="2024-08-08")
    result.rebuilt            # [(model, partition id), ...] in build order
    result.stats["trades"]    # ModelStats(rows, files, bytes, seconds, partitions)

`build` = plan + write + data tests + catalog; `run` skips the tests; `plan_build` only plans
(`--dry-run`); `test` runs the data tests over what the manifest holds; `compile_sql` renders one
model for one partition.

A partition is stale when its fingerprint (compiled SQL — which names the exact input files — input
file sizes and mtimes, data-affecting config) differs from the manifest, when it is new, when an
input partition it reads is rebuilt in this build, or (carry_state) when an earlier date of its
series is rebuilt. Each stale partition is written to `_staging/`, and a model's partitions are
renamed over their one `data.parquet` each together once the last is written (daedalus/build/publish.py);
then the manifest is saved. A killed build therefore leaves every partition readable with its old or
its new rows, and the next build finishes the job.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from daedalus.build.compiler import (
    Compiler,
    PartitionCtx,
    empty_relation_sql,
    read_parquet_sql,
    sql_str,
)
from daedalus.build.dag import Dag, build_dag
from daedalus.build.dag import select as select_models
from daedalus.build.materializations import MATERIALIZATIONS, PartPlan
from daedalus.build.materializations.base import partition_id
from daedalus.build.materializations.partitioned import PartitionedMaterialization
from daedalus.build.outcome import BuildTracker, load_failed
from daedalus.build.project import Model, Project, load_project, lookback_seconds
from daedalus.build.publish import normalize_sql, publish_model, purge, retire
from daedalus.build.selection import date_range
from daedalus.errors import BuildError, CompileError
from daedalus.lake import FileInfo, Lake, open_lake
from daedalus.lake.manifest import Manifest, PartitionState, files_fingerprint, fingerprint
from daedalus.paths import hive_keys as _hive_keys
from daedalus.serve.catalog import catalog_current

if TYPE_CHECKING:
    import duckdb

    from daedalus.build.datatests import TestResult
    from daedalus.config import Config

NO_UDFS_ENV = "DAEDALUS_NO_UDFS"
"""Set to 1 to skip UDF registration (projects that call no UDF, e.g. the toy project of the tests)."""
KILL_ENV = "DAEDALUS_TEST_KILL"
"""Test hook: `after_write:N` / `after_manifest:N` SIGKILLs the build at the N-th such point."""


@dataclass
class InputPart:
    """One partition of one input relation (a bronze channel or a model with files)."""

    relation: str  # "source:trades" | "model:trades"
    pid: str
    keys: dict[str, str]
    files: list[FileInfo]
    planned: bool = False  # to be rebuilt in this build: its files are not final yet

    @property
    def id(self) -> str:
        return f"{self.relation}/{self.pid}" if self.pid else self.relation


class PartRegistry(dict):
    """The partitions of one relation by id, with an index by date rebuilt after any change
    (executors assign into it directly, so the index invalidates itself)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._by_date: dict[str, list[InputPart]] | None = None

    def __setitem__(self, key: str, value: InputPart) -> None:
        super().__setitem__(key, value)
        self._by_date = None

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._by_date = None

    def pop(self, *args: Any) -> Any:
        self._by_date = None
        return super().pop(*args)

    def by_date(self) -> dict[str, list[InputPart]]:
        if self._by_date is None:
            idx: dict[str, list[InputPart]] = {}
            for ip in self.values():
                idx.setdefault(ip.keys.get("date", ""), []).append(ip)
            self._by_date = idx
        return self._by_date


@dataclass
class ModelStats:
    model: str
    relation: str
    materialized: str
    partitions: int = 0
    rows: int = 0
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0


@dataclass
class BuildResult:
    plan: list[PartPlan] = field(default_factory=list)
    stats: dict[str, ModelStats] = field(default_factory=dict)
    tests: list[TestResult] = field(default_factory=list)
    peak_rss: int = 0
    seconds: float = 0.0
    dry_run: bool = False
    dropped: list[tuple[str, str]] = field(default_factory=list)  # obsolete partitions removed
    tracker: Any = None  # build_outcome.BuildTracker: per-model PASS/WARN/ERROR/SKIP

    @property
    def rebuilt(self) -> list[tuple[str, str]]:
        return [(p.model, p.pid) for p in self.plan]


def _iso(d: str | dt.date | None) -> str | None:
    if d is None or d == "":
        return None
    if isinstance(d, dt.datetime):
        return d.date().isoformat()
    if isinstance(d, dt.date):
        return d.isoformat()
    try:
        return dt.date.fromisoformat(str(d)).isoformat()
    except ValueError:
        raise CompileError(f"--start/--end: '{d}' is not a date (YYYY-MM-DD)") from None


class Session:
    """A loaded, parsed project over one lake: the state a plan and a build share."""

    def __init__(self, config: Config, project: Project | None = None, lake: Lake | None = None,
                 udfs: bool = True, start: str | dt.date | None = None, end: str | dt.date | None = None) -> None:
        self.config = config
        self.project = project if project is not None else load_project(config)
        self.compiler = Compiler(self.project, config)
        self.compiler.parse_all()
        self.dag: Dag = build_dag(self.project)
        from daedalus.build.datatests import model_tests

        for m in self.project.models.values():
            model_tests(m)  # a misspelled data test is a compile error, found before any work
        self.lake = lake if lake is not None else open_lake(config)
        self.manifest = Manifest.load(self.lake)
        self.udfs = udfs
        self.start, self.end = date_range(_iso(start), _iso(end))
        self._parts: dict[str, dict[str, InputPart]] = {}
        self._leaf: dict[str, list[str]] = {}
        self._con: duckdb.DuckDBPyConnection | None = None
        self._source_columns: dict[str, list[tuple[str, str]]] = {}
        self._hook_counts: dict[str, int] = {}
        self.dropped: list[tuple[str, str]] = []

    # -- connection --------------------------------------------------------------------------

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = connect(self.config, udfs=self.udfs)
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    # -- relations and their partitions ------------------------------------------------------

    def relation_keys(self, rel: str) -> list[str]:
        kind, name = rel.split(":", 1)
        if kind == "source":
            return list(self.project.sources[name].partition_by)
        m = self.project.models[name]
        return MATERIALIZATIONS[m.materialized].relation_keys(m)

    def leaf_relations(self, model: Model) -> list[str]:
        """The file-backed relations a model reads, looking through views."""
        if model.name in self._leaf:
            return self._leaf[model.name]
        out: list[str] = []
        for _, name in model.sources:
            out.append(f"source:{name}")
        for r in model.refs:
            up = self.project.models[r]
            if up.materialized == "view":
                out.extend(self.leaf_relations(up))
            else:
                out.append(f"model:{r}")
        out = list(dict.fromkeys(out))
        self._leaf[model.name] = out
        return out

    def parts(self, rel: str) -> dict[str, InputPart]:
        if rel in self._parts:
            return self._parts[rel]
        kind, name = rel.split(":", 1)
        found: dict[str, InputPart] = {}
        if kind == "source":
            src = self.project.sources[name]
            prefix = src.lake_prefix + "/"
            groups: dict[str, list[FileInfo]] = {}
            for f in self.lake.list(src.lake_prefix):
                if not f.path.endswith(".parquet"):
                    continue
                pid = f.path[len(prefix):].rsplit("/", 1)[0] if "/" in f.path[len(prefix):] else ""
                groups.setdefault(pid, []).append(f)
            for pid, files in sorted(groups.items()):
                keys = _hive_keys(pid)
                if keys is None:
                    continue
                found[pid] = InputPart(rel, pid, keys, files)
        else:
            ms = self.manifest.models.get(name)
            if ms is not None:
                for pid, ps in sorted(ms.partitions.items()):
                    found[pid] = InputPart(rel, pid, dict(ps.keys), list(ps.files))
        registry = PartRegistry(found)
        self._parts[rel] = registry
        return registry

    def in_range(self, date: str | None) -> bool:
        if date is None:
            return True
        if self.start and date < self.start:
            return False
        return not (self.end and date > self.end)

    def discover(self, rel: str, ip: InputPart, missing: list[str]) -> list[dict[str, str]]:
        """Values of partition keys an input lacks in its path (symbol in bronze), from its files."""
        if ip.planned or not ip.files:
            return []
        fp = files_fingerprint(ip.files)
        cache_key = f"{ip.id}|{','.join(missing)}"
        cached = self.manifest.discovery.get(cache_key)
        if cached and cached.get("fp") == fp:
            return [dict(v) for v in cached["values"]]
        hive = rel.startswith("source:")
        cols = ", ".join(
            f"strftime(CAST(\"{k}\" AS DATE), '%Y-%m-%d')" if k == "date" else f"CAST(\"{k}\" AS VARCHAR)"
            for k in missing
        )
        where = " AND ".join(f'"{k}" IS NOT NULL' for k in missing)
        sql = (f"SELECT DISTINCT {cols} FROM {read_parquet_sql([self.lake.url(f.path) for f in ip.files], hive)} "
               f"WHERE {where} ORDER BY ALL")
        import duckdb

        try:
            rows = self.con.execute(sql).fetchall()
        except duckdb.Error as e:
            raise BuildError(f"{self.lake.url(ip.files[0].path)}: cannot read partition keys {missing} "
                             f"of {ip.id}: {str(e).splitlines()[0]}") from None
        values = [dict(zip(missing, (str(v) for v in row), strict=True)) for row in rows]
        self.manifest.discovery[cache_key] = {"fp": fp, "values": values}
        return values

    # -- empty relations ---------------------------------------------------------------------

    def source_columns(self, name: str) -> list[tuple[str, str]]:
        """A bronze channel's columns as DuckDB reads them (from collector/schemas.py) + hive keys."""
        if name in self._source_columns:
            return self._source_columns[name]
        src = self.project.sources[name]
        cols: list[tuple[str, str]] = []
        try:
            from daedalus.collector.schemas import SCHEMAS
        except ImportError:  # running from a checkout without the package mapping
            SCHEMAS = {}
        if name in SCHEMAS:
            import tempfile

            import pyarrow.parquet as pq

            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "empty.parquet")
                pq.write_table(SCHEMAS[name].empty_table(), path)
                cols = [(r[0], r[1]) for r in self.con.execute(
                    f"DESCRIBE SELECT * FROM read_parquet({sql_str(path)})").fetchall()]
        elif src.docs.columns and all(c.data_type for c in src.docs.columns.values()):
            cols = [(c.name, str(c.data_type)) for c in src.docs.columns.values()]
        else:
            raise CompileError(f"source '{src.relation}' has no files and no known columns: add data_type "
                               "to every column in sources.yml")
        have = {c for c, _ in cols}
        for k in src.partition_by:
            if k not in have:
                cols.append((k, "DATE" if k == "date" else "VARCHAR"))
        self._source_columns[name] = cols
        return cols

    def empty_model_relation(self, model: Model, keys: dict[str, str] | None, depth: int = 0) -> str:
        """An empty relation with the model's columns: from the manifest, else its SQL over empty inputs."""
        ms = self.manifest.models.get(model.name)
        if ms and ms.columns:
            return empty_relation_sql([(c[0], c[1]) for c in ms.columns])
        if depth > 50:
            raise CompileError(f"{model.path}:1: cannot derive the columns of '{model.name}' (recursion)")
        part = None
        if model.materialized == "partitioned":
            k = {key: (keys or {}).get(key, "__empty__") for key in model.config.partition_by}
            if k.get("date", "__empty__") == "__empty__":
                k["date"] = "2000-01-01"
            part = PartitionCtx(k, lookback_seconds(model.config.lookback))
        sql = self.compiler.render_model(model, EmptyResolver(self, keys, depth + 1), part)
        derived = f"(SELECT * FROM (\n{sql}\n) AS __empty WHERE false)"
        # Pin the derived columns to plain typed NULLs: the relation then calls no UDF, so it also
        # works where none is registered (the catalog, a BI tool) and costs nothing to plan.
        try:
            cols = [(r[0], r[1]) for r in self.con.execute(f"DESCRIBE SELECT * FROM {derived}").fetchall()]
        except Exception:  # noqa: BLE001 - e.g. UDFs not registered here: keep the derived form
            return derived
        return empty_relation_sql(cols)

    # -- compile -----------------------------------------------------------------------------

    def reads(self, model: Model, part: PartPlan) -> list[InputPart]:
        from daedalus.build.materializations.partitioned import reads_for

        if model.materialized == "partitioned":
            return reads_for(self, model, part.keys)
        return [ip for rel in self.leaf_relations(model)
                for ip in sorted(self.parts(rel).values(), key=lambda ip: ip.pid)]

    def partition_ctx(self, model: Model, part: PartPlan | None,
                      bounds: tuple[dt.datetime, dt.datetime] | None = None) -> PartitionCtx | None:
        if part is None or model.materialized != "partitioned":
            return None
        return PartitionCtx(dict(part.keys), lookback_seconds(model.config.lookback), bounds)

    def compile_model_sql(self, model: Model, part: PartPlan | None, symbolic_empty: bool = False,
                          bounds: tuple[dt.datetime, dt.datetime] | None = None) -> str:
        """The model's SQL for one partition, or one time slice of it (or over all files when part
        is None)."""
        if part is None:
            return self.compiler.render_model(model, CatalogResolver(self), None)
        resolver = BuildResolver(self, model, part, self.reads(model, part), symbolic_empty)
        return self.compiler.render_model(model, resolver, self.partition_ctx(model, part, bounds))

    def partition_fingerprint(self, model: Model, part: PartPlan) -> tuple[str, dict[str, str]]:
        # Empty inputs render as a marker: how their columns were learned (manifest, SQL, kwargs)
        # must not change the fingerprint.
        sql = self.compile_model_sql(model, part, symbolic_empty=True)
        reads = self.reads(model, part)
        inputs = {ip.id: files_fingerprint(ip.files) for ip in reads}
        prev = self.previous_part(model, part) if model.config.carry_state else None
        if prev is not None:
            inputs[f"previous:{prev.pid}"] = files_fingerprint(prev.files)
        fp = fingerprint({
            "sql": normalize_sql(sql).replace(self.lake.root, "<root>"),
            "inputs": inputs,
            "config": model.config.data_affecting(),
        })
        return fp, inputs

    def previous_part(self, model: Model, part: PartPlan) -> InputPart | None:
        series = part.series()
        best: InputPart | None = None
        for ip in self.parts(f"model:{model.name}").values():
            if tuple((k, v) for k, v in ip.keys.items() if k != "date") != series:
                continue
            d = ip.keys.get("date", "")
            if d < part.keys["date"] and (best is None or d > best.keys["date"]):
                best = ip
        return best

    # -- planning ----------------------------------------------------------------------------

    def select(self, select: Iterable[str] | str | None = None,
               exclude: Iterable[str] | str | None = None) -> list[str]:
        return select_models(self.project, self.dag, select, exclude)

    def obsolete(self, models: list[str]) -> list[tuple[str, str]]:
        """Partitions the manifest holds that the model's current config can never produce
        (partition_by or materialization changed): dropped by the next build, never read."""
        out = []
        for name in models:
            model = self.project.models[name]
            ms = self.manifest.models.get(name)
            if ms is None:
                continue
            mat = MATERIALIZATIONS[model.materialized]
            want = list(mat.relation_keys(model)) if mat.writes_files else None
            for pid, ps in ms.partitions.items():
                if want is None or list(ps.keys) != want or ms.materialized != model.materialized:
                    out.append((name, pid))
        return out

    def drop_obsolete(self) -> list[tuple[str, str]]:
        """Remove from the manifest the obsolete partitions the last `plan()` found (their files go
        through pending deletions like any replaced file). Executors call this before writing."""
        for name, pid in self.dropped:
            self.manifest.drop_partition(name, pid)
            ms = self.manifest.models.get(name)
            if ms is not None:
                ms.materialized = self.project.models[name].materialized
        if self.dropped:
            self.manifest.save()
        return list(self.dropped)

    def plan(self, models: list[str], full_refresh: bool = False) -> list[PartPlan]:
        """The stale partitions of the selected models, in build order (parents first)."""
        out: list[PartPlan] = []
        self.dropped = self.obsolete(self.dag.sort(models))
        for name, pid in self.dropped:
            self.parts(f"model:{name}").pop(pid, None)
        failed = load_failed(self.lake)  # partitions whose tests failed: rebuilt until they pass
        for name in self.dag.sort(models):
            model = self.project.models[name]
            mat = MATERIALIZATIONS[model.materialized]
            if not mat.writes_files:
                continue
            registry = self.parts(f"model:{name}")
            stale_series: set[tuple] = set()
            for part in mat.candidates(self, model):
                state = self.manifest.partition(name, part.pid)
                reason = ""
                if full_refresh:
                    reason = "full refresh"
                elif state is None:
                    reason = "new"
                elif part.pid in failed.get(name, {}):
                    reason = "tests failed"
                elif any(ip.planned for ip in part.reads):
                    reason = "upstream rebuilt"
                elif model.config.carry_state and part.series() in stale_series:
                    reason = "earlier date rebuilt"
                else:
                    fp, _ = self.partition_fingerprint(model, part)
                    if fp != state.fingerprint:
                        reason = "inputs changed"
                if not reason:
                    continue
                part.stale, part.reason = True, reason
                out.append(part)
                if model.config.carry_state:
                    stale_series.add(part.series())
                existing = registry.get(part.pid)
                if existing is None:
                    registry[part.pid] = InputPart(f"model:{name}", part.pid, dict(part.keys), [], planned=True)
                else:
                    existing.planned = True
        return out

    # -- execution ---------------------------------------------------------------------------

    def _hook(self, point: str) -> None:
        spec = os.environ.get(KILL_ENV)
        if not spec:
            return
        name, _, n = spec.partition(":")
        if name != point:
            return
        self._hook_counts[point] = self._hook_counts.get(point, 0) + 1
        if self._hook_counts[point] == int(n or 1):
            os.kill(os.getpid(), signal.SIGKILL)

    def execute_copy(self, model: Model, part: PartPlan, sql: str) -> int:
        import duckdb

        try:
            row = self.con.execute(sql).fetchone()
        except duckdb.Error as e:
            where = f" partition {part.pid}" if part.pid else ""
            from daedalus.duck import spill_error  # the spill directory full: name it and the key

            spill = spill_error(self.config, str(e))
            if spill is not None:
                raise spill from None
            raise BuildError(f"{model.path}: {model.relation}{where}: {str(e).splitlines()[0]}") from None
        return int(row[0]) if row else 0

    def _apply_settings(self, model: Model) -> dict[str, Any]:
        old: dict[str, Any] = {}
        for key, value in model.config.settings.items():
            try:
                old[key] = self.con.execute(f"SELECT current_setting({sql_str(key)})").fetchone()[0]
                lit = str(value) if isinstance(value, bool | int | float) else sql_str(str(value))
                self.con.execute(f"SET {key} = {lit}")
            except Exception as e:
                raise BuildError(f"{model.path}: settings: cannot set '{key}' = {value!r}: "
                                 f"{str(e).splitlines()[0]}") from None
        return old

    def _restore_settings(self, old: dict[str, Any]) -> None:
        for key, value in old.items():
            lit = str(value) if isinstance(value, bool | int | float) else sql_str(str(value))
            try:
                self.con.execute(f"SET {key} = {lit}")
            except Exception:
                self.con.execute(f"RESET {key}")

    def _orphans(self, model: Model, part: PartPlan, known: set[str]) -> list[str]:
        """Files in the partition's folder that no manifest ever recorded (a killed build's writes)."""
        rel_dir = model.lake_prefix + (f"/{part.pid}" if part.pid else "")
        out = []
        for f in self.lake.list(rel_dir):
            if not part.pid and f.path.count("/") != rel_dir.count("/") + 1:
                continue  # a table's folder: only its own files
            if f.path.endswith(".parquet") and f.path not in known:
                out.append(f.path)
        return out

    def purge_deletions(self, catalog_at: float = 0.0) -> list[str]:
        """Move replaced files out of the model folders, delete trash past the grace period (publish.py;
        no reader names a file by path any more, so `catalog_at` no longer matters)."""
        return retire(self.lake, self.manifest) + purge(self.lake, self.config.storage.retain_replaced_minutes)

    def refresh_catalog(self) -> float:
        """Rewrite the catalog from the manifest; returns when (for purge_deletions)."""
        from daedalus.serve.catalog import write_catalog

        t = time.time()
        write_catalog(self)
        return t

    def execute(self, plan: list[PartPlan], run_tests: bool = True, progress: bool = False,
                result: BuildResult | None = None, fail_fast: bool = True) -> BuildResult:
        import psutil

        from daedalus.build import datatests

        result = result or BuildResult()
        track = result.tracker = BuildTracker(self, fail_fast)
        result.plan = plan
        proc = psutil.Process()
        t_build = time.monotonic()
        by_model: dict[str, list[PartPlan]] = {}
        for p in plan:
            by_model.setdefault(p.model, []).append(p)
        bar = _Progress(progress, by_model)
        built_files: dict[str, list[FileInfo]] = {}
        last_save = time.monotonic()
        dirty = False
        result.dropped = self.drop_obsolete()
        known = self.manifest.referenced() | {d["path"] for d in self.manifest.pending_deletions}
        try:
            with bar:
                for name, parts in by_model.items():
                    if track.skipped(name):
                        continue
                    try:
                        model = self.project.models[name]
                        mat = MATERIALIZATIONS[model.materialized]
                        stats = result.stats.setdefault(name, ModelStats(name, model.relation, model.materialized))
                        registry = self.parts(f"model:{name}")
                        old_settings = self._apply_settings(model)
                        built: list[FileInfo] = []
                        self.manifest.stage(name)  # its partitions are published together (state.py)
                        try:
                            for part in parts:
                                t0 = time.monotonic()
                                orphans = self._orphans(model, part, known)
                                if orphans:
                                    self.lake.delete(orphans)
                                sql = self.compile_model_sql(model, part)
                                fp, inputs = self.partition_fingerprint(model, part)
                                written = mat.write(self, model, part, sql)
                                known.update(f.path for f in written.files)
                                self._hook("after_write")
                                seconds = time.monotonic() - t0
                                state = PartitionState(keys=dict(part.keys), files=written.files, fingerprint=fp,
                                                       rows=written.rows, bytes=written.bytes, inputs=inputs,
                                                       built_at=time.time(), seconds=seconds)
                                self.manifest.replace_partition(name, part.pid, state, model.materialized, model.layer)
                                ms = self.manifest.models[name]
                                if written.files and (not ms.columns or part is parts[0]):
                                    ms.columns = self._describe(written.files[0])  # the schema may have changed
                                ip = registry.get(part.pid)
                                if ip is None:
                                    registry[part.pid] = InputPart(f"model:{name}", part.pid, dict(part.keys),
                                                                   list(written.files))
                                else:
                                    ip.files, ip.planned = list(written.files), False
                                dirty = True
                                built.extend(written.files)
                                stats.partitions += 1
                                stats.rows += written.rows
                                stats.files += len(written.files)
                                stats.bytes += written.bytes
                                stats.seconds += seconds
                                result.peak_rss = max(result.peak_rss, proc.memory_info().rss)
                                if time.monotonic() - last_save >= 1.0 or part is parts[-1]:
                                    self._save(stats)
                                    last_save, dirty = time.monotonic(), False
                                bar.advance(name, part)
                            built = publish_model(self, name)  # renames into place, saves
                            dirty = True
                        finally:
                            if self.manifest.unstage(name):  # a failure: all of it goes, and ref()/the catalog
                                self._parts.pop(f"model:{name}", None)  # read the published files again
                            self._restore_settings(old_settings)
                            if dirty:
                                self._save(stats)
                                dirty = False
                        built_files[name] = built
                        outcome = datatests.run_model_tests(self, model, built) if run_tests else []
                        result.tests.extend(outcome)
                        track.tests_done(name, [p.pid for p in parts] if run_tests else [], outcome, stats.partitions,
                                         stats.seconds)
                    except (BuildError, CompileError) as e:
                        track.error(name, e)
                if run_tests:
                    outcome = datatests.run_sql_tests(self, built_files)
                    result.tests.extend(outcome)
                    datatests.raise_on_failure(outcome)
        finally:
            track.save()
            result.seconds = time.monotonic() - t_build
            result.peak_rss = max(result.peak_rss, proc.memory_info().rss)
            if plan:
                self.manifest.last_build = {
                    "finished_at": time.time(),
                    "seconds": round(result.seconds, 3),
                    "peak_rss": result.peak_rss,
                    "models": {n: vars(s) for n, s in result.stats.items()},
                }
                self.manifest.save()
        return result

    def _save(self, stats: ModelStats) -> None:
        ms = self.manifest.models.get(stats.model)
        if ms is not None:
            ms.last_build = {**vars(stats), "finished_at": time.time()}
        self.manifest.save()
        self._hook("after_manifest")

    def _describe(self, f: FileInfo) -> list[list[str]]:
        rows = self.con.execute(f"DESCRIBE SELECT * FROM read_parquet({sql_str(self.lake.url(f.path))})").fetchall()
        return [[r[0], r[1]] for r in rows]


# ---------------------------------------------------------------------------------------------
# Resolvers


class BuildResolver:
    """ref()/source() for one partition: the exact files it reads, or an empty relation."""

    def __init__(self, session: Session, target: Model, part: PartPlan, reads: list[InputPart],
                 symbolic_empty: bool = False) -> None:
        self.s = session
        self.target = target
        self.part = part
        self.symbolic_empty = symbolic_empty
        self.by_rel: dict[str, list[InputPart]] = {}
        for ip in reads:
            self.by_rel.setdefault(ip.relation, []).append(ip)

    def _files(self, rel: str) -> list[str]:
        return [self.s.lake.url(f.path) for ip in self.by_rel.get(rel, []) for f in ip.files]

    def ref(self, model: Model | None, name: str) -> str:
        up = self.s.project.models[name]
        if up.materialized == "view":
            sql = self.s.compiler.render_model(up, self, self.s.partition_ctx(self.target, self.part))
            return f"(\n{sql}\n)"
        files = self._files(f"model:{name}")
        if files:
            return read_parquet_sql(files, hive=False)
        if self.symbolic_empty:
            return f"(/* empty model {name} */)"
        return self.s.empty_model_relation(up, self.part.keys)

    def source(self, source_name: str, name: str) -> str:
        files = self._files(f"source:{name}")
        if files:
            return read_parquet_sql(files, hive=True)
        if self.symbolic_empty:
            return f"(/* empty source {name} */)"
        return empty_relation_sql(self.s.source_columns(name))

    def previous_partition(self, model: Model | None, columns: dict[str, str] | None) -> str:
        target = self.target
        prev = self.s.previous_part(target, self.part) if target.materialized == "partitioned" else None
        if prev is not None and prev.files:
            return read_parquet_sql([self.s.lake.url(f.path) for f in prev.files], hive=False)
        if self.symbolic_empty:
            return "(/* no previous partition */)"
        return _empty_previous(self.s, target, columns)


def _empty_previous(s: Session, target: Model, columns: dict[str, str] | None) -> str:
    if columns:
        return empty_relation_sql(list(columns.items()))
    ms = s.manifest.models.get(target.name)
    if ms and ms.columns:
        return empty_relation_sql([(c[0], c[1]) for c in ms.columns])
    raise CompileError(f"{target.path}:1: previous_partition(): the first partition of '{target.name}' has no "
                       "previous partition and its columns are not known yet; pass them, e.g. "
                       "previous_partition(columns={'ts': 'TIMESTAMPTZ', 'bucket': 'BIGINT'})")


class EmptyResolver:
    """Everything empty: used to learn a model's columns when it has no files to read."""

    def __init__(self, session: Session, keys: dict[str, str] | None, depth: int) -> None:
        self.s, self.keys, self.depth = session, keys, depth

    def ref(self, model: Model | None, name: str) -> str:
        up = self.s.project.models[name]
        if up.materialized == "view":
            return f"(\n{self.s.compiler.render_model(up, self, None)}\n)"
        return self.s.empty_model_relation(up, self.keys, self.depth)

    def source(self, source_name: str, name: str) -> str:
        return empty_relation_sql(self.s.source_columns(name))

    def previous_partition(self, model: Model | None, columns: dict[str, str] | None) -> str:
        assert model is not None
        return _empty_previous(self.s, model, columns)


class CatalogResolver:
    """ref()/source() over every file the manifest (or, for bronze, the lake) holds."""

    def __init__(self, session: Session) -> None:
        self.s = session

    def relation(self, rel: str) -> str:
        """SQL reading a source or model ("source:x" / "model:x"); the one thing subclasses change."""
        return self.s.relation_sql(rel)

    def ref(self, model: Model | None, name: str) -> str:
        up = self.s.project.models[name]
        if up.materialized == "view":
            return f"(\n{self.s.compiler.render_model(up, self, None)}\n)"
        return self.relation(f"model:{name}")

    def source(self, source_name: str, name: str) -> str:
        return self.relation(f"source:{name}")

    def previous_partition(self, model: Model | None, columns: dict[str, str] | None) -> str:
        assert model is not None
        return _empty_previous(self.s, model, columns)


def _relation_sql(self: Session, rel: str) -> str:
    """A relation over every current file of a source or model (empty relation when none)."""
    kind, name = rel.split(":", 1)
    files = [self.lake.url(f.path) for ip in sorted(self.parts(rel).values(), key=lambda ip: ip.pid)
             for f in ip.files]
    if files:
        return read_parquet_sql(files, hive=(kind == "source"))
    if kind == "source":
        return empty_relation_sql(self.source_columns(name))
    return self.empty_model_relation(self.project.models[name], None)


Session.relation_sql = _relation_sql  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------
# Progress


class _Progress:
    """A rich progress bar per model (partitions done / planned); silent when disabled."""

    def __init__(self, enabled: bool, by_model: dict[str, list[PartPlan]]) -> None:
        self.enabled = enabled and bool(by_model)
        self.tasks: dict[str, Any] = {}
        self.progress = None
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("[bold]{task.fields[model]}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[part]}"), TimeElapsedColumn(),
                console=Console(stderr=True), transient=False,
            )
            for name, parts in by_model.items():
                self.tasks[name] = self.progress.add_task(name, total=len(parts), model=name, part="")

    def __enter__(self) -> _Progress:
        if self.progress is not None:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def advance(self, name: str, part: PartPlan) -> None:
        if self.progress is not None:
            self.progress.update(self.tasks[name], advance=1, part=part.pid)


# ---------------------------------------------------------------------------------------------
# Public API


def connect(config: Config, udfs: bool = True) -> duckdb.DuckDBPyConnection:
    """`daedalus.duck.connect`, skipping UDF registration while `daedalus.udfs.register` is absent."""
    import importlib.util

    from daedalus import duck
    from daedalus.collector.quarantine import skip_pyarrow_pandas_probe

    skip_pyarrow_pandas_probe()  # a build never needs pandas: ~50 MB of RSS less (the Pi budget)
    if os.environ.get(NO_UDFS_ENV, "") not in ("", "0"):
        udfs = False
    if udfs:
        try:
            udfs = importlib.util.find_spec("daedalus.udfs.register") is not None
        except (ImportError, ValueError):
            udfs = False
    con = duck.connect(config, udfs=udfs)
    # Dates of partitions are UTC dates: CAST(ts AS DATE) must not depend on the machine's zone.
    con.execute("SET TimeZone = 'UTC'")
    return con


def open_session(config: Config, project: Project | None = None, udfs: bool = True,
                 start: str | dt.date | None = None, end: str | dt.date | None = None) -> Session:
    return Session(config, project=project, udfs=udfs, start=start, end=end)


def plan_build(config: Config, select: Iterable[str] | str | None = None, exclude: Iterable[str] | str | None = None,
               start: str | dt.date | None = None, end: str | dt.date | None = None, full_refresh: bool = False,
               project: Project | None = None, udfs: bool = True) -> list[PartPlan]:
    """The partitions a build would rewrite (what `--dry-run` prints), in build order."""
    s = Session(config, project=project, udfs=udfs, start=start, end=end)
    try:
        return s.plan(s.select(select, exclude), full_refresh)
    finally:
        s.close()


def build(config: Config, select: Iterable[str] | str | None = None, exclude: Iterable[str] | str | None = None,
          start: str | dt.date | None = None, end: str | dt.date | None = None, full_refresh: bool = False,
          dry_run: bool = False, run_tests: bool = True, progress: bool = False, catalog: bool = True,
          project: Project | None = None, udfs: bool = True, fail_fast: bool = False) -> BuildResult:
    """Build the selected models: plan stale partitions, write them, run data tests, refresh the catalog.

    A model that fails skips its descendants; the others still build (unless `fail_fast`). Then it
    raises CompileError (exit 3) for a model that does not compile and BuildError (exit 4) for a
    model that fails to run or a failing data test; the error's `.result` holds the per-model outcomes.
    """
    s = Session(config, project=project, udfs=udfs, start=start, end=end)
    try:
        if dry_run:
            plan = s.plan(s.select(select, exclude), full_refresh)
            return BuildResult(plan=plan, dry_run=True, dropped=list(s.dropped))
        with s.lake.lock("build"):
            # What the lake holds now: a build that finished after this session loaded must not be
            # overwritten by a stale manifest.
            s.manifest = Manifest.load(s.lake)
            s._parts = {}
            s.purge_deletions()  # what a killed build left in the model folders, old trash
            plan = s.plan(s.select(select, exclude), full_refresh)
            result = BuildResult()
            args = {"exclude": list(exclude or []) if not isinstance(exclude, str) else [exclude],
                    "start": s.start, "end": s.end, "run_tests": run_tests}
            try:
                s.execute(plan, run_tests=run_tests, progress=progress, result=result, fail_fast=fail_fast)
            except BaseException as e:
                # After a failure too, the catalog follows the manifest (it holds every partition
                # written so far); but the build's own error is the one to report.
                if catalog and result.stats:
                    with contextlib.suppress(Exception):
                        s.purge_deletions(s.refresh_catalog())
                if result.tracker is not None:
                    with contextlib.suppress(Exception):
                        result.tracker.record_last_build(args)
                e.result = result  # type: ignore[attr-defined]  # the CLI prints its summary
                raise
            failed = bool(result.tracker and result.tracker.errors)
            if catalog and (plan or result.dropped or not catalog_current(s.config)):
                with contextlib.suppress(*((Exception,) if failed else ())):  # the build's error wins
                    s.purge_deletions(s.refresh_catalog())
            if result.tracker is not None:
                result.tracker.record_last_build(args)
                result.tracker.raise_if_failed(result)
            return result
    finally:
        s.close()


def run(config: Config, **kwargs: Any) -> BuildResult:
    """`build` without data tests."""
    kwargs["run_tests"] = False
    return build(config, **kwargs)


def test(config: Config, select: Iterable[str] | str | None = None, exclude: Iterable[str] | str | None = None,
         project: Project | None = None, udfs: bool = True) -> list[TestResult]:
    """Run the data tests of the selected models over every partition the manifest holds."""
    from daedalus.build import datatests

    s = Session(config, project=project, udfs=udfs)
    try:
        names = s.select(select, exclude)
        results: list[TestResult] = []
        for name in names:
            model = s.project.models[name]
            files = None if model.materialized == "view" else [
                f for ip in s.parts(f"model:{name}").values() for f in ip.files]
            results.extend(datatests.run_model_tests(s, model, files))
        results.extend(datatests.run_sql_tests(s, set(names), all_files=True))
        return results
    finally:
        s.close()


def parse_partition(text: str | dict[str, str] | None) -> dict[str, str] | None:
    """'exchange=x,symbol=BTC/USDT,date=2024-01-02' → dict."""
    if text is None or isinstance(text, dict):
        return text
    out: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        if "=" not in item:
            raise CompileError(f"--partition: '{item}' is not key=value (e.g. exchange=x,symbol=BTC/USDT,date=2024-01-02)")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def compile_sql(config: Config, name: str, partition: str | dict[str, str] | None = None,
                project: Project | None = None, udfs: bool = False, slice_no: int = 1) -> str:
    """The exact SQL a model runs: for a partitioned model, the query whose rows are written to one
    partition (the given one, else its newest candidate), or to its `slice_no`-th time slice when the
    model declares `slice_by`; for a view, its SQL over all files."""
    s = Session(config, project=project, udfs=udfs)
    try:
        model = s.project.model(name)
        mat = MATERIALIZATIONS[model.materialized]
        if model.materialized == "view":
            return s.compile_model_sql(model, None)
        keys = parse_partition(partition)
        part: PartPlan | None = None
        if model.materialized == "partitioned":
            if keys is None:
                cands = mat.candidates(s, model)
                if cands:
                    part = cands[-1]
                else:
                    keys = {k: ("__none__" if k != "date" else dt.date.today().isoformat())
                            for k in model.config.partition_by}
            if part is None:
                assert keys is not None
                missing = [k for k in model.config.partition_by if k not in keys]
                if missing:
                    raise CompileError(f"--partition: missing keys {missing} of {model.config.partition_by}")
                keys = {k: keys[k] for k in model.config.partition_by}
                part = PartPlan(model.name, partition_id(keys), keys)
        else:
            part = PartPlan(model.name, "", {})
        header = f"-- {model.relation} ({model.materialized}){' ' + part.pid if part.pid else ''}"
        slices = mat.slice_bounds(s, model, part) if isinstance(mat, PartitionedMaterialization) else None
        if slices is None:
            return header + "\n" + mat.select_sql(model, part, s.compile_model_sql(model, part))
        if not 1 <= slice_no <= len(slices):
            raise CompileError(f"--slice: {slice_no} is not a slice of {model.relation} "
                               f"(1..{len(slices)} at etl.slice_hours={config.etl.slice_hours:g})")
        lo, hi = slices[slice_no - 1]
        header += (f" slice {slice_no}/{len(slices)} [{lo:%H:%M}, {'24:00' if hi.day != lo.day else f'{hi:%H:%M}'})"
                   " UTC; the build runs one such query per slice")
        sql = s.compile_model_sql(model, part, bounds=(lo, hi))
        return header + "\n" + mat.select_sql(model, part, sql, (lo, hi))
    finally:
        s.close()


def list_models(config: Config, select: Iterable[str] | str | None = None,
                exclude: Iterable[str] | str | None = None, project: Project | None = None) -> list[dict[str, Any]]:
    """The selected models in build order with what the manifest knows of them (for `ls` and docs)."""
    s = Session(config, project=project, udfs=False)
    try:
        out = []
        for name in s.select(select, exclude):
            m = s.project.models[name]
            ms = s.manifest.models.get(name)
            parts = ms.partitions if ms else {}
            out.append({
                "name": name, "relation": m.relation, "layer": m.layer, "materialized": m.materialized,
                "partition_by": m.config.partition_by, "tags": m.config.tags, "lookback": m.config.lookback,
                "depends_on": [f"source:{n}" for _, n in m.sources] + list(m.refs),
                "partitions": len(parts), "rows": sum(p.rows for p in parts.values()),
                "bytes": sum(p.bytes for p in parts.values()), "path": str(m.path), "builtin": m.builtin,
            })
        return out
    finally:
        s.close()
