"""`daedalus coverage`: the lake's health page (daedalus/serve/health.py) compactly on a terminal.

One strip per series (exchange, symbol, channel), one character per UTC hour, coloured when the
terminal supports colour and plain letters otherwise, then the holes with the events behind them.
`--json` prints the whole gathering. Exit code 10 (`STALE_EXIT`) when a series' newest row is older
than `status.max_age_seconds` (or `--max-age`), so a cron job or systemd timer can alert on it.
`daedalus status` prints the running collector's health file and then these same strips.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from daedalus.cli.context import global_options
from daedalus.cli.options import Days, MaxAge

if TYPE_CHECKING:
    from daedalus.serve.health import Health

STALE_EXIT = 10
GLYPHS = {"ok": "#", "break": "B", "lost": "L", "rejected": "R", "empty": "_", "none": "."}
STYLES = {
    "ok": "green",
    "break": "bold dark_orange",
    "lost": "bold red",
    "rejected": "bold magenta",
    "empty": "bold yellow",
    "none": "grey50",
}


def strip_text(cells: list) -> str:  # noqa: ANN001 - health.Cell
    return "".join(GLYPHS[c.status] for c in cells)


def coverage_lines(h: Health) -> list[tuple[str, list[tuple[str, str]]]]:
    """The report as lines of (text, style) pieces; style '' = plain."""
    from daedalus.serve.health import ago

    width = max((len(s.key) for s in h.series), default=10) + 2
    n = len(h.hours)
    days = "".join(h.hours[i][:10].ljust(24) for i in range(0, n, 24))
    out: list[tuple[str, list[tuple[str, str]]]] = []
    out.append(("", [(f"lake coverage from {h.start}, {h.days} UTC day(s), one character per hour", "bold")]))
    if h.note:
        out.append(("", [(h.note, "bold red")]))
    out.append(("", [(" " * width + days, "")]))
    tens = "".join(str(int(x[11:13]) // 10) for x in h.hours)
    units = "".join(str(int(x[11:13]) % 10) for x in h.hours)
    out.append(("", [(" " * width + tens, "grey50")]))
    out.append(("", [(" " * width + units, "grey50")]))
    for s in h.series:
        pieces = [(s.key.ljust(width), "bold")]
        pieces += [(GLYPHS[c.status], STYLES[c.status]) for c in s.cells]
        age = "no row" if s.age_seconds is None else f"newest {s.last_ts[:19]}, {ago(s.age_seconds)}"
        pieces.append((f"  {age}", ""))
        if s.stale:
            pieces.append(("  STALE", "bold red"))
        out.append((s.key, pieces))
    holes = h.incidents()
    summary = f"{len(holes)} hole(s), {len(h.events)} event(s), {len(h.stale())} stale series"
    out.append(("", [(summary, "bold")]))
    events = {e["id"]: e for e in h.events}
    for hole in holes:
        why = "; ".join(
            f"{events[i]['event_type']}"
            + (f" {events[i]['count']} rows" if events[i]["count"] is not None else "")
            + (" (healed)" if events[i]["healed"] else "")
            for i in hole["events"]
        )
        out.append(
            (
                "",
                [
                    (f"  {hole['hour'][:13].replace('T', ' ')}h ", ""),
                    (f"{hole['status']:<8}", STYLES[hole["status"]]),
                    (
                        f" {hole['exchange']} {hole['symbol']} ({', '.join(hole['channels'])})"
                        + (f": {why}" if why else ""),
                        "",
                    ),
                ],
            )
        )
    out.append(("", [("legend: " + "  ".join(f"{g} {k}" for k, g in GLYPHS.items()), "grey50")]))
    return out


def coverage_command(
    ctx: typer.Context,
    start: Annotated[
        str | None, typer.Option("--start", help="First UTC day (YYYY-MM-DD; default: ends on the newest).")
    ] = None,
    days: Days = 1,
    max_age: MaxAge = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print everything gathered as JSON.")] = False,
) -> None:
    """Per series an hour strip of the lake's rows, breaks, losses and rejects, and its freshness.

    Exits 10 when a series is stale (newest row older than --max-age), 5 when nothing is built yet.

    Example: daedalus coverage --days 2 --max-age 2h || notify-send 'lake is stale'
    """
    import json

    from daedalus.errors import StorageError
    from daedalus.serve.health import gather

    h = gather(global_options(ctx).lake_config(), start, days, max_age_option(max_age))
    if h.note and not h.series:  # no catalog: nothing to judge, and a timer must hear of it
        raise StorageError(h.note)
    if as_json:
        typer.echo(json.dumps(h.as_json(), indent=1, default=str))
    else:
        print_coverage(h)
    if h.stale():
        raise typer.Exit(STALE_EXIT)


def max_age_option(max_age: str | None) -> float | None:
    """`--max-age` ('2h', '90 minutes', seconds) in seconds; None = status.max_age_seconds."""
    from daedalus.build.durations import lookback_seconds
    from daedalus.errors import ConfigError

    if max_age is None:
        return None
    try:
        seconds = lookback_seconds(max_age)
    except ValueError as e:
        raise ConfigError(f"--max-age: {str(e).replace('lookback ', '')}") from None
    if seconds <= 0:
        raise ConfigError(f"--max-age: '{max_age}' must be more than 0")
    return seconds


def print_coverage(h: Health) -> None:
    """The strips on stdout: rich colours on a terminal, plain letters otherwise."""
    from rich.console import Console
    from rich.text import Text

    console = Console(highlight=False, soft_wrap=True)
    for _, pieces in coverage_lines(h):
        console.print(Text.assemble(*pieces))


def register(app: typer.Typer) -> None:
    app.command("coverage")(coverage_command)
