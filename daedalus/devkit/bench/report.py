"""Rich tables of a `daedalus bench` result document (the same dict that is written as JSON).

Rendering works from the document alone, so `daedalus bench show out.json` can print a saved run.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

MB = 1024 * 1024


def _s(v: Any) -> str:
    return "–" if v is None else f"{v:.2f} s"


def _x(v: Any, floor: Any) -> str:
    if v is None or not floor:
        return "–"
    return f"{v / floor:.1f}×"


def _mb(v: Any) -> str:
    return "–" if v is None else f"{v / MB:,.0f} MB"


def _spread(sp: dict[str, Any] | None) -> str:
    """The floor's scans: how many, their range and (max - min) / median."""
    if not sp:
        return "spread –"
    return (
        f"median of {sp['scans']} scans, {sp['min']:.3f}–{sp['max']:.3f} s, spread {100 * sp['spread']:.0f}%"
    )


def _status(fig: dict[str, Any] | None) -> str:
    if not fig:
        return "–"
    return "ok" if fig.get("ok") else f"[red]failed: {fig.get('error') or '?'}[/red]"


def build_table(sec: dict[str, Any], hours: float) -> Table:
    fl = sec.get("floor") or {}
    # ratios divide by the floor measured next to the build they describe (suite.build_section)
    floor = fl.get("next_to_full_build") or fl.get("seconds")
    floor_sql = fl.get("next_to_sql_build") or floor
    t = Table(title=f"build — one symbol-day ({hours:g} h of 100 ms snapshots)", title_justify="left")
    for c in ("figure", "value", "× floor", "peak RSS", "detail"):
        t.add_column(c, justify="left" if c in ("figure", "detail") else "right")
    t.add_row(
        "floor: DuckDB reads every bronze order-book list",
        _s(floor),
        "1.0×",
        _mb(fl.get("peak_rss")),
        f"{fl.get('snapshots') or 0:,} snapshots, {fl.get('levels') or 0:,} levels; median of all passes "
        f"{_s(fl.get('seconds'))}; {_spread(fl.get('spread_next_to_full_build'))}"
        if not fl.get("error")
        else f"[red]{fl['error']}[/red]",
    )
    full = sec.get("full_build") or {}
    t.add_row(
        "full build, warm (silver + gold + tests + catalog)",
        _s(full.get("seconds")),
        _x(full.get("seconds"), floor),
        _mb(full.get("peak_rss")),
        _status(full) + (f", {full.get('tests')} data tests" if full.get("ok") else ""),
    )
    for name, m in sorted((full.get("models") or {}).items(), key=lambda kv: -kv[1]["seconds"]):
        t.add_row(
            f"  {m['layer']}.{name}",
            _s(m["seconds"]),
            _x(m["seconds"], floor),
            "",
            f"{m['rows']:,} rows, {m['bytes'] / MB:,.1f} MB",
        )
    if full.get("overhead_seconds") is not None:
        t.add_row(
            "  data tests, planning, catalog",
            _s(full["overhead_seconds"]),
            _x(full["overhead_seconds"], floor),
            "",
            "",
        )
    cold = sec.get("cold_build") or {}
    t.add_row(
        "full build, cold (empty numba cache)",
        _s(cold.get("seconds")),
        _x(cold.get("seconds"), floor),
        _mb(cold.get("peak_rss")),
        _status(cold),
    )
    sql = sec.get("sql_models_512MB") or {}
    t.add_row(
        "issue 4: models at memory_limit 512MB (own processes)",
        "",
        "",
        _mb(sql.get("peak_rss")),
        _status(sql) + f"; floor next to it {_s(floor_sql)}",
    )
    t.add_row(
        "  silver models",
        _s(sql.get("silver_seconds")),
        _x(sql.get("silver_seconds"), floor_sql),
        _mb(sql.get("silver_peak_rss")),
        "",
    )
    t.add_row(
        "  SQL gold models (orderbook_hf, bars, ticker_hf)",
        _s(sql.get("gold_seconds")),
        _x(sql.get("gold_seconds"), floor_sql),
        _mb(sql.get("gold_peak_rss")),
        "",
    )
    seq = sec.get("sequential") or {}
    t.add_row(
        "issue 5: sequential stage (orderbook_seq + vpin_buckets)",
        _s(seq.get("stage_seconds")),
        _x(seq.get("stage_seconds"), floor),
        "",
        "from the warm full build",
    )
    k = seq.get("kernels") or {}
    rps = k.get("rows_per_second")
    t.add_row(
        "issue 5: kernels alone, whole per-series pipeline",
        _s(k.get("seconds")),
        "",
        "",
        f"{rps / 1e6:.1f} M rows/s over {k.get('rows', 0):,} rows"
        if rps
        else f"[red]{seq.get('kernels_error')}[/red]",
    )
    for name, f in sorted((k.get("per_kernel") or {}).items(), key=lambda kv: kv[1]["rows_per_second"]):
        t.add_row(
            f"  kernel {name}",
            _s(f["seconds"]),
            "",
            "",
            f"{f['rows_per_second'] / 1e6:,.1f} M rows/s per call ({int(f['calls'])} calls)",
        )
    st = sec.get("start") or {}
    t.add_row(
        "numba start: cold cache → first result",
        _s(st.get("jit_cold_seconds")),
        "",
        "",
        "fresh process, empty NUMBA_CACHE_DIR",
    )
    t.add_row(
        "numba start: warm cache → first result",
        _s(st.get("jit_warm_seconds")),
        "",
        "",
        f"import {st['import_seconds']:.2f} s" if st.get("import_seconds") is not None else "",
    )
    cli = sec.get("cli") or {}
    t.add_row("CLI start: daedalus --help", _s(cli.get("help_seconds")), "", "", cli.get("help_error", ""))
    t.add_row("CLI start: daedalus ls", _s(cli.get("ls_seconds")), "", "", cli.get("ls_error", ""))
    b = sec.get("bytes") or {}
    if b:
        t.add_row(
            "bytes: bronze / silver / gold",
            "",
            "",
            "",
            f"{_mb(b.get('bronze'))} / {_mb(b.get('silver'))} / {_mb(b.get('gold'))}",
        )
    return t


