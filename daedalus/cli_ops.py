"""CLI commands (see daedalus/cli.py)."""

from __future__ import annotations

import typer


def land_command() -> None:
    """Move closed raw/ready segments into bronze hive partitions (crash-idempotent).

    Example: daedalus --root ./lake land
    """
    from daedalus.cli import STATE
    from daedalus.lake_s3 import land_any  # a local lake: plain `land`; on S3: land locally, push verified

    report = land_any(STATE.config())
    typer.echo(report.summary())
    if report.errors:
        raise typer.Exit(5)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("land")(land_command)
