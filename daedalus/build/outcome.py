"""What a build did to each model, like `dbt build` reports it, and the failures that stay sticky.

- Every model of the plan ends PASS (built, its data tests passed), WARN (built, a `severity: warn`
  test failed), ERROR (it failed to run, or an error-severity data test failed) or SKIP (a model it
  depends on ended ERROR in this build, so it was not built). A failure no longer stops the build
  unless `fail_fast`: models that do not depend on it still build.
- A partition whose error-severity tests failed is recorded in `_state/failed_tests.json`
  (`{model: {partition id: [test names]}}`). Every later build plans it again (reason
  `tests failed`) and re-runs its tests, until they pass; meanwhile the catalog's view of that model
  leaves its rows out (`catalog_filter`). `daedalus test` keeps the same record (`record_tested`):
  a partition it finds failing is rebuilt by the next build and leaves the catalog at once; one it
  finds passing again is cleared.
- `_state/last_build.json` keeps the models that ended ERROR or SKIP and the build's arguments, for
  `daedalus retry`, and the seconds per model of the last `HISTORY` builds (the health page's
  sparklines, daedalus/serve/health.py).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from daedalus.errors import BuildError

if TYPE_CHECKING:
    from daedalus.build.dag import Dag
    from daedalus.build.datatests import TestResult
    from daedalus.build.project import Project
    from daedalus.lake import Lake

FAILED_TESTS = "_state/failed_tests.json"
LAST_BUILD = "_state/last_build.json"
STATUSES = ("PASS", "WARN", "ERROR", "SKIP")
HISTORY = 30  # builds whose per-model durations last_build.json keeps


@dataclass
class ModelOutcome:
    model: str
    relation: str
    status: str  # PASS | WARN | ERROR | SKIP
    message: str = ""
    partitions: int = 0
    seconds: float = 0.0


def _read_json(lake: Lake, rel: str) -> dict[str, Any]:
    data = lake.read_bytes(rel)
    if not data:
        return {}
    try:
        doc = json.loads(data)
    except ValueError:
        return {}  # a torn write cannot happen (write_atomic); an edited file is simply reset
    return doc if isinstance(doc, dict) else {}


def load_failed(lake: Lake) -> dict[str, dict[str, list[str]]]:
    """model → partition id → names of the error-severity tests that failed on it."""
    return _read_json(lake, FAILED_TESTS)


def failed_keys(lake: Lake, manifest: Any) -> dict[str, list[dict[str, str]]]:
    """model → the partition keys of its failed partitions that the manifest still holds."""
    out: dict[str, list[dict[str, str]]] = {}
    for model, pids in load_failed(lake).items():
        for pid in pids:
            state = manifest.partition(model, pid)
            if state is not None:
                out.setdefault(model, []).append(dict(state.keys))
    return out


def failing_pids(prefix: str, results: list[TestResult]) -> dict[str, list[str]]:
    """partition id → names of the error-severity tests that failed on it (a model's lake prefix)."""
    prefix = prefix.rstrip("/") + "/"
    bad: dict[str, list[str]] = {}
    for r in results:
        if r.passed or r.severity == "warn":
            continue
        for d in r.failed_dirs or [prefix]:
            bad.setdefault(d[len(prefix) :] if d.startswith(prefix) else "", []).append(r.name)
    return bad


def record_tested(
    lake: Lake, project: Project, tested: dict[str, list[TestResult]], dry: bool = False
) -> bool:
    """`daedalus test` ran these models' tests over every partition: their sticky record becomes
    exactly what failed now (so the next build rebuilds it and the catalog leaves it out). True when
    the record changed."""
    failed = load_failed(lake)
    before = json.dumps(failed, sort_keys=True)
    for name, results in tested.items():
        bad = failing_pids(project.models[name].lake_prefix, results)
        if bad:
            failed[name] = bad
        else:
            failed.pop(name, None)
    if json.dumps(failed, sort_keys=True) == before:
        return False
    if dry:
        return True
    lake.write_atomic(FAILED_TESTS, json.dumps(failed, indent=1, sort_keys=True).encode())
    return True


def catalog_filter(keys: list[dict[str, str]]) -> str:
    """A WHERE clause leaving out the rows of these partitions ('' when none; a table: everything)."""
    from daedalus.sqltext import sql_ident, sql_str

    if not keys:
        return ""
    conds = []
    for k in keys:
        if not k:
            return " WHERE false"
        conds.append(
            "(" + " AND ".join(f"CAST({sql_ident(c)} AS VARCHAR) = {sql_str(v)}" for c, v in k.items()) + ")"
        )
    return f" WHERE NOT ({' OR '.join(conds)})"


class BuildTracker:
    """Per-model outcomes of one build, skip propagation and the sticky failed-test record."""

    def __init__(self, project: Project, dag: Dag, lake: Lake, fail_fast: bool = False) -> None:
        self.project, self.dag, self.lake = project, dag, lake
        self.fail_fast = fail_fast
        self.outcomes: dict[str, ModelOutcome] = {}
        self.skip_because: dict[str, str] = {}
        self.failed = load_failed(lake)
        self.errors: list[str] = []
        self.tests: dict[str, list[dict[str, Any]]] = {}  # model → this build's test verdicts

    # -- execution ---------------------------------------------------------------------------
    def skipped(self, name: str) -> bool:
        """True (and the model recorded SKIP) when a model it depends on failed in this build."""
        cause = self.skip_because.get(name)
        if cause is None:
            return False
        m = self.project.models[name]
        self.outcomes[name] = ModelOutcome(name, m.relation, "SKIP", f"upstream {cause} failed")
        return True

    def _skip_descendants(self, name: str) -> None:
        for child in self.dag.descendants(name):
            self.skip_because.setdefault(child, self.project.models[name].relation)

    def error(self, name: str, e: Exception, partitions: int = 0, seconds: float = 0.0) -> None:
        m = self.project.models[name]
        self.outcomes[name] = ModelOutcome(name, m.relation, "ERROR", str(e), partitions, seconds)
        self.errors.append(str(e))
        self._skip_descendants(name)
        if self.fail_fast:
            raise e

    def tests_done(
        self, name: str, built_pids: list[str], results: list[TestResult], partitions: int, seconds: float
    ) -> None:
        """Record a built model's outcome from its tests; mark or clear its failed partitions."""
        m = self.project.models[name]
        if results:
            self.tests[name] = [
                {"name": r.name, "passed": r.passed, "failures": r.failures, "severity": r.severity}
                for r in results
            ]
        failing = [r for r in results if not r.passed and r.severity != "warn"]
        bad = failing_pids(m.lake_prefix, results)
        sticky = self.failed.setdefault(name, {})
        for pid in built_pids:
            sticky.pop(pid, None)
        sticky.update(bad)
        if not sticky:
            self.failed.pop(name, None)
        warned = any(not r.passed and r.severity == "warn" for r in results)
        if failing:
            from daedalus.build.datatests import raise_on_failure

            try:
                raise_on_failure(failing)
            except BuildError as e:
                self.error(name, e, partitions, seconds)
            return
        self.outcomes[name] = ModelOutcome(
            name,
            m.relation,
            "WARN" if warned else "PASS",
            f"{sum(not r.passed for r in results)} warning(s)" if warned else "",
            partitions,
            seconds,
        )

    def save(self) -> None:
        self.lake.write_atomic(FAILED_TESTS, json.dumps(self.failed, indent=1, sort_keys=True).encode())

    def record_last_build(self, args: dict[str, Any]) -> None:
        again = [n for n, o in self.outcomes.items() if o.status in ("ERROR", "SKIP")]
        before = _read_json(self.lake, LAST_BUILD)
        tests = dict(before.get("tests", {}))  # models not built keep theirs
        tests.update({n: {"at": time.time(), "results": r} for n, r in self.tests.items()})
        now = time.time()
        entry = {
            "finished_at": now,
            "seconds": {
                n: round(o.seconds, 4) for n, o in self.outcomes.items() if o.status in ("PASS", "WARN")
            },
            "status": {n: o.status for n, o in self.outcomes.items()},
        }
        history = [h for h in before.get("history", []) if isinstance(h, dict)][-(HISTORY - 1) :] + [entry]
        doc = {
            "finished_at": now,
            "retry": again,
            "args": args,
            "outcomes": {n: o.status for n, o in self.outcomes.items()},
            "tests": tests,
            "history": history,
        }
        self.lake.write_atomic(LAST_BUILD, json.dumps(doc, indent=1).encode())

    def raise_if_failed(self, result: Any) -> None:
        """The build's failure as one BuildError carrying the result (the CLI prints its summary)."""
        if not self.errors:
            return
        more = f" (and {len(self.errors) - 1} more failure(s))" if len(self.errors) > 1 else ""
        err = BuildError(self.errors[0] + more)
        err.result = result  # type: ignore[attr-defined]
        raise err


def counts(outcomes: dict[str, ModelOutcome]) -> dict[str, int]:
    return {s: sum(o.status == s for o in outcomes.values()) for s in STATUSES}


def summary_line(outcomes: dict[str, ModelOutcome]) -> str:
    c = counts(outcomes)
    return (
        f"Done. PASS={c['PASS']} WARN={c['WARN']} ERROR={c['ERROR']} SKIP={c['SKIP']} TOTAL={len(outcomes)}"
    )


def model_lines(outcomes: dict[str, ModelOutcome]) -> list[str]:
    """One line per model, dbt-style: `1 of 5 PASS silver.trades .... 3 partition(s) in 1.20s`."""
    out = []
    n = len(outcomes)
    for i, o in enumerate(outcomes.values(), 1):
        detail = (
            f"{o.partitions} partition(s) in {o.seconds:.2f}s" if o.status in ("PASS", "WARN") else o.message
        )
        if o.status == "WARN":
            detail += f", {o.message}"
        out.append(f"{i} of {n} {o.status:<5} {o.relation} {detail}".rstrip())
    return out


def last_test_results(lake: Lake) -> dict[str, dict[str, Any]]:
    """model → {"at": epoch seconds, "results": [{name, passed, failures, severity}]} of the newest
    build that tested it (for the docs page)."""
    return dict(_read_json(lake, LAST_BUILD).get("tests", {}))


def build_history(lake: Lake) -> list[dict[str, Any]]:
    """The last builds, oldest first: [{"finished_at", "seconds": {model: s}, "status": {model: PASS...}}]."""
    return [h for h in _read_json(lake, LAST_BUILD).get("history", []) if isinstance(h, dict)]


def load_retry(lake: Lake) -> tuple[list[str], dict[str, Any]]:
    """The models the last build left ERROR or SKIP, and that build's arguments."""
    from daedalus.errors import ConfigError

    doc = _read_json(lake, LAST_BUILD)
    if not doc:
        raise ConfigError(f"{lake.url(LAST_BUILD)}: no build recorded yet; run `daedalus build` first")
    return list(doc.get("retry", [])), dict(doc.get("args", {}))


__all__ = [
    "BuildTracker",
    "ModelOutcome",
    "build_history",
    "catalog_filter",
    "counts",
    "failed_keys",
    "load_failed",
    "last_test_results",
    "load_retry",
    "model_lines",
    "summary_line",
]
