"""The build: project → compiled SQL → stale partitions → files, manifest, data tests, catalog.

Its public API (daedalus/build/api.py) is available here: `from daedalus import build` then
`build.build(config)`, `build.plan_build(...)`, `build.compile_sql(...)`, `build.open_session(...)`.
Loaded on first use (PEP 562): importing a light submodule (`daedalus.build.project` for the CLI's
--help) must not load the lake, pyarrow and DuckDB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from daedalus.build.api import (
        BuildResult,
        ModelStats,
        PartPlan,
        Session,
        build,
        build_history,
        compile_sql,
        connect,
        example_sql,
        last_test_results,
        list_models,
        load_failed,
        open_session,
        parse_partition,
        plan_build,
        rewrite_catalog,
        run,
        test,
    )

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


def __getattr__(name: str) -> Any:
    if name in __all__:
        from daedalus.build import api

        return getattr(api, name)
    raise AttributeError(f"module 'daedalus.build' has no attribute {name!r}")
