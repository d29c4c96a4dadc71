"""The `daedalus` command line: a thin layer over the library.

Each command calls one library function and turns a DaedalusError into one line and its exit code
(`--debug` shows the traceback). Commands live in `cli_*.py` modules by area; heavy libraries
(duckdb, numba, ccxt) are imported inside commands so `daedalus --help` starts fast.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import typer

from daedalus.errors import DaedalusError

app = typer.Typer(
    name="daedalus",
    help="Collect crypto market data, build silver/gold features with DuckDB, query the lake.\n\n"
    "Example: daedalus demo",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@dataclass
class Globals:
    config_path: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    debug: bool = False

    announced: bool = False

    def config(self):
        """The effective config (defaults → YAML (--config, DAEDALUS_CONFIG or the nearest
        daedalus.yaml) → environment → CLI flags)."""
        from daedalus.project_file import load

        return load(self.config_path, self.overrides)[0]

    def lake_config(self, warn_empty: bool = True):
        """The config of a command that reads the lake: says once, on stderr, which root it uses
        (and warns when it holds no bronze, unless `warn_empty` is False: `land` fills it)."""
        from daedalus.project_file import announce_root, load

        cfg, source = load(self.config_path, self.overrides)
        if not self.announced:
            self.announced = True
            announce_root(cfg, source, warn_empty=warn_empty)
        return cfg


STATE = Globals()


@app.callback()
def _main(
    config: str = typer.Option(None, "--config", "-c", envvar="DAEDALUS_CONFIG", help="YAML config file."),
    root: str = typer.Option(None, "--root", help="Lake root (local path or s3://bucket/prefix)."),
    threads: int = typer.Option(None, "--threads", help="DuckDB threads."),
    memory_limit: str = typer.Option(None, "--memory-limit", help="DuckDB memory limit, e.g. 512MB."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    STATE.config_path = config
    STATE.debug = debug
    STATE.announced = False
    STATE.overrides = {"storage.root": root, "duckdb.threads": threads, "duckdb.memory_limit": memory_limit}


def _register_commands() -> None:
    from daedalus.cli.usage import install_help_metavars

    install_help_metavars()
    from daedalus.cli import build as cli_build
    from daedalus.cli import collect as cli_collect
    from daedalus.cli import ops as cli_ops

    for module in (cli_build, cli_collect, cli_ops):
        module.register(app)


_register_commands()


def main(argv: list[str] | None = None) -> None:
    """The console script: run the app and turn every outcome into an exit code the shell sees.

    DaedalusError → one line, its exit code; a usage error → one line (click's suggestion kept), 2;
    `typer.Exit(n)` → n (typer returns it in non-standalone mode instead of raising).
    """
    from daedalus.build.selection import expand_command_line
    from daedalus.cli.usage import one_line, usage_error_classes

    usage_errors = usage_error_classes()
    argv = expand_command_line(list(sys.argv[1:] if argv is None else argv))  # `--select a b` like dbt
    try:
        code = app(args=argv, prog_name="daedalus", standalone_mode=False)
    except DaedalusError as e:
        if STATE.debug:
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
        if STATE.debug:
            raise
        print(f"error: {one_line(e)}", file=sys.stderr)
        sys.exit(getattr(e, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)
