"""`daedalus bench`: speed and memory of builds, scaling, incremental appends and the collector.

    from daedalus.devkit.bench import run_bench
    doc = run_bench(["build"], hours=2)      # the figures, as written to --json

Modules: `measure` (peak RSS of a process tree, timers, worker processes), `worker` (one measured
task per fresh process), `suite` (the scenarios and targets), `report` (rich tables).
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

SECTIONS = ("build", "scaling", "incremental", "collector", "updates")


def run_bench(
    sections: list[str],
    hours: float = 24.0,
    workdir: str | Path | None = None,
    keep: bool = False,
    overrides: dict[str, Any] | None = None,
    json_path: str | Path | None = None,
    messages: int = 50_000,
    incremental_days: int = 7,
    profiles: tuple[str, ...] = ("default", "pi"),
    sizes: tuple[int, ...] = (1, 2, 4),
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the named sections in one process tree, one after the other; return the result document
    (also written to `json_path` when given). Data and lakes live under `workdir` (a temporary
    directory removed afterwards unless `keep`)."""
    from daedalus.devkit.bench.measure import write_json
    from daedalus.devkit.bench.sections import build_section, updates_section
    from daedalus.devkit.bench.suite import BenchSuite, load_average

    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown bench sections {unknown}; allowed: {', '.join(SECTIONS)}")
    tmp = None
    if workdir is None:
        tmp = tempfile.mkdtemp(prefix="daedalus-bench-")
        workdir = tmp
    suite = BenchSuite(workdir, hours=hours, overrides=overrides, log=log, keep_lakes=keep)
    suite.results["_started"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    suite.results["_load_start"] = load_average()
    suite.max_days = max(
        [1]
        + [max(sizes) for s in sections if s == "scaling"]
        + [incremental_days for s in sections if s == "incremental"]
    )
    try:
        for s in sections:
            if s == "build":
                build_section(suite)
            elif s == "scaling":
                suite.scaling_section(sizes=sizes, profiles=profiles)
            elif s == "incremental":
                suite.incremental_section(incremental_days)
            elif s == "collector":
                suite.collector_section(messages)
            elif s == "updates":
                updates_section(suite)
            if json_path is not None:  # after every section: a long run killed late keeps what it measured
                write_json(json_path, suite.document())
        return suite.document()
    finally:
        if tmp is not None and not keep:
            shutil.rmtree(tmp, ignore_errors=True)
