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

    def config(self):
        """The effective config (defaults → YAML → environment → CLI flags)."""
        from daedalus.config import load_config

        return load_config(self.config_path, self.overrides)


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
    STATE.overrides = {"storage.root": root, "duckdb.threads": threads, "duckdb.memory_limit": memory_limit}


def _register_commands() -> None:
    from daedalus import cli_build, cli_collect, cli_ops

    for module in (cli_build, cli_collect, cli_ops):
        module.register(app)


_register_commands()


def main() -> None:
    try:
        app(standalone_mode=False)
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
    except Exception as e:  # click usage errors carry their own exit code
        import click

        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(e.exit_code)
        raise
