"""Builds past one process: partitions as tasks on a Dask distributed cluster, or a shard of them.

The build plans (stale partitions, in build order) exactly as for a local build. Each planned
partition becomes one task that compiles and writes that partition (`run_partition`); a task depends
on the tasks of the planned partitions it reads (an upstream model's partition, and for
`carry_state` models the previous date of its series), and receives their results — the files they
wrote — so it reads exactly what a local build would. Only the driver writes the manifest.

- `--executor dask --scheduler tcp://HOST:8786`: tasks go to an existing Dask cluster through
  `distributed.Client.submit`, dependencies as futures; workers must reach the lake (S3, or a
  filesystem they all mount). The driver holds the build lock and merges results as they arrive.
- `--shard i/n`: the planned partitions are split into the connected groups of that dependency
  graph (a series and everything derived from it), and shard i builds the groups whose stable hash
  is i mod n, in process. Groups never read each other's planned partitions, so shards can run at
  the same time on different machines: each writes its files without a lock and merges its
  partitions into a freshly loaded manifest under the build lock. The union of all shards is one
  full build.
"""

from __future__ import annotations

import contextlib
import time
import uuid
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from daedalus.build import datatests, planner
from daedalus.build.catalog_views import refresh_catalog
from daedalus.build.materializations import PartPlan
from daedalus.build.parts import InputPart
from daedalus.build.planner import drop_obsolete
from daedalus.build.publish import publish_model
from daedalus.build.session import Session
from daedalus.build.step import BuildResult, PartitionResult, build_partition, record_partition
from daedalus.errors import BuildError, ConfigError
from daedalus.paths import unescape
from daedalus.serve.catalog import catalog_current

if TYPE_CHECKING:
    from daedalus.config import Config


@dataclass
class PartTask:
    """What a worker needs to build one partition (picklable)."""

    build_id: str
    config: dict[str, Any]
    udfs: bool
    model: str
    pid: str
    keys: dict[str, str]
    deps: list[str] = field(default_factory=list)  # task ids this one reads

    @property
    def id(self) -> str:
        return f"{self.model}/{self.pid}"


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'1/4' → (1, 4); None stays None."""
    if text is None:
        return None
    try:
        i, n = (int(x) for x in text.split("/", 1))
    except ValueError:
        raise ConfigError(f"--shard: {text!r} is not i/n (e.g. 0/4)") from None
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"--shard: {text!r} needs 0 <= i < n")
    return i, n


# ---------------------------------------------------------------------------------------------
# Worker side

_SESSIONS: dict[str, Session] = {}  # one per build on a worker process (the newest only)


def _session(task: PartTask) -> Session:
    from daedalus.config import Config

    s = _SESSIONS.get(task.build_id)
    if s is None:
        for old in _SESSIONS.values():
            old.close()
        _SESSIONS.clear()
        s = _SESSIONS[task.build_id] = Session(Config.model_validate(task.config), udfs=task.udfs)
    return s


def _inject(s: Session, r: PartitionResult) -> None:
    """Make an upstream result visible to this worker's session (its files replace the manifest's)."""
    rel = f"model:{r.model}"
    # Files are listed in partition order in the compiled SQL (and so in its fingerprint): keep the
    # order a fresh session loads from the manifest, or the next plan would see "inputs changed".
    s.inventory.put(InputPart(rel, r.pid, dict(r.keys), list(r.files)), keep_order=True)


def run_partition(task: PartTask, *upstream: PartitionResult) -> PartitionResult:
    """Compile and write one partition (step.build_partition); the driver records the result."""
    s = _session(task)
    for up in upstream:
        _inject(s, up)
    model = s.project.models[task.model]
    part = PartPlan(model.name, task.pid, dict(task.keys))
    part.reads = s.renderer.reads(model, part)
    result = build_partition(s, task.model, part)
    _inject(s, result)  # a later date of a carry_state series on this worker reads it
    return result


# ---------------------------------------------------------------------------------------------
# Driver side


def dependencies(s: Session, plan: list[PartPlan]) -> dict[str, list[str]]:
    """Task id → ids of the planned partitions it reads (upstream, and the previous carry_state date)."""
    ids = {f"{p.model}/{p.pid}" for p in plan}
    last_of_series: dict[tuple[str, tuple], str] = {}
    deps: dict[str, list[str]] = {}
    for p in plan:
        pid = f"{p.model}/{p.pid}"
        d = [
            f"{ip.relation.split(':', 1)[1]}/{ip.pid}"
            for ip in p.reads
            if ip.relation.startswith("model:") and ip.planned
        ]
        model = s.project.models[p.model]
        if model.config.carry_state:
            prev = last_of_series.get((p.model, p.series()))
            if prev is not None:
                d.append(prev)
            last_of_series[(p.model, p.series())] = pid
        deps[pid] = [x for x in dict.fromkeys(d) if x in ids and x != pid]
    return deps


def shard_of(plan: list[PartPlan], deps: dict[str, list[str]], n: int) -> dict[str, int]:
    """Task id → shard: connected groups of the dependency graph, by a stable hash of their first id."""
    parent = {f"{p.model}/{p.pid}": f"{p.model}/{p.pid}" for p in plan}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for pid, ds in deps.items():
        for d in ds:
            a, b = find(pid), find(d)
            if a != b:
                parent[max(a, b)] = min(a, b)
    # hashed on the key values as written in the data (`BTC/USDT`), not on their path escaping
    return {pid: zlib.crc32(unescape(find(pid)).encode()) % n for pid in parent}


class _Merger:
    """Records results in the driver's manifest (step.record_partition), saving at most once a second."""

    def __init__(self, s: Session, result: BuildResult) -> None:
        self.s, self.result = s, result
        self.last_save = time.monotonic()
        self.built: dict[str, list[Any]] = {}

    def add(self, r: PartitionResult, save: bool = True) -> None:
        record_partition(self.s, r, self.result.stats)
        self.built.setdefault(r.model, []).extend(r.files)
        if save and time.monotonic() - self.last_save >= 1.0:
            self.save()

    def save(self) -> None:
        self.s.manifest.save()
        self.last_save = time.monotonic()


