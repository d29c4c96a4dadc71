"""`daedalus backfill`: trade history from before collection began (assembled by daedalus/cli/app.py)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import typer

from daedalus.cli.context import global_options

# exchange id -> a callable given the ccxt exchange before use (the devkit and tests point it at a fake)
CONFIGURE: dict[str, Any] = {}


def _ms(value: str, option: str) -> int:
    from daedalus.errors import ConfigError

    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{option}: '{value}' is not an ISO date or time (e.g. 2024-08-08 or 2024-08-08T12:00)"
        ) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1000)


def backfill_command(
    ctx: typer.Context,
    exchange: Annotated[
        str,
        typer.Option(
            "--exchange", help="ccxt exchange id: binance, okx, kraken, coinbase, bybit (last 60 only)."
        ),
    ],
    symbol: Annotated[str, typer.Option("--symbol", help="ccxt symbol, e.g. BTC/USDT.")],
    start: Annotated[
        str, typer.Option("--start", help="First trade time, ISO (UTC unless an offset is given).")
    ],
    end: Annotated[str, typer.Option("--end", help="End time (exclusive), ISO.")],
    page_timeout: Annotated[
        float,
        typer.Option(
            "--page-timeout", help="Seconds one page may wait on the venue's 429/418 before giving up."
        ),
    ] = 600.0,
    ohlcv: Annotated[
        str | None,
        typer.Option(
            "--ohlcv",
            help="Fetch candles of this ccxt timeframe (e.g. 1m) into the bronze `ohlcv` channel instead of "
            "trades: for a venue with no trade history that far back (Bybit).",
        ),
    ] = None,
) -> None:
    """Fetch a venue's trade history over REST into raw segments (then `daedalus land`), marked source='rest'.

    Resumable after kill -9 (a cursor in _state/backfill/ moves only after each page is durable) and
    idempotent (a finished range writes nothing again); waits as the venue says on 429/418.
    Binance pages its history by id only with an API key: set BINANCE_API_KEY (read-only is enough).
    Bybit serves only its last 60 trades: the older part of a range is reported unavailable (exit 6),
    after what it serves is written. Per-venue table: docs/exchanges.md "Healing and backfill".

    Example: daedalus backfill --exchange binance --symbol BTC/USDT --start 2024-08-08 --end 2024-08-09
    """
    import asyncio
    from pathlib import Path

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from daedalus.collector.backfill import run_backfill
    from daedalus.collector.pipeline import local_root

    cfg = global_options(ctx).config()
    root = local_root(cfg)  # raw segments, where `land` finds them (a local spool for a remote lake)
    start_ms, end_ms = _ms(start, "--start"), _ms(end, "--end")
    bar = Progress(
        TextColumn(f"{exchange} {symbol}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%  {task.fields[rows]} rows  {task.fields[pages]} pages"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        transient=False,
    )
    task = bar.add_task("backfill", total=end_ms - start_ms, rows=0, pages=0)

    def show(p: Any) -> None:
        done = (end_ms - start_ms) if p.done else p.covered_ms
        bar.update(task, completed=done, rows=p.rows, pages=p.pages)

    kw: dict[str, Any] = {
        "configure": CONFIGURE.get(exchange),
        "on_progress": show,
        "page_deadline_s": page_timeout,
    }
    with bar:
        if ohlcv is not None:
            from daedalus.collector.backfill_ohlcv import run_ohlcv_backfill

            job = run_ohlcv_backfill(Path(root), exchange, symbol, ohlcv, start_ms, end_ms, **kw)
        else:
            job = run_backfill(Path(root), exchange, symbol, start_ms, end_ms, **kw)
        prog = asyncio.run(job)
    what = f"{ohlcv} bars" if ohlcv is not None else "rows"
    typer.echo(
        f"backfill {exchange} {symbol}: {prog.rows} {what} in {prog.pages} pages; run `daedalus land` next"
    )
    if prog.unavailable:
        from daedalus.errors import ExchangeError

        # what the venue serves is written; the rest of the range cannot be had from it
        raise ExchangeError(f"backfill {exchange} {symbol}: incomplete: {prog.unavailable}")


def register(app: typer.Typer) -> None:
    app.command("backfill")(backfill_command)
