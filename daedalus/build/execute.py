"""The local executor: build a plan model by model in this process.

Each partition is one `build_partition` + `record_partition` (step.py), written to `_staging/`; a
model's partitions are renamed over their one `data.parquet` each together once the last is written
(publish.py), then the manifest is saved. A killed build therefore leaves every partition readable
with its old or its new rows, and the next build finishes the job. A model that fails skips its
descendants; the others still build unless `fail_fast` (outcome.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

from daedalus.build import datatests
from daedalus.build.outcome import BuildTracker
from daedalus.build.planner import drop_obsolete
from daedalus.build.publish import publish_model
from daedalus.build.step import BuildResult, ModelStats, build_partition, record_partition
from daedalus.errors import BuildError, CompileError, StorageError
from daedalus.udfs.arrow_io import release_memory

if TYPE_CHECKING:
    from daedalus.build.materializations import PartPlan
    from daedalus.build.session import Session
    from daedalus.lake import FileInfo

KILL_ENV = "DAEDALUS_TEST_KILL"
"""Test hook: `after_write:N` / `after_manifest:N` SIGKILLs the build at the N-th such point."""


class KillHook:
    """The test hook of KILL_ENV: counts the points a build passes and dies at the chosen one."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def __call__(self, point: str) -> None:
        spec = os.environ.get(KILL_ENV)
        if not spec:
            return
        name, _, n = spec.partition(":")
        if name != point:
            return
        self.counts[point] = self.counts.get(point, 0) + 1
        if self.counts[point] == int(n or 1):
            os.kill(os.getpid(), signal.SIGKILL)


class Progress:
    """A rich progress bar per model (partitions done / planned) on a terminal; `"lines"`: one
    flushed stderr line per model as it finishes (a log file, systemd, `| tee`: progress arrives as
    it happens and a killed build leaves a trace); silent when disabled."""

    def __init__(self, enabled: bool | str, by_model: dict[str, list[PartPlan]]) -> None:
        self.lines = enabled == "lines" and bool(by_model)
        self.enabled = enabled is True and bool(by_model)
        self.tasks: dict[str, Any] = {}
        self.totals = {name: len(parts) for name, parts in by_model.items()}
        self.done: dict[str, int] = {}
        self.started = time.monotonic()
        self.progress = None
        if self.lines:
            n = sum(self.totals.values())
            print(f"building {n} partition(s) of {len(by_model)} model(s)", file=sys.stderr, flush=True)
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as Bar

            self.progress = Bar(
                TextColumn("[bold]{task.fields[model]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[part]}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            for name, parts in by_model.items():
                self.tasks[name] = self.progress.add_task(name, total=len(parts), model=name, part="")

    def __enter__(self) -> Progress:
        if self.progress is not None:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def advance(self, name: str, part: PartPlan) -> None:
        if self.progress is not None:
            self.progress.update(self.tasks[name], advance=1, part=part.pid)
        if self.lines:
            self.done[name] = self.done.get(name, 0) + 1
            if self.done[name] == self.totals.get(name):
                print(
                    f"built {name}: {self.done[name]} partition(s), {time.monotonic() - self.started:.1f}s "
                    "into the build",
                    file=sys.stderr,
                    flush=True,
                )


def save_stats(s: Session, stats: ModelStats, hook: KillHook) -> None:
    ms = s.manifest.models.get(stats.model)
    if ms is not None:
        ms.last_build = {**vars(stats), "finished_at": time.time()}
    s.manifest.save()
    hook("after_manifest")


def build_model(
    s: Session,
    name: str,
    parts: list[PartPlan],
    result: BuildResult,
    known: set[str],
    hook: KillHook,
    bar: Progress,
) -> list[FileInfo]:
    """Write a model's planned partitions staged, then publish them together; returns its files."""
    model = s.project.models[name]
    last_save, dirty = time.monotonic(), False
    s.manifest.stage(name)  # its partitions are published together (publish.py)
    stats = result.stats.setdefault(name, ModelStats(name, model.relation, model.materialized))
    try:
        for part in parts:
            orphans = s.orphans(model, part, known)
            if orphans:
                s.lake.delete(orphans)
            ms = s.manifest.models.get(name)
            r = build_partition(s, name, part, describe=part is parts[0] or not (ms and ms.columns))
            known.update(f.path for f in r.files)
            hook("after_write")
            record_partition(s, r, result.stats)
            dirty = True
            result.peak_rss = max(result.peak_rss, _rss())
            if time.monotonic() - last_save >= 1.0 or part is parts[-1]:
                save_stats(s, stats, hook)
                last_save, dirty = time.monotonic(), False
            bar.advance(name, part)
        built = publish_model(s.lake, s.manifest, name)  # renames into place, saves
        s.inventory.forget(f"model:{name}")  # ref() reads the published files from now on
        dirty = True
        return built
    finally:
        if s.manifest.unstage(name):  # a failure: all of it goes, and ref()/the catalog
            s.inventory.forget(f"model:{name}")  # read the published files again
        if dirty:
            save_stats(s, stats, hook)


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def execute(
    s: Session,
    plan: list[PartPlan],
    run_tests: bool = True,
    progress: bool | str = False,
    result: BuildResult | None = None,
    fail_fast: bool = True,
) -> BuildResult:
    """Build the plan here, model by model, running each model's data tests once it is published."""
    result = result or BuildResult()
    track = result.tracker = BuildTracker(s.project, s.dag, s.lake, fail_fast)
    result.plan = plan
    t_build = time.monotonic()
    storage_down = False  # a StorageError ended the build: saving state would fail the same way
    by_model: dict[str, list[PartPlan]] = {}
    for p in plan:
        by_model.setdefault(p.model, []).append(p)
    hook = KillHook()
    built_files: dict[str, list[FileInfo]] = {}
    result.dropped = drop_obsolete(s)
    known = s.manifest.referenced() | {d["path"] for d in s.manifest.pending_deletions}
    try:
        with Progress(progress, by_model) as bar:
            for name, parts in by_model.items():
                if track.skipped(name):
                    continue
                try:
                    built_files[name] = build_model(s, name, parts, result, known, hook, bar)
                    stats = result.stats[name]
                    model = s.project.models[name]
                    outcome = (
                        datatests.run_model_tests(s.renderer, model, built_files[name]) if run_tests else []
                    )
                    result.tests.extend(outcome)
                    # the next model starts from what this one left resident: hand the freed heap back
                    release_memory()
                    track.tests_done(
                        name,
                        [p.pid for p in parts] if run_tests else [],
                        outcome,
                        stats.partitions,
                        stats.seconds,
                    )
                except (BuildError, CompileError) as e:
                    track.error(name, e)
            if run_tests:
                outcome = datatests.run_sql_tests(s.renderer, built_files)
                result.tests.extend(outcome)
                datatests.raise_on_failure(outcome)
    except BaseException as e:
        # the storage gone: its first error is the one to report (saving state fails the same way)
        storage_down = isinstance(e, StorageError)
        with contextlib.suppress(*((StorageError,) if storage_down else ())):
            track.save()
        raise
    else:
        track.save()
    finally:
        result.seconds = time.monotonic() - t_build
        result.peak_rss = max(result.peak_rss, _rss())
        if plan:
            s.manifest.last_build = {
                "finished_at": time.time(),
                "seconds": round(result.seconds, 3),
                "peak_rss": result.peak_rss,
                "models": {n: vars(st) for n, st in result.stats.items()},
            }
            with contextlib.suppress(*((StorageError,) if storage_down else ())):
                s.manifest.save()
    return result
