"""CLI commands (see daedalus/cli.py)."""

from __future__ import annotations

import typer


def status_command(
    as_json: bool = typer.Option(False, "--json", help="Print the raw health JSON."),
) -> None:
    """Show the running collector's health: per stream last message, received/written/dropped, gaps.

    Exits 1 when the health file has not been updated for 30 s (collector stopped).

    Example: daedalus status
    """
    import json

    from daedalus.cli import STATE
    from daedalus.collector.health import format_health, health_path, is_stale, read_health
    from daedalus.errors import ConfigError

    cfg = STATE.config()
    root = cfg.ingestion.local_root or cfg.storage.root
    if root.startswith("s3://") and not cfg.ingestion.health_file:
        raise ConfigError("ingestion.local_root: required to find the health file when storage.root is on S3")
    doc = read_health(health_path(root, cfg.ingestion.health_file))
    typer.echo(json.dumps(doc, indent=1) if as_json else format_health(doc))
    if is_stale(doc):
        raise typer.Exit(1)  # monitoring can alert on `daedalus status || ...`


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("status")(status_command)
