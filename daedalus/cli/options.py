"""Options that several commands share, defined once (`Annotated` aliases, like sqlite-utils'
option decorators): the same flag has the same spelling, type and help everywhere.

    def run_command(select: Select = None, exclude: Exclude = None, start: Start = None, ...)

`select_option(help)` / `exclude_option(help)` give the same flag with a command-specific help.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

SELECT_HELP = (
    "Models: name or layer.name (wildcards: gold.*), +name / name+ (with parents / children), "
    "2+name / name+1 (N edges), tag:x, layer:gold; several: space- or comma-separated; "
    "a&b: both."
)


def select_option(help: str = SELECT_HELP) -> Any:  # noqa: A002 - typer's keyword
    return typer.Option("--select", "-s", help=help)


def exclude_option(help: str = "Models to leave out.") -> Any:  # noqa: A002
    return typer.Option("--exclude", help=help)


# the app's global options (daedalus/cli/app.py)
ConfigPath = Annotated[
    str | None, typer.Option("--config", "-c", envvar="DAEDALUS_CONFIG", help="YAML config file.")
]
Root = Annotated[str | None, typer.Option("--root", help="Lake root (local path or s3://bucket/prefix).")]
Threads = Annotated[int | None, typer.Option("--threads", help="DuckDB threads.")]
MemoryLimit = Annotated[str | None, typer.Option("--memory-limit", help="DuckDB memory limit, e.g. 512MB.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks.")]

# model selection and the build window (build, run, retry, test, ls, compile ...)
Select = Annotated[list[str] | None, select_option()]
Exclude = Annotated[list[str] | None, exclude_option()]
Start = Annotated[str | None, typer.Option("--start", help="First date to build (YYYY-MM-DD).")]
End = Annotated[str | None, typer.Option("--end", help="Last date to build (YYYY-MM-DD).")]
FullRefresh = Annotated[bool, typer.Option("--full-refresh", help="Rebuild every partition.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the partitions that would be rewritten.")]
FailFast = Annotated[
    bool,
    typer.Option(
        "--fail-fast",
        "-x",
        help="Stop at the first model that fails (default: "
        "build every model that does not depend on it, skip those that do).",
    ),
]

# the lake's coverage (status, coverage)
Days = Annotated[int, typer.Option("--days", help="UTC days of lake coverage, one character per hour.")]
MaxAge = Annotated[
    str | None,
    typer.Option(
        "--max-age",
        help="A series is stale when its newest row is older than this: '2h', '90 minutes', or seconds "
        "(default: status.max_age_seconds).",
    ),
]
