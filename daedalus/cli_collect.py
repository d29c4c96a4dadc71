"""CLI commands (see daedalus/cli.py)."""

from __future__ import annotations

import typer


def status_command(
    as_json: bool = typer.Option(False, "--json", help="Print the raw health JSON."),
) -> None:
    """Show the running collector's health: per stream last message, received/written/dropped, gaps.

    Example: daedalus status
    """
    import json

    from daedalus.cli import STATE
    from daedalus.collector.health import format_health, health_path, read_health

    cfg = STATE.config()
    root = cfg.ingestion.local_root or cfg.storage.root
    doc = read_health(health_path(root, cfg.ingestion.health_file))
    typer.echo(json.dumps(doc, indent=1) if as_json else format_health(doc))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("status")(status_command)
