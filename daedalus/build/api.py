"""The build's public functions (what the CLI, the serve side, the benchmarks and the tests call).

    from daedalus import build as daedalus_build
    result = daedalus_build.build(config, select=["+orderbook_hf"], full_refresh=False, start="2024-08-08")
    result.rebuilt            # [(model, partition id), ...] in build order
    result.stats["trades"]    # ModelStats(rows, files, bytes, seconds, partitions)

`build` = plan + write + data tests + catalog; `run` skips the tests; `plan_build` only plans
(`--dry-run`); `test` runs the data tests over what the manifest holds; `compile_sql` renders one
model for one partition. How: planner.py (what is stale, and why), step.py (one partition),
execute.py (the local loop), distributed.py (Dask, shards).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from daedalus.build import datatests
from daedalus.build.catalog_views import refresh_catalog, refresh_stale_docs
from daedalus.build.execute import execute
from daedalus.build.materializations import MATERIALIZATIONS, PartPlan
from daedalus.build.materializations.base import partition_id
from daedalus.build.outcome import build_history, last_test_results, load_failed, record_tested
from daedalus.build.planner import plan
from daedalus.build.publish import claim_staging
from daedalus.build.session import Session, connect
from daedalus.build.step import BuildResult, ModelStats
from daedalus.errors import BuildError, ConfigError
from daedalus.fsio import is_local_root
from daedalus.serve.catalog import catalog_current

if TYPE_CHECKING:
    from daedalus.build.datatests import TestResult
    from daedalus.build.project import Project
    from daedalus.config import Config

__all__ = [
    "BuildResult",
    "ModelStats",
    "PartPlan",
    "Session",
    "build",
    "build_history",
    "compile_sql",
    "connect",
    "example_sql",
    "last_test_results",
    "list_models",
    "load_failed",
    "open_session",
    "parse_partition",
    "plan_build",
    "rewrite_catalog",
    "run",
    "test",
]


def open_session(
    config: Config,
    project: Project | None = None,
    udfs: bool = True,
    start: str | dt.date | None = None,
    end: str | dt.date | None = None,
) -> Session:
    return Session(config, project=project, udfs=udfs, start=start, end=end)


def plan_build(
    config: Config,
    select: Iterable[str] | str | None = None,
    exclude: Iterable[str] | str | None = None,
    start: str | dt.date | None = None,
    end: str | dt.date | None = None,
    full_refresh: bool = False,
    project: Project | None = None,
    udfs: bool = True,
) -> list[PartPlan]:
    """The partitions a build would rewrite (what `--dry-run` prints), in build order."""
    s = Session(config, project=project, udfs=udfs, start=start, end=end)
    try:
        return plan(s, s.select(select, exclude), full_refresh)
    finally:
        s.close()


def build(
    config: Config,
    select: Iterable[str] | str | None = None,
    exclude: Iterable[str] | str | None = None,
    start: str | dt.date | None = None,
    end: str | dt.date | None = None,
    full_refresh: bool = False,
    dry_run: bool = False,
    run_tests: bool = True,
    progress: bool | str = False,
    catalog: bool = True,
    project: Project | None = None,
    udfs: bool = True,
    fail_fast: bool = False,
) -> BuildResult:
    """Build the selected models: plan stale partitions, write them, run data tests, refresh the catalog.

    A model that fails skips its descendants; the others still build (unless `fail_fast`). Then it
    raises CompileError (exit 3) for a model that does not compile and BuildError (exit 4) for a
    model that fails to run or a failing data test; the error's `.result` holds the per-model outcomes.
    A failure that names a damaged bronze file (a page the footer check cannot see) repairs that file
    (land/bronze_guard.py) and builds again, up to 5 times.
    """
    args = dict(select=select, exclude=exclude, start=start, end=end, full_refresh=full_refresh)
    args |= dict(dry_run=dry_run, run_tests=run_tests, progress=progress, catalog=catalog)
    args |= dict(project=project, udfs=udfs, fail_fast=fail_fast)
    notes: list[str] = []
    for _ in range(5):
        try:
            result = _build_once(config, **args)  # type: ignore[arg-type]
        except BuildError as e:
            repaired = _repair_named(config, str(e))
            if not repaired:
                raise
            notes += repaired
            continue
        result.notes[:0] = notes
        return result
    return _build_once(config, **args)  # type: ignore[arg-type]


def _repair_named(config: Config, text: str) -> list[str]:
    if not is_local_root(config.storage.root) or ".parquet" not in text:
        return []
    from daedalus.land.bronze_guard import repair_named

    return repair_named(config.storage.root, text).messages


def _build_once(
    config: Config,
    select: Iterable[str] | str | None = None,
    exclude: Iterable[str] | str | None = None,
    start: str | dt.date | None = None,
    end: str | dt.date | None = None,
    full_refresh: bool = False,
    dry_run: bool = False,
    run_tests: bool = True,
    progress: bool | str = False,  # True: a bar; "lines": a line per model (no terminal)
    catalog: bool = True,
    project: Project | None = None,
    udfs: bool = True,
    fail_fast: bool = False,
) -> BuildResult:
    s = Session(config, project=project, udfs=udfs, start=start, end=end)
    try:
        if dry_run:
            planned = plan(s, s.select(select, exclude), full_refresh)
            return BuildResult(plan=planned, dry_run=True, dropped=list(s.dropped))
        with s.lake.lock("build"):
            # What the lake holds now: a build that finished after this session loaded must not be
            # overwritten by a stale manifest.
            notes = guard_bronze(s.config)  # a damaged bronze file is repaired, not fatal to every build
            claim_staging(s.lake, s.staging)  # a killed build's batch is then known as junk
            s.reload()
            s.purge_deletions()  # what a killed build left in the model folders, old trash
            planned = plan(s, s.select(select, exclude), full_refresh)
            result = BuildResult(notes=notes)
            args = {
                "exclude": list(exclude or []) if not isinstance(exclude, str) else [exclude],
                "start": s.start,
                "end": s.end,
                "run_tests": run_tests,
            }
            try:
                execute(
                    s, planned, run_tests=run_tests, progress=progress, result=result, fail_fast=fail_fast
                )
            except BaseException as e:
                # After a failure too, the catalog follows the manifest (it holds every partition
                # written so far); but the build's own error is the one to report.
                if catalog and result.stats:
                    with contextlib.suppress(Exception):
                        s.purge_deletions(refresh_catalog(s))
                if result.tracker is not None:
                    with contextlib.suppress(Exception):
                        result.tracker.record_last_build(args)
                e.result = result  # type: ignore[attr-defined]  # the CLI prints its summary
                raise
            failed = bool(result.tracker and result.tracker.errors)
            if catalog and (planned or result.dropped or not catalog_current(s.config)):
                with contextlib.suppress(*((Exception,) if failed else ())):  # the build's error wins
                    s.purge_deletions(refresh_catalog(s))
            elif catalog and not failed:
                result.docs_refreshed = refresh_stale_docs(s)  # docs only: nothing to rebuild
            if result.tracker is not None:
                result.tracker.record_last_build(args)
                result.tracker.raise_if_failed(result)
            return result
    finally:
        s.close()


def guard_bronze(config: Config) -> list[str]:
    """Repair damaged bronze files of a local lake before anything reads them (land/bronze_guard.py)."""
    if not is_local_root(config.storage.root):
        return []  # bronze_guard repairs files on this machine only
    from daedalus.land.bronze_guard import check_bronze

    return check_bronze(config.storage.root).messages


def run(config: Config, **kwargs: Any) -> BuildResult:
    """`build` without data tests."""
    kwargs["run_tests"] = False
    return build(config, **kwargs)


def test(
    config: Config,
    select: Iterable[str] | str | None = None,
    exclude: Iterable[str] | str | None = None,
    project: Project | None = None,
    udfs: bool = True,
) -> list[TestResult]:
    """Run the data tests of the selected models over every partition the manifest holds."""
    s = Session(config, project=project, udfs=udfs)
    try:
        names = s.select(select, exclude)
        results: list[TestResult] = []
        tested: dict[str, list[TestResult]] = {}  # models with files: their sticky failure record
        for name in names:
            model = s.project.models[name]
            writes = MATERIALIZATIONS[model.materialized].writes_files
            files = None if not writes else [f for ip in s.parts(f"model:{name}").values() for f in ip.files]
            got = datatests.run_model_tests(s.renderer, model, files)
            if writes and files:
                tested[name] = got
            results.extend(got)
        results.extend(datatests.run_sql_tests(s.renderer, set(names), all_files=True))
        # Failures are remembered like a build's: the next build rebuilds those partitions, and the
        # catalog stops serving their rows now rather than after that build (docs/contracts.md).
        if record_tested(s.lake, s.project, tested, dry=True):  # the lock only when there is news
            with s.lake.lock("build"):
                if record_tested(s.lake, s.project, tested) and catalog_current(s.config):
                    s.reload()
                    refresh_catalog(s)
        return results
    finally:
        s.close()


def rewrite_catalog(config: Config) -> str:
    """`daedalus catalog`: write the catalog now, whatever the last one was (under the build lock)."""
    from daedalus.serve.catalog import catalog_path

    s = Session(config)
    try:
        with s.lake.lock("build"):
            for note in guard_bronze(config):  # a damaged bronze file would fail its source's view
                print(f"warning: {note}", file=sys.stderr)
            refresh_catalog(s, force=True)
            return catalog_path(config)
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
            raise ConfigError(
                f"--partition: '{item}' is not key=value (e.g. exchange=x,symbol=BTC/USDT,date=2024-01-02)"
            )
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _part_for(s: Session, name: str, keys: dict[str, str] | None) -> PartPlan | None:
    """The partition to compile: the given keys, else the newest candidate (None for an inlined model)."""
    model = s.project.models[name]
    mat = MATERIALIZATIONS[model.materialized]
    if not mat.writes_files:
        return None
    if not mat.partitioned:
        return PartPlan(model.name, "", {})
    wanted = mat.relation_keys(model)
    if keys is None:
        cands = mat.candidates(s.inventory, model)
        if cands:
            return cands[-1]
        keys = {k: ("__none__" if k != "date" else dt.date.today().isoformat()) for k in wanted}
    missing = [k for k in wanted if k not in keys]
    if missing:
        raise ConfigError(f"--partition: missing keys {missing} of {wanted}")
    keys = {k: keys[k] for k in wanted}
    return PartPlan(model.name, partition_id(keys), keys)


def example_sql(s: Session, name: str) -> tuple[str, str]:
    """(what it was compiled for, the SQL) of a model, for the docs: its newest partition, or the whole
    view/table."""
    model = s.project.models[name]
    mat = MATERIALIZATIONS[model.materialized]
    if not mat.writes_files:
        return model.materialized, s.compile_model_sql(model, None)
    if mat.partitioned:
        cands = mat.candidates(s.inventory, model)
        if not cands:
            return "no partition yet (no input data)", ""
        return f"partition {cands[-1].pid}", s.compile_model_sql(model, cands[-1])
    return model.materialized, s.compile_model_sql(model, PartPlan(name, "", {}))


def compile_sql(
    config: Config,
    name: str,
    partition: str | dict[str, str] | None = None,
    project: Project | None = None,
    udfs: bool = False,
    slice_no: int = 1,
) -> str:
    """The exact SQL a model runs: for a partitioned model, the query whose rows are written to one
    partition (the given one, else its newest candidate), or to its `slice_no`-th time slice when the
    model declares `slice_by`; for a view, its SQL over all files."""
    s = Session(config, project=project, udfs=udfs)
    try:
        model = s.project.model(name)
        mat = MATERIALIZATIONS[model.materialized]
        part = _part_for(s, model.name, parse_partition(partition))
        if part is None:
            return s.compile_model_sql(model, None)
        header = f"-- {model.relation} ({model.materialized}){' ' + part.pid if part.pid else ''}"
        slices = mat.slice_bounds(config, s.inventory, model, part)
        if slices is None:
            return header + "\n" + mat.select_sql(model, part, s.compile_model_sql(model, part))
        if not 1 <= slice_no <= len(slices):
            raise ConfigError(
                f"--slice: {slice_no} is not a slice of {model.relation} {part.pid} "
                f"(1..{len(slices)}: {24 / len(slices):g} h slices, "
                f"etl.slice_hours={config.etl.slice_hours})"
            )
        lo, hi = slices[slice_no - 1]
        header += (
            f" slice {slice_no}/{len(slices)} [{lo:%H:%M}, {'24:00' if hi.day != lo.day else f'{hi:%H:%M}'})"
            " UTC; the build runs one such query per slice"
        )
        sql = s.compile_model_sql(model, part, bounds=(lo, hi))
        return header + "\n" + mat.select_sql(model, part, sql, (lo, hi))
    finally:
        s.close()


def list_models(
    config: Config,
    select: Iterable[str] | str | None = None,
    exclude: Iterable[str] | str | None = None,
    project: Project | None = None,
) -> list[dict[str, Any]]:
    """The selected models in build order with what the manifest knows of them (for `ls` and docs)."""
    s = Session(config, project=project, udfs=False)
    try:
        out = []
        for name in s.select(select, exclude):
            m = s.project.models[name]
            ms = s.manifest.models.get(name)
            parts = ms.partitions if ms else {}
            out.append(
                {
                    "name": name,
                    "relation": m.relation,
                    "layer": m.layer,
                    "materialized": m.materialized,
                    "partition_by": m.config.partition_by,
                    "tags": m.config.tags,
                    "lookback": m.config.lookback,
                    "depends_on": [f"source:{n}" for _, n in m.sources] + list(m.refs),
                    "partitions": len(parts),
                    "rows": sum(p.rows for p in parts.values()),
                    "bytes": sum(p.bytes for p in parts.values()),
                    "path": str(m.path),
                    "builtin": m.builtin,
                }
            )
        return out
    finally:
        s.close()
