"""`daedalus bench build|scaling|incremental|all|show|explain|collect`
(registered by daedalus/devkit/commands.py).

One `bench` group for every benchmark. Heavy imports stay inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import typer

from daedalus.cli.context import global_options

HOURS_HELP = (
    "Hours per synthetic day (24 = a full symbol-day of 864,000 snapshots; e.g. 2 for a quick check)."
)


def _run(
    ctx: typer.Context,
    sections: list[str],
    hours: float,
    json_out: Path | None,
    workdir: Path | None,
    keep: bool,
    messages: int = 50_000,
    days: int = 7,
    profiles: str = "default,pi",
    sizes: str = "1,2,4",
    compare_to: Path | None = None,
    save_baseline_to: Path | None = None,
) -> None:
    from rich.console import Console

    from daedalus.devkit.bench import run_bench
    from daedalus.devkit.bench.baseline import compare, load_baseline, problems, save_baseline
    from daedalus.devkit.bench.report import compare_table, render
    from daedalus.errors import BuildError, ConfigError

    if not 0 < hours <= 24:
        raise ConfigError(f"--hours: {hours} is not in (0, 24]")
    chosen = tuple(p.strip() for p in profiles.split(",") if p.strip())
    if not chosen or any(p not in ("default", "pi") for p in chosen):
        raise ConfigError(f"--profiles: '{profiles}' must name default and/or pi, e.g. default,pi")
    try:
        counts = tuple(sorted({int(n) for n in sizes.split(",") if n.strip()}))
    except ValueError:
        counts = ()
    if not counts or counts[0] < 1:
        raise ConfigError(f"--sizes: '{sizes}' must be positive symbol-day counts, e.g. 1,2,4")
    baseline = load_baseline(compare_to) if compare_to is not None else None  # bad file: fail before the run
    err = Console(stderr=True)
    doc = run_bench(
        sections,
        hours=hours,
        workdir=workdir,
        keep=keep,
        overrides=global_options(ctx).overrides,
        json_path=json_out,
        messages=messages,
        incremental_days=days,
        profiles=chosen,
        sizes=counts,
        log=lambda line: err.print(line, highlight=False),
    )
    render(doc)
    if json_out is not None:
        err.print(f"figures written to {json_out}")
    rows = compare(baseline, doc) if baseline is not None else None
    if rows is not None:
        Console(width=max(Console().width, 132)).print(compare_table(rows, str(compare_to)))
    found = problems(doc, rows)
    if save_baseline_to is not None:
        if doc.get("failures"):
            found.append(f"baseline not written to {save_baseline_to}: workers failed")
        else:
            save_baseline(save_baseline_to, doc)
            err.print(f"baseline written to {save_baseline_to}")
    if found:
        raise BuildError("; ".join(found))


_JSON = typer.Option(None, "--json", help="Also write the figures as JSON to this file.")
_HOURS = typer.Option(24.0, "--hours", help=HOURS_HELP)
_WORKDIR = typer.Option(None, "--workdir", help="Where data and lakes go (default: a temporary directory).")
_KEEP = typer.Option(
    False, "--keep", help="Keep the measured lakes (and the temporary work directory) for inspection."
)
_COMPARE = typer.Option(
    None,
    "--compare",
    help=(
        "Print each figure against this baseline (times as multiples of the same run's floor, "
        "memory in MB); a figure more than 1.2x the baseline is named and the command exits 4."
    ),
)
_SAVE_BASELINE = typer.Option(
    None,
    "--save-baseline",
    help="Write this run's figures as a baseline (kept: the other sections' figures already in it).",
)


def bench_build_command(
    ctx: typer.Context,
    hours: float = _HOURS,
    json_out: Path = _JSON,
    workdir: Path = _WORKDIR,
    keep: bool = _KEEP,
    updates: bool = typer.Option(
        False,
        "--updates",
        help=(
            "Instead: one symbol-day with a deep book, built from its 20-level snapshots and from "
            "its book updates + hourly checkpoints, default and Pi profile, side by side."
        ),
    ),
    compare_to: Path = _COMPARE,
    save_baseline_to: Path = _SAVE_BASELINE,
) -> None:
    """One symbol-day: the bronze scan floor, the full build (per model, cold vs warm numba cache, peak
    RSS), the SQL models at memory_limit 512MB, the sequential stage and kernels, bytes, CLI start.

    Exits non-zero when a worker failed (its error line printed) or, with --compare, when a figure is
    more than 1.2x its baseline.

    Example: daedalus bench build --hours 2 --compare benchmarks/baseline.json
    """
    _run(
        ctx,
        ["updates" if updates else "build"],
        hours,
        json_out,
        workdir,
        keep,
        compare_to=compare_to,
        save_baseline_to=save_baseline_to,
    )


def bench_scaling_command(
    ctx: typer.Context,
    hours: float = _HOURS,
    json_out: Path = _JSON,
    workdir: Path = _WORKDIR,
    keep: bool = _KEEP,
    profiles: str = typer.Option(
        "default,pi", "--profiles", help="Comma list: default (config + flags), pi (config/pi.yaml)."
    ),
    sizes: str = typer.Option("1,2,4", "--sizes", help="Comma list of symbol-day counts."),
) -> None:
    """The full build over 1, 2 and 4 symbol-days with the default and the Pi profile (config/pi.yaml):
    seconds and peak RSS per symbol-day.

    Example: daedalus bench scaling --hours 6
    """
    _run(ctx, ["scaling"], hours, json_out, workdir, keep, profiles=profiles, sizes=sizes)


def bench_incremental_command(
    ctx: typer.Context,
    hours: float = _HOURS,
    days: int = typer.Option(7, "--days", help="Days in the lake."),
    json_out: Path = _JSON,
    workdir: Path = _WORKDIR,
    keep: bool = _KEEP,
    compare_to: Path = _COMPARE,
    save_baseline_to: Path = _SAVE_BASELINE,
) -> None:
    """A lake of N symbol-days; append the next hour of bronze and rebuild: its cost vs building that
    hour alone and vs the full build. With --compare, the partitions the append rewrote and its peak
    RSS against the baseline's.

    Example: daedalus bench incremental --days 7 --compare benchmarks/baseline.json
    """
    _run(
        ctx,
        ["incremental"],
        hours,
        json_out,
        workdir,
        keep,
        days=days,
        compare_to=compare_to,
        save_baseline_to=save_baseline_to,
    )


def bench_all_command(
    ctx: typer.Context,
    hours: float = _HOURS,
    json_out: Path = _JSON,
    workdir: Path = _WORKDIR,
    keep: bool = _KEEP,
    messages: int = typer.Option(50_000, "--messages", help="Order-book messages for the collector."),
) -> None:
    """Every section in one run (build, scaling, incremental, collector) and the table of targets.

    Example: daedalus bench all --json bench.json
    """
    _run(
        ctx,
        ["build", "scaling", "incremental", "collector"],
        hours,
        json_out,
        workdir,
        keep,
        messages=messages,
    )


def bench_show_command(
    path: Path = typer.Argument(..., help="A JSON file written by --json."),
    compare_to: Path = typer.Option(
        None, "--compare", help="Also print its figures against this baseline (exit 4 past 1.2x)."
    ),
) -> None:
    """Print the tables of a saved benchmark run.

    Example: daedalus bench show bench.json --compare benchmarks/baseline.json
    """
    import json

    from rich.console import Console

    from daedalus.devkit.bench.baseline import compare, load_baseline, problems
    from daedalus.devkit.bench.report import compare_table, render
    from daedalus.errors import BuildError, ConfigError

    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: not a readable bench JSON file ({e})") from None
    render(doc)
    rows = compare(load_baseline(compare_to), doc) if compare_to is not None else None
    if rows is not None:
        Console(width=max(Console().width, 132)).print(compare_table(rows, str(compare_to)))
    found = problems(doc, rows)
    if found:
        raise BuildError("; ".join(found))


def bench_explain_command(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="Model name, e.g. orderbook_hf."),
    partition: str = typer.Option(
        None, "--partition", "-p", help="exchange=X,symbol=BTC/USDT,date=YYYY-MM-DD (default: newest)."
    ),
    top: int = typer.Option(15, "--top", help="Operators to show."),
) -> None:
    """Run one partition of a model under DuckDB's profiler and list its operators by time.

    Example: daedalus bench explain orderbook --partition exchange=binance,symbol=BTC/USDT,date=2024-01-01
    """
    from rich.console import Console
    from rich.table import Table

    from daedalus.devkit.bench.explain import profile_model

    prof = profile_model(global_options(ctx).config(), model, partition)
    total = sum(o.seconds for o in prof.operators) or 1.0
    t = Table(
        title=f"{prof.partition}: {prof.seconds:.2f} s (operator times below sum over threads)",
        title_justify="left",
    )
    for c in ("operator", "seconds", "share", "rows", "detail"):
        t.add_column(c, justify="right" if c in ("seconds", "share", "rows") else "left")
    for o in prof.top(top):
        t.add_row(
            o.name,
            f"{o.seconds:.2f}",
            f"{o.seconds / total:.0%}",
            "–" if o.rows is None else f"{o.rows:,}",
            o.detail[:110],
        )
    Console(width=max(Console().width, 160)).print(t)


def bench_collect_command(
    messages: int = typer.Option(100_000, "--messages", help="Order-book messages to push through."),
    queue_maxsize: int = typer.Option(2_000, "--queue-maxsize", help="Queue bound (memory vs. drops)."),
    rate: float = typer.Option(
        None, "--rate", help="Pace the fake exchange at this many msg/s (default: flat out)."
    ),
    venue: str = typer.Option(
        "binance", "--venue", help="Fake exchange and its real ccxt.pro client: binance, okx, bybit, kraken."
    ),
    channels: str = typer.Option(
        None,
        "--channels",
        help="Comma list of channels collected (default: the collector's default channels); "
        "messages are counted on orderbook, which must be among them.",
    ),
) -> None:
    """Benchmark the collector: a fake exchange flat out → ccxt.pro → queue → Parquet.

    Prints messages/s, p50/p99 receive→written latency, peak RSS and received/written/dropped.

    Example: daedalus bench collect --messages 50000 --venue okx
    """
    from daedalus.cli.collect import collector_allocator

    collector_allocator()
    from daedalus.devkit.bench.collect import BENCH_VENUES, bench_collect

    if venue not in BENCH_VENUES:
        raise typer.BadParameter(
            f"no fake for '{venue}' (allowed: {', '.join(BENCH_VENUES)})", param_hint="--venue"
        )
    from daedalus.devkit.bench.collect import collect_channels

    try:
        chosen = collect_channels(
            None if channels is None else [c.strip() for c in channels.split(",") if c.strip()]
        )
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--channels") from None
    result = bench_collect(messages, queue_maxsize=queue_maxsize, rate=rate, venue=venue, channels=chosen)
    typer.echo(f"channels: {', '.join(result.channels)}")
    typer.echo(result.format())


def bench_soak_command(
    seconds: float = typer.Option(180.0, "--seconds", help="How long to run cycles (the last one finishes)."),
    seed: int = typer.Option(1, "--seed", help="Seed of the faults and the simulated markets."),
    cycle_seconds: float = typer.Option(8.0, "--cycle-seconds", help="Collection time per cycle."),
    speed: float = typer.Option(
        1.0, "--speed", help="Simulated seconds per wall-clock second of the venues' clock."
    ),
    simulated_hours: float = typer.Option(
        None, "--simulated-hours", help="Run until the venues' clock has advanced this much (not --seconds)."
    ),
    cycles: int = typer.Option(
        None, "--cycles", min=2, help="Run exactly this many cycles (not --seconds); the first is fault-free."
    ),
    root: str = typer.Option("./daedalus-soak", "--root", help="Lake root for the soak (must not exist)."),
    s3: bool = typer.Option(
        False,
        "--s3",
        help="The lake on a moto_server the soak starts (adds the s3_outage fault; needs moto).",
    ),
    faults: str = typer.Option(
        None,
        "--faults",
        help="Comma-separated fault kinds to draw (default: all but host_clock_step), e.g. s3_outage.",
    ),
) -> None:
    """Collect from every fake venue, inject faults at random from a seed, land and build, check invariants.

    Example: daedalus bench soak --seconds 180 --seed 7 --root /tmp/soak-lake
    """
    import math
    from pathlib import Path

    from daedalus.devkit.soak import run_soak
    from daedalus.errors import ConfigError

    if Path(root).exists():
        raise ConfigError(f"--root {root}: exists; the soak needs a fresh folder (it injects faults there)")
    for name, value in (("--speed", speed), ("--cycle-seconds", cycle_seconds)):
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{name}: {value} is not a finite positive number")
    if simulated_hours is not None and not (math.isfinite(simulated_hours) and simulated_hours > 0):
        raise ConfigError(f"--simulated-hours: {simulated_hours} is not a finite positive number")
    from daedalus.devkit.soak import FAULTS

    kinds = [k.strip() for k in faults.split(",") if k.strip()] if faults is not None else None
    unknown = sorted(set(kinds or ()) - set(FAULTS))
    if kinds is not None and (unknown or not kinds):
        raise ConfigError(
            f"--faults: unknown kind {', '.join(unknown) or '(none given)'}; known: {', '.join(FAULTS)}"
        )
    report = run_soak(
        root,
        seconds,
        faults=kinds,
        s3=s3,
        seed=seed,
        cycle_seconds=cycle_seconds,
        echo=typer.echo,
        speed=speed,
        simulated_hours=simulated_hours,
        cycles=cycles,
    )
    typer.echo(report.summary())
    if report.failures:
        raise typer.Exit(4)


def register(app: typer.Typer) -> None:
    """The one `bench` group: the build benchmarks and the collector's."""
    group = typer.Typer(name="bench", help="Benchmarks.", no_args_is_help=True)
    app.add_typer(group, name="bench")
    group.command("collect")(bench_collect_command)
    group.command("build")(bench_build_command)
    group.command("scaling")(bench_scaling_command)
    group.command("incremental")(bench_incremental_command)
    group.command("all")(bench_all_command)
    group.command("show")(bench_show_command)
    group.command("explain")(bench_explain_command)
    group.command("soak")(bench_soak_command)
