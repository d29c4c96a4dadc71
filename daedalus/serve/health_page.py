"""health.html of `daedalus docs` (issue 27): the data of daedalus/serve/health.py as one
self-contained page (inline CSS and SVG, no script, nothing fetched), readable on a phone.

Per series an hour strip (one cell per hour: its status colour, a tooltip with the counts; a cell
with events links to their rows in the events table below, `#ev-<id>`), then freshness, the builds
(seconds per model, a sparkline over the last builds), the data tests and a chart per symbol of mid,
spread and VPIN from gold.orderbook_hf. Every strip cell carries `data-status` and `data-hour`, its
row `data-series`, so a test reads the page as the browser built it.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

from daedalus.serve.health import Health, Series, ago

# Used nowhere else on the page, so a screenshot's pixels of one colour are that status' cells.
STATUS_COLORS = {
    "ok": "#2e9d4f",
    "break": "#f08a24",
    "lost": "#d7263d",
    "rejected": "#8e44ad",
    "empty": "#f1c40f",
    "none": "#e3e6ec",
}
STATUS_TEXT = {
    "ok": "rows, nothing recorded against them",
    "break": "a break (disconnect, gap, resync, stale ...)",
    "lost": "rows lost (quarantined segment, queue overflow)",
    "rejected": "rows rejected by silver (bad values)",
    "empty": "no row in an hour between rows",
    "none": "outside the series' rows",
}
STRIP_H = 22  # px; a cell is 28 px wide for one day, narrower (down to 8) for more days

CSS = """
*{box-sizing:border-box} body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:1rem auto;\
max-width:1100px;color:#1d2433;padding:0 .8rem;line-height:1.4}
h1{margin:.2rem 0} .sub{color:#5b6478;margin:.2rem 0 1rem}
section{border:1px solid #d8dde8;border-radius:8px;padding:.8rem 1rem;margin:1rem 0}
.series{margin:.6rem 0 .9rem} .series .name{font-weight:600} .age{color:#5b6478;font-size:.9rem}
.stale{color:#c62828;font-weight:700} .fresh{color:#1a7f37}
.strip{overflow-x:auto} .strip svg{display:block;max-width:none} .strip text.lbl{font-size:13px}
.legend{display:flex;flex-wrap:wrap;gap:.3rem 1rem;font-size:.85rem;color:#5b6478}
.legend i{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:.3rem;\
vertical-align:-1px}
.tablewrap{overflow-x:auto} table{border-collapse:collapse;width:100%;font-size:.88rem}
th,td{text-align:left;padding:.25rem .45rem;border-bottom:1px solid #eceff5;vertical-align:top}
th{background:#f5f7fb} tr:target{background:#fff3c4}
code{background:#f2f4f8;padding:0 .2rem;border-radius:3px}
.PASS{color:#1a7f37;font-weight:600} .FAIL{color:#c62828;font-weight:600} .WARN{color:#b26a00;font-weight:600}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:.8rem}
.chart svg{width:100%;height:auto;display:block} svg text{font-size:10px;font-family:inherit;fill:#5b6478}
.summary{display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;font-size:1rem}
td.when{white-space:nowrap}
td code.detail{display:inline-block;min-width:18rem;word-break:break-all;font-size:.8rem}
@media (max-width:600px){body{padding:0 .4rem} section{padding:.6rem} th,td{padding:.2rem .3rem}
.strip svg{width:100%;height:auto} .strip text.lbl{font-size:20px}}
"""


def _e(x: Any) -> str:
    return html.escape(str(x if x is not None else ""))


def _hhmm(iso: str) -> str:
    return iso[11:16]


def _cell_title(s: Series, c: Any) -> str:
    parts = [f"{c.hour[:13].replace('T', ' ')}h UTC", f"{c.rows:,} rows (bronze {c.bronze:,})"]
    if c.breaks:
        parts.append(f"{c.breaks} break(s)" + (f", {c.healed} healed" if c.healed else ""))
    if c.losses:
        parts.append(f"{c.losses} loss(es), {c.lost:,} rows lost")
    if c.rejected:
        parts.append(f"{c.rejected:,} rows rejected")
    return f"{s.key}: " + ", ".join(parts) + f" ({c.status})"


def strip_svg(s: Series, hours: list[str]) -> str:
    n = len(hours)
    cell = max(8, min(28, 672 // max(n, 1)))
    width, height = n * cell, STRIP_H + 16
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(s.key)} by hour">'
    ]
    for i, c in enumerate(s.cells):
        rect = (
            f'<rect class="cell" data-status="{c.status}" data-hour="{_e(c.hour)}" x="{i * cell + 1}" y="1" '
            f'width="{cell - 2}" height="{STRIP_H - 2}" rx="2" fill="{STATUS_COLORS[c.status]}">'
            f"<title>{_e(_cell_title(s, c))}</title></rect>"
        )
        out.append(f'<a href="#ev-{c.events[0]}">{rect}</a>' if c.events else rect)
    for i, h in enumerate(hours):
        if i % 6 == 0:
            label = h[5:10] if h[11:13] == "00" else _hhmm(h)
            out.append(f'<text class="lbl" x="{i * cell + 1}" y="{STRIP_H + 13}">{_e(label)}</text>')
    out.append("</svg>")
    return "".join(out)


def legend_html() -> str:
    return (
        "<div class='legend'>"
        + "".join(
            f"<span><i style='background:{c}'></i>{_e(k)}: {_e(STATUS_TEXT[k])}</span>"
            for k, c in STATUS_COLORS.items()
        )
        + "</div>"
    )


def coverage_html(h: Health) -> str:
    rows = []
    for s in h.series:
        cls = "stale" if s.stale else "fresh"
        holes = sum(c.status not in ("ok", "none") for c in s.cells)
        rows.append(
            f"<div class='series' data-series='{_e(s.key)}' id='series-{_e(s.key.replace(' ', '-'))}'>"
            f"<span class='name'>{_e(s.key)}</span> <span class='age'>· newest row {_e(s.last_ts or '—')} "
            f"(<span class='{cls}'>{_e(ago(s.age_seconds))}{' — STALE' if s.stale else ''}</span>) · "
            f"{sum(c.rows for c in s.cells):,} rows, {holes} hole(s)</span>"
            f"<div class='strip'>{strip_svg(s, h.hours)}</div></div>"
        )
    return "".join(rows) or "<p class='age'>No series in this window.</p>"


def events_html(h: Health) -> str:
    if not h.events:
        return "<p class='age'>No break or loss recorded in this window.</p>"
    rows = []
    for e in h.events:
        kind = "loss" if e["loss"] else ("break, healed" if e["healed"] else "break")
        span = f"{e['seconds']:.1f} s" if e["seconds"] is not None else ""
        marks = ", ".join(_e(k.split(" ")[-1]) for k in e["series"]) or "<i>no series of this window</i>"
        rows.append(
            f"<tr id='ev-{e['id']}' data-event-type='{_e(e['event_type'])}' data-hour='{_e(e['hour'])}'>"
            f"<td class='when'>{_e(e['ts'][:19].replace('T', ' '))}</td><td>{_e(e['exchange'])}</td>"
            f"<td>{_e(e['symbol'] or 'all')}</td><td>{_e(e['channel'] or 'all')}</td>"
            f"<td><b>{_e(e['event_type'])}</b> ({kind})</td>"
            f"<td>{_e(e['count'] if e['count'] is not None else '')}</td>"
            f"<td>{span}</td><td><code>{_e(e['conn_id'])}</code></td><td>{marks}</td>"
            f"<td><code class='detail'>{_e(e['detail'])}</code></td></tr>"
        )
    return (
        "<div class='tablewrap'><table><tr><th>received (UTC)</th><th>exchange</th><th>symbol</th>"
        "<th>channel</th><th>event</th><th>rows</th><th>interval</th><th>connection</th>"
        "<th>channels it marks</th><th>detail</th></tr>" + "".join(rows) + "</table></div>"
    )


def sparkline(values: list[float | None], width: int = 120, height: int = 24) -> str:
    pts = [(i, v) for i, v in enumerate(values) if v is not None]
    if not pts:
        return ""
    top = max(v for _, v in pts) or 1.0
    step = width / max(len(values) - 1, 1)
    line = " ".join(f"{i * step:.1f},{height - 2 - (v / top) * (height - 4):.1f}" for i, v in pts)
    x, y = line.split(" ")[-1].split(",")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="spark" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}">'
        f'<polyline points="{line}" fill="none" stroke="#2a4fb0" stroke-width="1.5"/>'
        f'<circle cx="{x}" cy="{y}" r="2" fill="#2a4fb0"/></svg>'
    )


def builds_html(h: Health) -> str:
    b = h.builds
    if not b.get("models"):
        return "<p class='age'>No build recorded yet.</p>"
    when = (
        f"Last build finished {dt.datetime.fromtimestamp(b['finished_at'], dt.UTC):%Y-%m-%d %H:%M:%S} UTC"
        f" in {float(b.get('seconds') or 0):.2f} s."
        if b.get("finished_at")
        else ""
    )
    rows = []
    for m, d in b["models"].items():
        last = d["last_seconds"]
        runs = sum(v is not None for v in d["history"])
        rows.append(
            f"<tr data-model='{_e(m)}'><td><code>{_e(m)}</code></td>"
            f"<td class='{_e(d['status'] or '')}'>{_e(d['status'] or '')}</td>"
            f"<td>{'' if last is None else f'{last:.2f} s'}</td><td>{sparkline(d['history'])}</td>"
            f"<td>{runs}</td></tr>"
        )
    return (
        f"<p>{when}</p><div class='tablewrap'><table><tr><th>model</th><th>last outcome</th>"
        "<th>seconds (last build)</th><th>last builds</th><th>runs</th></tr>"
        + "".join(rows)
        + "</table></div>"
    )


def tests_html(h: Health) -> str:
    if not h.tests and not h.failed_tests:
        return "<p class='age'>No data test has run yet.</p>"
    rows = []
    for model, t in sorted(h.tests.items()):
        results = t.get("results", [])
        bad = [r for r in results if not r["passed"]]
        status = "PASS" if not bad else ("WARN" if all(r.get("severity") == "warn" for r in bad) else "FAIL")
        names = ", ".join(f"{r['name']} ({r.get('failures', 0)} rows)" for r in bad)
        rows.append(
            f"<tr data-model='{_e(model)}'><td><code>{_e(model)}</code></td>"
            f"<td class='{status}'>{status}</td>"
            f"<td>{len(results) - len(bad)} / {len(results)}</td><td>{_e(names)}</td></tr>"
        )
    out = (
        "<div class='tablewrap'><table><tr><th>model</th><th>result</th><th>passed</th>"
        "<th>failing tests</th></tr>" + "".join(rows) + "</table></div>"
    )
    for model, parts in sorted(h.failed_tests.items()):
        out += (
            f"<p class='FAIL'>{_e(model)}: partitions left out of the catalog until their tests pass: "
            + ", ".join(f"<code>{_e(pid or '(table)')}</code>" for pid in sorted(parts))
            + "</p>"
        )
    return out


def _panel(
    t: list[float], v: list[Any], span: float, y0: int, label: str, color: str, w: int, ph: int
) -> str:
    pts = [(x, y) for x, y in zip(t, v, strict=True) if y is not None]
    head = f'<text x="2" y="{y0 + 10}">{_e(label)}</text>'
    if not pts:
        return head + f'<text x="120" y="{y0 + 10}">no values</text>'
    lo, hi = min(y for _, y in pts), max(y for _, y in pts)
    rng = (hi - lo) or 1.0
    line = " ".join(f"{x / span * w:.1f},{y0 + 14 + (1 - (y - lo) / rng) * (ph - 18):.1f}" for x, y in pts)
    return (
        head
        + f'<text x="{w - 2}" y="{y0 + 10}" text-anchor="end">{lo:.6g} … {hi:.6g}</text>'
        + f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="1.2"/>'
    )


def chart_svg(d: dict[str, list[Any]], days: int, w: int = 320, ph: int = 56) -> str:
    span = days * 86400.0
    panels = [("mid", "#2a4fb0"), ("spread", "#b26a00"), ("vpin", "#5b2c6f")]
    body = "".join(
        _panel(d["t"], d[name], span, i * ph, name, color, w, ph) for i, (name, color) in enumerate(panels)
    )
    every = 6 * 3600 * days  # four ticks over the window
    ticks = "".join(
        f'<line x1="{x / span * w:.1f}" y1="0" x2="{x / span * w:.1f}" y2="{ph * 3}" stroke="#eceff5"/>'
        f'<text x="{x / span * w + 2:.1f}" y="{ph * 3 + 10}">+{x // 3600:g}h</text>'
        for x in range(0, int(span), every)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {ph * 3 + 12}" role="img" '
        f'aria-label="mid, spread and VPIN">{ticks}{body}</svg>'
    )


def charts_html(h: Health) -> str:
    if not h.charts:
        return "<p class='age'>No gold.orderbook_hf rows in this window.</p>"
    return (
        "<div class='charts'>"
        + "".join(
            f"<div class='chart' data-symbol='{_e(k)}'><b>{_e(k)}</b>{chart_svg(d, h.days)}</div>"
            for k, d in sorted(h.charts.items())
        )
        + "</div>"
    )


def render_health(h: Health, root: str = "") -> str:
    holes, incidents, stale = h.holes(), h.incidents(), h.stale()
    end = dt.date.fromisoformat(h.start) + dt.timedelta(days=h.days - 1) if h.start else None
    window = f"{h.start}" + (f" to {end}" if end and h.days > 1 else "")
    body = [
        "<h1>Lake health</h1>",
        f"<p class='sub'>{_e(root)} · {_e(window)} (UTC, one cell per hour) · "
        f"generated {_e(h.generated_at)} · <a href='index.html'>models</a></p>",
        f"<p class='FAIL'>{_e(h.note)}</p>" if h.note else "",
        f"<div class='summary'><span><b>{len(h.series)}</b> series</span>"
        f"<span><b id='hole-count'>{len(incidents)}</b> hole(s) in <b id='cell-count'>{len(holes)}</b> "
        f"cell(s)</span><span><b>{len(h.events)}</b> event(s)</span>"
        f"<span class='{'stale' if stale else 'fresh'}'><b>{len(stale)}</b> stale "
        f"(newest row older than {h.max_age_seconds:g} s)</span></div>",
        f"<section id='coverage'><h2>Coverage</h2>{legend_html()}{coverage_html(h)}</section>",
        f"<section id='events'><h2>Events behind the holes</h2>{events_html(h)}</section>",
        f"<section id='charts'><h2>Mid, spread and VPIN</h2>{charts_html(h)}</section>",
        f"<section id='builds'><h2>Builds</h2>{builds_html(h)}</section>",
        f"<section id='tests'><h2>Data tests</h2>{tests_html(h)}</section>",
    ]
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>Lake health</title><style>{CSS}</style></head><body>{''.join(body)}</body></html>\n"
    )