def scaling_table(sec: dict[str, Any]) -> Table:
    t = Table(title="scaling — the same full build over N symbol-days", title_justify="left")
    for c in ("profile", "symbol-days", "seconds", "s / symbol-day", "peak RSS", "peak spill", "status"):
        t.add_column(c, justify="right" if c not in ("profile", "status") else "left")
    for profile in ("default", "pi"):
        for n, fig in sorted((sec.get(profile) or {}).items(), key=lambda kv: int(kv[0])):
            t.add_row(
                profile,
                n,
                _s(fig.get("seconds")),
                _s(fig.get("seconds_per_symbol_day")),
                _mb(fig.get("peak_rss")),
                _mb(fig.get("peak_spill_bytes")),
                _status(fig),
            )
    return t


def incremental_table(sec: dict[str, Any]) -> Table:
    t = Table(
        title=(
            f"incremental — {sec.get('days')}-symbol-day lake, append {sec.get('append_hours'):g} h of bronze"
        ),
        title_justify="left",
    )
    for c in ("build", "seconds", "partitions", "peak RSS", "status"):
        t.add_column(c, justify="left" if c in ("build", "status") else "right")
    for key, label in (
        ("full", f"full build of {sec.get('days')} days"),
        ("append", "rebuild after the append"),
        ("alone", "that hour alone, fresh lake"),
    ):
        fig = sec.get(key) or {}
        parts = (
            sum(m.get("partitions", 0) for m in (fig.get("models") or {}).values())
            if fig.get("models")
            else None
        )
        t.add_row(
            label,
            _s(fig.get("seconds")),
            "–" if parts is None else str(parts),
            _mb(fig.get("peak_rss")),
            _status(fig),
        )
    a, f = sec.get("append_vs_alone"), sec.get("append_vs_full")
    t.add_row("append / hour alone", "–" if a is None else f"{a:.2f}×", "", "", "")
    t.add_row("append / full build", "–" if f is None else f"{f:.3f}×", "", "", "")
    return t


def collector_table(sec: dict[str, Any]) -> Table:
    t = Table(title="collector — fake Binance flat out → ccxt.pro → queue → Parquet", title_justify="left")
    t.add_column("figure")
    t.add_column("value", justify="right")
    if not sec.get("ok"):
        t.add_row("error", f"[red]{sec.get('error')}[/red]")
        return t
    t.add_row("order-book messages / s received", f"{sec.get('rate', 0):,.0f}")
    if sec.get("written_rate") is not None:
        t.add_row("order-book messages / s written", f"{sec['written_rate']:,.0f}")
    t.add_row(
        "received = written + dropped (unaccounted)",
        f"{sec.get('received')} = {sec.get('written')} + {sec.get('dropped')} ({sec.get('unaccounted')})",
    )
    t.add_row("receive → written p50 / p99", f"{sec.get('p50_ms', 0):.1f} / {sec.get('p99_ms', 0):.1f} ms")
    t.add_row(
        "peak RSS (collector process / process tree)",
        f"{sec.get('collector_peak_rss_mb', 0):.0f} MB / {_mb(sec.get('peak_rss'))}",
    )
    return t


