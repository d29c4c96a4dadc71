"""The `daedalus` command line: a thin layer over the library.

Each command calls one library function and turns a DaedalusError into one line and its exit code
(`--debug` shows the traceback). This module assembles the app: the global options (a
`GlobalOptions` in `ctx.obj`, daedalus/cli/context.py), the command modules by area (cli/build.py,
cli/serve.py, cli/collect.py, cli/ops.py, cli/coverage.py, cli/backfill.py; none of them imports
this one) and the commands other packages contribute through the `daedalus.commands` entry-point
group (the devkit's `demo` and `bench`, see pyproject.toml). Heavy libraries (duckdb, numba, ccxt) are
imported inside commands so `daedalus --help` starts fast.
"""

from __future__ import annotations

import sys

import typer

from daedalus.cli.context import GlobalOptions
from daedalus.cli.options import ConfigPath, Debug, MemoryLimit, Root, Threads
from daedalus.errors import DaedalusError

PLUGIN_GROUP = "daedalus.commands"  # entry points: `name = "module:register"`, register(app) adds commands

app = typer.Typer(
    name="daedalus",
    help="Collect crypto market data, build silver/gold features with DuckDB, query the lake.\n\n"
    "Example: daedalus demo",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _main(
    ctx: typer.Context,
    config: ConfigPath = None,
    root: Root = None,
    threads: Threads = None,
    memory_limit: MemoryLimit = None,
    debug: Debug = False,
) -> None:
    options = ctx.ensure_object(GlobalOptions)  # main() hands one in, to see --debug after an error
    options.config_path = config
    options.debug = debug
    options.announced = False
    options.overrides = {"storage.root": root, "duckdb.threads": threads, "duckdb.memory_limit": memory_limit}


def _load_plugins(target: typer.Typer) -> None:
    """Let installed packages add commands (entry-point group `daedalus.commands`), in name order.

    A plugin that fails to load costs its commands and one warning line, never the whole CLI."""
    from importlib.metadata import entry_points

    for ep in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        try:
            ep.load()(target)
        except Exception as e:  # noqa: BLE001 - a broken plugin must not take `daedalus` down with it
            print(
                f"warning: commands of plugin '{ep.name}' ({ep.value}) not loaded: {type(e).__name__}: {e}",
                file=sys.stderr,
            )


def _register_commands() -> None:
    from daedalus.cli import backfill as cli_backfill
    from daedalus.cli import build as cli_build
    from daedalus.cli import collect as cli_collect
    from daedalus.cli import coverage as cli_coverage
    from daedalus.cli import ops as cli_ops
    from daedalus.cli import serve as cli_serve
    from daedalus.cli.usage import install_help_metavars

    install_help_metavars()
    for module in (cli_build, cli_serve, cli_collect, cli_ops, cli_coverage, cli_backfill):
        module.register(app)
    _load_plugins(app)


_register_commands()


def main(argv: list[str] | None = None) -> None:
    """The console script: run the app and turn every outcome into an exit code the shell sees.

    DaedalusError → one line, its exit code; a usage error → one line (click's suggestion kept), 2;
    `typer.Exit(n)` → n (typer returns it in non-standalone mode instead of raising).
    """
    from daedalus.cli.argv import expand_command_line
    from daedalus.cli.usage import one_line, usage_error_classes
    from daedalus.fsio import fix_malloc_thresholds, tune_duckdb_allocator, use_system_arrow_pool

    usage_errors = usage_error_classes()
    for stream in (sys.stdout, sys.stderr):  # `build > f`, systemd, `| tee`: lines as they happen
        if not stream.isatty() and hasattr(stream, "reconfigure"):
            stream.reconfigure(line_buffering=True)
    options = GlobalOptions()
    argv = expand_command_line(list(sys.argv[1:] if argv is None else argv))  # `--select a b` like dbt
    if "collect" not in argv:
        use_system_arrow_pool()  # before anything imports pyarrow (daedalus/fsio.py)
        fix_malloc_thresholds()
        tune_duckdb_allocator()  # before anything loads DuckDB
    try:
        code = app(args=argv, prog_name="daedalus", standalone_mode=False, obj=options)
    except DaedalusError as e:
        if options.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except usage_errors as e:
        if options.debug:
            raise
        print(f"error: {one_line(e)}", file=sys.stderr)
        sys.exit(getattr(e, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)
