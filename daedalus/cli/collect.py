"""CLI commands of the collector: status, collect (assembled by daedalus/cli/app.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from daedalus.cli.context import global_options
from daedalus.cli.options import Days, MaxAge


def status_command(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help='Print {"collector": health file, "lake": coverage} as JSON.')
    ] = False,
    days: Days = 1,
    max_age: MaxAge = None,
) -> None:
    """Show the collector's health (per stream last message, received/written/dropped, gaps) and the
    lake's coverage (per series an hour strip of rows, breaks, losses, rejects; freshness).

    Either part is left out when it is not there (no health file: no collector writes here; no
    catalog: nothing built yet), and it is an error when both are missing. Exits 1 when the health
    file has not been updated for 30 s (collector stopped), else 10 when a series is stale.

    Example: daedalus status --max-age 2h || notify-send 'daedalus needs a look'
    """
    import json

    from daedalus.cli.coverage import STALE_EXIT, max_age_option, print_coverage
    from daedalus.collector.health import format_health, health_path, is_stale, read_health
    from daedalus.errors import StorageError
    from daedalus.serve.health import gather

    seconds = max_age_option(max_age)
    cfg = global_options(ctx).config()
    from daedalus.collector.pipeline import local_root

    # the collector's root (raw segments, default health file); an explicit health_file needs none
    root = "" if cfg.ingestion.health_file else local_root(cfg)
    doc: dict | None = None
    try:
        doc = read_health(health_path(root, cfg.ingestion.health_file))
    except StorageError as e:
        missing = e
    lake = gather(cfg, None, days, seconds)
    if doc is None and not lake.series:
        raise missing
    if as_json:
        out = {"collector": doc, "lake": lake.as_json() if lake.series else None}
        typer.echo(json.dumps(out, indent=1, default=str))
    else:
        if doc is not None:
            typer.echo(format_health(doc))
        else:
            typer.echo(f"collector: {missing}")
        if lake.series:
            typer.echo("")
            print_coverage(lake)
    if doc is not None and is_stale(doc):
        raise typer.Exit(1)  # monitoring can alert on `daedalus status || ...`
    if lake.series and lake.stale():
        raise typer.Exit(STALE_EXIT)


def collector_allocator() -> None:
    """Arrow buffers from malloc in a collector process (unless the user chose a pool): pyarrow's
    default mimalloc pool keeps the pages of each flush's short-lived buffers mapped, ~20 MB more peak
    RSS in `daedalus bench collect`. Read by pyarrow at import, so it must run before that."""
    import os

    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")


def _split(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def collect_command(
    ctx: typer.Context,
    sources: Annotated[
        str | None, typer.Option("--sources", help="Comma list: ccxt,coinbase (default: ingestion.sources).")
    ] = None,
    exchanges: Annotated[
        str | None,
        typer.Option("--exchanges", help="Comma list of ccxt.pro exchange ids, e.g. binanceus,okx."),
    ] = None,
    symbols: Annotated[
        str | None, typer.Option("--symbols", help="Comma list of ccxt symbols, e.g. BTC/USDT,ETH/USDT.")
    ] = None,
    channels: Annotated[
        str | None, typer.Option("--channels", help="Comma list: ticker,trades,orderbook,book_updates.")
    ] = None,
    seconds: Annotated[
        float | None,
        typer.Option("--seconds", help="Stop after this many seconds (default: run until Ctrl-C)."),
    ] = None,
    log_interval: Annotated[
        float,
        typer.Option(
            "--log-interval",
            min=1.0,
            help="Without a terminal: seconds between progress log lines "
            "(on a terminal a live table is shown).",
        ),
    ] = 60.0,
) -> None:
    """Collect live market data into raw Parquet segments (settings from `ingestion.*`).

    Runs until Ctrl-C / SIGTERM (or --seconds), then closes every segment into raw/ready/.

    Example: daedalus collect --exchanges binanceus --symbols BTC/USDT,ETH/USDT --channels trades,orderbook
    """
    collector_allocator()
    import asyncio
    import contextlib
    import json
    import os
    import signal
    import sys

    from daedalus.collector.pipeline import run_collect

    options = global_options(ctx)
    for key, value in (
        ("sources", sources),
        ("exchanges", exchanges),
        ("symbols", symbols),
        ("channels", channels),
    ):
        if value:
            options.overrides[f"ingestion.{key}"] = _split(value)
    cfg = options.config()

    from daedalus.cli.collect_display import show_progress
    from daedalus.collector.health import health_path
    from daedalus.collector.pipeline import local_root

    async def main() -> dict:
        stop, started, shown = asyncio.Event(), asyncio.Event(), asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        task = asyncio.ensure_future(
            run_collect(cfg, stop, duration=seconds, on_started=lambda _: started.set())
        )
        display = asyncio.ensure_future(
            show_progress(
                health_path(local_root(cfg), cfg.ingestion.health_file), shown, interval=log_interval
            )
        )
        try:
            # A signal while the collectors still start (ccxt loading markets can wait for its
            # timeout): nothing is written yet, so cancel at once instead of waiting for it.
            interrupt = asyncio.ensure_future(stop.wait())
            ready = asyncio.ensure_future(started.wait())
            await asyncio.wait([task, interrupt, ready], return_when=asyncio.FIRST_COMPLETED)
            interrupt.cancel()
            ready.cancel()
            if stop.is_set() and not started.is_set() and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, 2.0)
                # Leaving asyncio.run would join the resolver thread ccxt left in getaddrinfo (its
                # timeout, 7.5 s and more); nothing is written yet, so exit here.
                typer.echo("interrupted while the collectors were starting: nothing was written", err=True)
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(130)
            return await task
        finally:
            shown.set()
            await display

    if "ccxt" in cfg.ingestion.sources:
        # seconds of imports: outside the event loop, Ctrl-C interrupts them at once (inside it, the
        # loop's signal handler would wait for them to finish)
        import ccxt.pro  # noqa: F401
    summary = asyncio.run(main())
    typer.echo(json.dumps(summary, indent=1, default=str))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("status")(status_command)
    app.command("collect")(collect_command)
