"""The devkit's commands, contributed to `daedalus` as a plugin: `daedalus demo` and the `daedalus bench`
group.

The product never imports the devkit: pyproject.toml declares this module's `register` in the
`daedalus.commands` entry-point group and daedalus/cli/app.py loads every entry of that group. Heavy
imports stay inside the commands (`daedalus --help` loads this module).
"""

from __future__ import annotations

from typing import Annotated

import typer

from daedalus.cli.context import global_options


def demo_command(
    ctx: typer.Context,
    seconds: Annotated[
        float, typer.Option("--seconds", help="How long to collect from the simulated market.")
    ] = 60.0,
    root: Annotated[
        str | None, typer.Option("--root", help="Lake root for the demo (default: ./daedalus-demo).")
    ] = None,
) -> None:
    """Run the whole pipeline on loopback: fake exchanges, real collectors, land, build, query.

    Needs no network and no credentials.

    Example: daedalus demo --seconds 30 --root /tmp/demo-lake
    """
    from daedalus.devkit.demo import demo_build_settings, demo_config, format_demo, run_demo

    lake = root or global_options(ctx).overrides.get("storage.root") or "./daedalus-demo"
    demo_config(lake, seconds)  # checks --seconds before anything starts
    typer.echo(f"demo: collecting {seconds:.0f}s from a simulated market on 127.0.0.1 into {lake} ...")
    result = run_demo(lake, seconds)
    typer.echo(format_demo(result))
    from daedalus.project_file import PROJECT_FILE, write_for_demo

    project = write_for_demo(lake, demo_build_settings())
    if project is not None:
        typer.echo(
            f"project:   {project} — `daedalus build`, `ls`, `query` ... "
            f"run in {project.parent} use this lake"
        )
    else:
        typer.echo(
            f"project:   {PROJECT_FILE} beside the lake points elsewhere and was kept; "
            f"use `daedalus --root {lake} ...`"
        )
    if result.build_error:
        raise typer.Exit(4)


def register(app: typer.Typer) -> None:
    """The `daedalus.commands` entry point: add `demo` and the `bench` group to the app."""
    from daedalus.devkit.bench.commands import register as register_bench

    app.command("demo")(demo_command)
    register_bench(app)