def targets_table(targets: list[dict[str, Any]]) -> Table:
    t = Table(title="targets", title_justify="left")
    for c in ("target", "measured", "limit", ""):
        t.add_column(c, justify="left" if c == "target" else "right")
    for tg in targets:
        v = tg.get("value")
        unit = tg.get("unit", "")
        value = "–" if v is None else (f"{v:,.2f} {unit}" if abs(v) < 1000 else f"{v:,.0f} {unit}")
        mark = {True: "[green]met[/green]", False: "[red]missed[/red]", None: "[yellow]n/a[/yellow]"}[
            tg.get("ok")
        ]
        name = tg["name"] + (f" ({tg['note']})" if tg.get("note") else "")
        t.add_row(name, value, f"{tg['op']} {tg['limit']:g} {unit}", mark)
    return t


def updates_table(sec: dict[str, Any], hours: float) -> Table:
    t = Table(
        title=f"updates — one symbol-day ({hours:g} h), the same deep book from either order-book channel",
        title_justify="left",
    )
    floors = sec.get("floor") or {}
    columns = ("built from", "profile", "seconds", "× floor", "peak RSS", "private")
    columns += ("silver.orderbook", "status")
    for c in columns:
        t.add_column(c, justify="left" if c in ("built from", "profile", "status") else "right")
    for source in ("snapshots", "updates"):
        for profile in ("default", "pi"):
            fig = sec.get(f"{source}_{profile}") or {}
            ob = (fig.get("models") or {}).get("orderbook") or {}
            t.add_row(
                source,
                profile,
                _s(fig.get("seconds")),
                _x(fig.get("seconds"), (floors.get(source) or {}).get("seconds")),
                _mb(fig.get("peak_rss")),
                _mb(fig.get("peak_private")),
                _s(ob.get("seconds")) if ob else "–",
                _status(fig),
            )
    b = sec.get("bytes") or {}
    ratio = sec.get("updates_vs_snapshots")
    t.caption = (
        "private: peak RSS less file-backed pages (shared library code), sampled; "
        f"updates / snapshots (default): {'–' if ratio is None else f'{ratio:.2f}×'}; bronze bytes: "
        f"orderbook {_mb(b.get('orderbook'))}, book_updates {_mb(b.get('book_updates'))}; floors "
        + ", ".join(
            f"{k} {_s((floors.get(k) or {}).get('seconds'))} ({_spread((floors.get(k) or {}).get('spread'))})"
            for k in ("snapshots", "updates")
        )
    )
    return t


def render(doc: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console(width=max(Console().width, 132))
    hours = (doc.get("meta") or {}).get("hours_per_day", 24)
    if "build" in doc:
        console.print(build_table(doc["build"], hours))
    if "scaling" in doc:
        console.print(scaling_table(doc["scaling"]))
    if "incremental" in doc:
        console.print(incremental_table(doc["incremental"]))
    if "collector" in doc:
        console.print(collector_table(doc["collector"]))
    if "updates" in doc:
        console.print(updates_table(doc["updates"], hours))
    if doc.get("targets"):
        console.print(targets_table(doc["targets"]))
    for key, error in (doc.get("failures") or {}).items():
        console.print(f"[red]worker {key} failed: {error}[/red]", highlight=False)


def compare_table(rows: list[Any], baseline_path: str) -> Table:
    """A run's figures beside a stored baseline (daedalus.devkit.bench.baseline.compare's rows)."""
    t = Table(title=f"against the baseline {baseline_path}", title_justify="left")
    for c in ("figure", "baseline", "now", "now / baseline", "s: baseline → now", "s ratio", "compared", ""):
        t.add_column(c, justify="left" if c in ("figure", "compared") else "right")
    for r in rows:
        fmt = (lambda v: f"{v:,.1f}") if r.unit == "MB" else (lambda v: f"{v:,.2f}")
        mark = "[red]slower/bigger[/red]" if r.regressed else ("[red]missing[/red]" if r.now is None else "")
        secs = (
            f"{r.baseline_seconds:.2f} → {'–' if r.now_seconds is None else f'{r.now_seconds:.2f}'}"
            if r.baseline_seconds
            else ""
        )
        t.add_row(
            f"{r.name} ({r.unit})",
            fmt(r.baseline),
            "–" if r.now is None else fmt(r.now),
            "–" if r.ratio is None else f"{r.ratio:.2f}×",
            secs,
            "" if r.seconds_ratio is None else f"{r.seconds_ratio:.2f}×",
            r.compared,
            mark,
        )
    t.caption = (
        "a time is named only when it is more than 1.2× its baseline both as × floor and in seconds "
        "(either alone moves with the machine's load); sizes in MB as they are"
    )
    return t
