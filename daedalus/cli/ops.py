"""CLI commands of the lake: land, watch, sync, compact (assembled by daedalus/cli/app.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from daedalus.cli.context import global_options
from daedalus.cli.options import select_option


def land_command(ctx: typer.Context) -> None:
    """Move closed raw/ready segments into bronze hive partitions (crash-idempotent).

    Example: daedalus --root ./lake land
    """
    # a local lake: plain `land`; on S3: land into the local spool, push the bronze files verified
    from daedalus.land.lander import land_any

    cfg = global_options(ctx).lake_config(warn_empty=False)
    report = land_any(cfg)
    typer.echo(report.summary())
    if not report.segments and not report.quarantined and not report.errors:
        spool = cfg.ingestion.local_root or cfg.storage.root
        typer.echo(
            f"nothing to land: no closed segment under {spool}/raw/ready/ — `daedalus collect` writes "
            "them there (a segment closes at segment_max_mb or on a clean stop); is --root the "
            "collector's lake?",
            err=True,
        )
    if report.errors:
        raise typer.Exit(5)


def watch_command(
    ctx: typer.Context,
    poll_interval: Annotated[
        float | None,
        typer.Option("--poll-interval", help="Seconds between cycles (watch.poll_interval_seconds)."),
    ] = None,
    select: Annotated[list[str] | None, select_option("Models to build each cycle (default: all).")] = None,
    max_cycles: Annotated[
        int | None,
        typer.Option("--max-cycles", help="Stop after this many cycles (default: run until a signal)."),
    ] = None,
    stop_timeout: Annotated[
        float, typer.Option("--stop-timeout", help="Seconds a step may take to finish after SIGINT/SIGTERM.")
    ] = 20.0,
) -> None:
    """
    Land, build the touched partitions and run data tests in a loop; SIGINT/SIGTERM stop it cleanly (exit 0).

    Example: daedalus watch --poll-interval 30
    """
    from daedalus.build.watch import watch

    state = watch(
        global_options(ctx).lake_config(),
        poll_interval=poll_interval,
        max_cycles=max_cycles,
        select=select or None,
        stop_timeout=stop_timeout,
        echo=lambda line: typer.echo(line, err=True),
    )
    typer.echo(f"watch stopped after {state.cycles} cycles", err=True)


def sync_command(
    ctx: typer.Context,
    direction: Annotated[str, typer.Argument(help="push (local → S3) or pull (S3 → local).")],
    layer: Annotated[
        list[str] | None, typer.Option("--layer", help="bronze | silver | gold (repeatable; default all).")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only partitions dated on or after this day (YYYY-MM-DD).")
    ] = None,
    remote: Annotated[
        str | None, typer.Option("--remote", help="s3://bucket/prefix (default: storage.root when on S3).")
    ] = None,
    local: Annotated[
        str | None,
        typer.Option("--local", help="Local lake (default: storage.root, or ingestion.local_root)."),
    ] = None,
    workers: Annotated[int, typer.Option("--workers", help="Parallel transfers.")] = 8,
    move: Annotated[
        bool, typer.Option("--move", help="bronze only: delete each source once its copy is verified.")
    ] = False,
) -> None:
    """Copy lake files between a local root and S3: parallel, resumable, verified by size + ETag/MD5.

    Example: daedalus sync push --layer bronze --since 2024-08-01 --remote s3://my-bucket/lake
    """
    from daedalus.lake.sync import sync

    report = sync(global_options(ctx).config(), direction, layer or None, since, remote, local, workers, move)
    typer.echo(report.summary())


def compact_command(
    ctx: typer.Context,
    select: Annotated[list[str] | None, select_option("Models to compact (default: all).")] = None,
) -> None:
    """Rewrite partitions of older lakes (several part-*.parquet files) as one data.parquet each.

    Example: daedalus compact --select layer:silver
    """
    from daedalus.build.compact import compact

    report = compact(global_options(ctx).lake_config(), select=select or None)
    typer.echo(report.summary())


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("land")(land_command)
    app.command("watch")(watch_command)
    app.command("sync")(sync_command)
    app.command("compact")(compact_command)