def _tests(s: Session, merger: _Merger, result: BuildResult) -> None:
    for name, files in merger.built.items():
        outcome = datatests.run_model_tests(s.renderer, s.project.models[name], files)
        result.tests.extend(outcome)
        datatests.raise_on_failure(outcome)
    outcome = datatests.run_sql_tests(s.renderer, set(merger.built))
    result.tests.extend(outcome)
    datatests.raise_on_failure(outcome)


def _tasks(s: Session, plan: list[PartPlan], deps: dict[str, list[str]], build_id: str) -> list[PartTask]:
    cfg = s.config.model_dump(mode="json")
    return [
        PartTask(build_id, cfg, s.udfs, p.model, p.pid, dict(p.keys), deps[f"{p.model}/{p.pid}"])
        for p in plan
    ]


def _run_dask(tasks: list[PartTask], scheduler: str, merger: _Merger) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise ConfigError(
            "--executor dask: the `distributed` package is not installed (pip install 'dask[distributed]')"
        ) from None
    try:
        client = Client(scheduler, timeout="10s")
    except (OSError, TimeoutError) as e:
        raise ConfigError(f"--scheduler: cannot reach the Dask scheduler at {scheduler}: {e}") from None
    try:
        futures: dict[str, Any] = {}
        for t in tasks:  # build order: every dependency is submitted before its dependents
            futures[t.id] = client.submit(
                run_partition,
                t,
                *[futures[d] for d in t.deps],
                key=f"daedalus-{t.build_id}-{t.id}",
                pure=False,
                retries=0,
            )
        for fut in as_completed(list(futures.values())):
            try:
                merger.add(fut.result())
            except BuildError:
                raise
            except Exception as e:  # a worker lost, a pickling problem: one line naming the task
                raise BuildError(
                    f"dask task {fut.key}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                ) from None
    finally:
        # Workers keep their per-build session cache small: tell them this build is over.
        with contextlib.suppress(Exception):
            client.run(_forget_sessions)
        client.close()


def _run_local(tasks: list[PartTask], merger: _Merger | None) -> dict[str, PartitionResult]:
    """Run the tasks in this process, in build order; merge each result at once when a merger is given."""
    results: dict[str, PartitionResult] = {}
    try:
        for t in tasks:
            results[t.id] = run_partition(t, *[results[d] for d in t.deps])
            if merger is not None:
                merger.add(results[t.id])
    finally:
        _forget_sessions()
    return results


def _forget_sessions() -> None:
    for s in _SESSIONS.values():
        s.close()
    _SESSIONS.clear()


def build_distributed(
    config: Config,
    select: Iterable[str] | str | None = None,
    exclude: Iterable[str] | str | None = None,
    start: str | None = None,
    end: str | None = None,
    full_refresh: bool = False,
    run_tests: bool = True,
    catalog: bool = True,
    executor: str = "local",
    scheduler: str | None = None,
    shard: str | tuple[int, int] | None = None,
    udfs: bool = True,
) -> BuildResult:
    """A build whose partitions run as tasks (Dask) or a shard of one (see the module docstring)."""
    if executor not in ("local", "dask"):
        raise ConfigError(f"--executor: unknown executor {executor!r} (allowed: local, dask)")
    if executor == "dask" and not scheduler:
        raise ConfigError("--executor dask needs --scheduler tcp://HOST:8786")
    shard_t = parse_shard(shard) if isinstance(shard, str) or shard is None else shard
    s = Session(config, udfs=udfs, start=start, end=end)
    build_id = uuid.uuid4().hex[:12]
    result = BuildResult()
    t0 = time.monotonic()
    try:
        if shard_t is None:
            with s.lake.lock("build"):
                s.reload()  # the manifest as the lock holder sees it, as api.build does
                plan, tasks = _plan(s, select, exclude, full_refresh, None, build_id, result)
                drop_obsolete(s)
                s.clean_orphans(plan)
                merger = _Merger(s, result)
                _stage(s, plan)
                try:
                    if executor == "dask":
                        assert scheduler is not None
                        _run_dask(tasks, scheduler, merger)
                    else:
                        _run_local(tasks, merger)
                    _publish(s, merger)
                finally:
                    _unstage(s, plan)
                    merger.save()
                _finish(s, merger, result, run_tests, catalog)
        else:
            # A shard writes its partitions without the lock (other shards never touch them) ...
            plan, tasks = _plan(s, select, exclude, full_refresh, shard_t, build_id, result)
            s.clean_orphans(plan)
            results = _run_local(tasks, None)
            if plan:
                # ... and merges them into the manifest as it is now (other shards may have merged).
                with s.lake.lock("build"):
                    s.reload()
                    drop_obsolete(s)
                    merger = _Merger(s, result)
                    _stage(s, plan)
                    try:
                        for t in tasks:
                            merger.add(results[t.id], save=False)
                        _publish(s, merger)
                    finally:
                        _unstage(s, plan)
                    merger.save()
                    _finish(s, merger, result, run_tests, catalog)
        result.seconds = time.monotonic() - t0
        return result
    finally:
        s.close()


def _stage(s: Session, plan: list[PartPlan]) -> None:
    """Results wait in the driver, staged, until every task is done: a task may still read an
    upstream's staged file, so nothing is renamed into place before the last one finishes."""
    for name in dict.fromkeys(p.model for p in plan):
        s.manifest.stage(name)


def _publish(s: Session, merger: _Merger) -> None:
    for name in list(merger.built):
        merger.built[name] = publish_model(s.lake, s.manifest, name)
        s.inventory.forget(f"model:{name}")  # ref() reads the published files from now on


def _unstage(s: Session, plan: list[PartPlan]) -> None:
    """After a failure: what was staged and not published becomes pending deletions (staging)."""
    for name in dict.fromkeys(p.model for p in plan):
        s.manifest.unstage(name)


def _plan(
    s: Session,
    select: Iterable[str] | str | None,
    exclude: Iterable[str] | str | None,
    full_refresh: bool,
    shard: tuple[int, int] | None,
    build_id: str,
    result: BuildResult,
) -> tuple[list[PartPlan], list[PartTask]]:
    planned = planner.plan(s, s.select(select, exclude), full_refresh)
    deps = dependencies(s, planned)
    if shard is not None:
        i, n = shard
        owner = shard_of(planned, deps, n)
        planned = [p for p in planned if owner[f"{p.model}/{p.pid}"] == i]
    result.plan = planned
    return planned, _tasks(s, planned, deps, build_id)


def _finish(s: Session, merger: _Merger, result: BuildResult, run_tests: bool, catalog: bool) -> None:
    if run_tests and merger.built:
        _tests(s, merger, result)
    if catalog and (result.plan or not catalog_current(s.config)):
        s.purge_deletions(refresh_catalog(s))  # retires replaced files, purges old trash
