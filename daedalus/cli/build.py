"""CLI commands of the build: build, run, retry, test, compile, ls, init (serving: cli/serve.py).

Each command calls one library function (the public API of daedalus.build, scaffold) and prints its
result; errors are DaedalusErrors that
`daedalus.cli.app.main` turns into one line and an exit code.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from daedalus.cli.context import global_options
from daedalus.cli.options import DryRun, End, Exclude, FailFast, FullRefresh, Select, Start, exclude_option

if TYPE_CHECKING:
    from daedalus.config import Config


def _cfg(ctx: typer.Context) -> Config:
    return global_options(ctx).lake_config()


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def print_plan(plan: list[Any], dropped: list[tuple[str, str]] | None = None) -> None:
    """One line per partition that would be rewritten: `<model> <partition> (<reason>)`."""
    for p in plan:
        typer.echo(f"{p.model} {p.pid or '(table)'} ({p.reason})")
    for model, pid in dropped or []:
        typer.echo(f"{model} {pid or '(table)'} (drop: partitioning or materialization changed)")
    typer.echo(f"{len(plan)} partition(s) would be rewritten", err=True)


def print_summary(result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    if not result.stats:
        if getattr(result, "docs_refreshed", False):
            console.print(
                f"0 partition(s) rebuilt in {result.seconds:.2f} s: a docs-only change, nothing to rebuild "
                "(the catalog's comments refreshed)"
            )
        else:
            console.print(f"0 partition(s) rebuilt in {result.seconds:.2f} s: everything is up to date")
        return
    table = Table(title="build summary")
    for col in ("model", "partitions", "rows", "files", "bytes", "seconds"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for s in result.stats.values():
        table.add_row(
            s.relation,
            str(s.partitions),
            f"{s.rows:,}",
            str(s.files),
            _human_bytes(s.bytes),
            f"{s.seconds:.2f}",
        )
    console.print(table)
    warned = sum(not t.passed for t in result.tests)
    line = (
        f"{len(result.plan)} partition(s) rebuilt in {result.seconds:.2f} s, "
        f"peak memory {_human_bytes(result.peak_rss)}"
    )
    if result.tests:
        line += f", {len(result.tests)} data test(s) passed" + (f" ({warned} warning(s))" if warned else "")
    console.print(line)


def print_outcomes(result: Any) -> None:
    """dbt-style: a line per model of the plan, then `PASS= WARN= ERROR= SKIP=` (also after a failure)."""
    from daedalus.build.outcome import model_lines, summary_line

    tracker = getattr(result, "tracker", None)
    if tracker is None:
        return
    for line in model_lines(tracker.outcomes):
        typer.echo(line)
    typer.echo(summary_line(tracker.outcomes))


def _build(
    cfg: Config,
    select: list[str],
    exclude: list[str],
    start: str | None,
    end: str | None,
    full_refresh: bool,
    dry_run: bool,
    run_tests: bool,
    fail_fast: bool = False,
) -> None:
    from daedalus.build import build
    from daedalus.errors import DaedalusError

    try:
        result = build(
            cfg,
            select=select,
            exclude=exclude,
            start=start,
            end=end,
            full_refresh=full_refresh,
            dry_run=dry_run,
            run_tests=run_tests,
            progress=True if sys.stderr.isatty() else "lines",  # a log gets a line per model as it ends
            fail_fast=fail_fast,
        )
    except DaedalusError as e:
        if getattr(e, "result", None) is not None:
            for note in e.result.notes:  # type: ignore[attr-defined]
                print(f"warning: {note}", file=sys.stderr)
            print_outcomes(e.result)  # type: ignore[attr-defined]
        raise
    for note in result.notes:
        print(f"warning: {note}", file=sys.stderr)
    if dry_run:
        print_plan(result.plan, result.dropped)
    else:
        print_summary(result)
        print_outcomes(result)


def build_command(
    ctx: typer.Context,
    select: Select = None,
    exclude: Annotated[
        list[str] | None, exclude_option("Models to leave out (same syntax as --select).")
    ] = None,
    start: Start = None,
    end: End = None,
    full_refresh: FullRefresh = False,
    dry_run: DryRun = False,
    executor: Annotated[
        str, typer.Option("--executor", help="local | dask (partitions as tasks on a Dask cluster).")
    ] = "local",
    scheduler: Annotated[
        str | None, typer.Option("--scheduler", help="Dask scheduler address, e.g. tcp://HOST:8786.")
    ] = None,
    shard: Annotated[
        str | None, typer.Option("--shard", help="i/n: build a disjoint 1/n of the partitions (e.g. 0/4).")
    ] = None,
    fail_fast: FailFast = False,
) -> None:
    """Build models incrementally (stale partitions only), run their data tests, refresh the catalog.

    Example: daedalus build --select +orderbook_hf --start 2024-08-08
    """
    if (executor != "local" or shard) and not dry_run:  # daedalus/build/distributed.py: Dask tasks or a shard
        from daedalus.build.distributed import build_distributed

        print_summary(
            build_distributed(
                _cfg(ctx),
                select=select or [],
                exclude=exclude or [],
                start=start,
                end=end,
                full_refresh=full_refresh,
                executor=executor,
                scheduler=scheduler,
                shard=shard,
            )
        )
        return
    _build(
        _cfg(ctx),
        select or [],
        exclude or [],
        start,
        end,
        full_refresh,
        dry_run,
        run_tests=True,
        fail_fast=fail_fast,
    )


def run_command(
    ctx: typer.Context,
    select: Select = None,
    exclude: Exclude = None,
    start: Start = None,
    end: End = None,
    full_refresh: FullRefresh = False,
    dry_run: DryRun = False,
    fail_fast: FailFast = False,
) -> None:
    """Build models like `build`, without running data tests.

    Example: daedalus run --select layer:silver
    """
    _build(
        _cfg(ctx),
        select or [],
        exclude or [],
        start,
        end,
        full_refresh,
        dry_run,
        run_tests=False,
        fail_fast=fail_fast,
    )


def retry_command(
    ctx: typer.Context,
    fail_fast: FailFast = False,
) -> None:
    """Build again the models the last build or run left ERROR or SKIP (with its --exclude, --start,
    --end; partitions whose tests failed are rebuilt and re-tested).

    Example: daedalus build; daedalus retry
    """
    from daedalus.build.outcome import load_retry
    from daedalus.lake import open_lake

    cfg = _cfg(ctx)
    models, args = load_retry(open_lake(cfg))
    if not models:
        typer.echo("nothing to retry: every model of the last build passed", err=True)
        return
    typer.echo(f"retrying {len(models)} model(s): {' '.join(models)}", err=True)
    _build(
        cfg,
        models,
        args.get("exclude") or [],
        args.get("start"),
        args.get("end"),
        False,
        False,
        run_tests=bool(args.get("run_tests", True)),
        fail_fast=fail_fast,
    )


def test_command(
    ctx: typer.Context,
    select: Select = None,
    exclude: Exclude = None,
) -> None:
    """Run the data tests of the selected models over every built partition.

    Example: daedalus test --select tag:orderbook
    """
    from daedalus.build import test
    from daedalus.build.datatests import raise_on_failure

    results = test(_cfg(ctx), select=select or [], exclude=exclude or [])
    for r in results:
        status = "PASS" if r.passed else ("WARN" if r.severity == "warn" else "FAIL")
        typer.echo(f"{status} {r.model} {r.name}" + (f" ({r.failures} rows)" if not r.passed else ""))
    typer.echo(
        f"{sum(r.passed for r in results)} passed, {sum(not r.passed for r in results)} failed", err=True
    )
    raise_on_failure(results)


def compile_command(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    partition: Annotated[
        str | None,
        typer.Option(
            "--partition",
            "-p",
            help="Partition keys, e.g. exchange=binanceus,symbol=BTC/USDT,date=2024-08-08 "
            "(default: the newest partition).",
        ),
    ] = None,
    slice_no: Annotated[
        int,
        typer.Option(
            "--slice",
            help="For a model built in time slices (slice_by): which "
            "slice of the day, 1-based (etl.slice_hours each).",
        ),
    ] = 1,
) -> None:
    """Print the exact SQL a model runs (for a partitioned model: for one partition, or one time
    slice of it).

    Example: daedalus compile orderbook --partition exchange=binanceus,symbol=BTC/USDT,date=2024-08-08
    """
    from daedalus.build import compile_sql

    typer.echo(compile_sql(_cfg(ctx), model, partition, slice_no=slice_no))


def ls_command(
    ctx: typer.Context,
    select: Select = None,
    exclude: Exclude = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List models in build order with their materialization, partitions, tags and parents.

    Example: daedalus ls --select layer:gold
    """
    import json

    from daedalus.build import list_models

    rows = list_models(_cfg(ctx), select=select or [], exclude=exclude or [])
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for col in ("model", "materialized", "partitions", "rows", "tags", "depends on"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["relation"],
            r["materialized"],
            str(r["partitions"]),
            f"{r['rows']:,}",
            ",".join(r["tags"]),
            ", ".join(r["depends_on"]),
        )
    Console(width=200).print(table)


def init_command(
    directory: Annotated[str, typer.Argument(help="Folder for the new project.")],
    force: Annotated[bool, typer.Option("--force", help="Write into a folder that is not empty.")] = False,
) -> None:
    """Scaffold a user project (daedalus.yaml, an example gold model and its YAML) beside the built-in models.

    Commands run inside the folder find its daedalus.yaml (paths in it are relative to the file).

    Example: daedalus init my_project && cd my_project && daedalus build
    """
    from daedalus.cli.scaffold import init_project

    for path in init_project(directory, force=force):
        typer.echo(str(path))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("build")(build_command)
    app.command("run")(run_command)
    app.command("retry")(retry_command)
    app.command("test")(test_command)
    app.command("compile")(compile_command)
    app.command("ls")(ls_command)
    app.command("init")(init_command)
