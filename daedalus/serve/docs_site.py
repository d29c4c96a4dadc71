"""`daedalus docs`: self-contained HTML pages (no scripts, no external assets): index.html, the models,
below, and health.html, the lake's coverage (daedalus/serve/health_page.py).

Lineage as an inline SVG (sources → models, one column per DAG depth; an edge that skips columns
runs along the free lanes between boxes, never behind one) with a legend, then per model: layer,
materialization, partitioning, tags, description, columns with their docs and tests, the models it
reads, the last build's stats from the manifest, the verdict of each data test in the newest build
that ran it (and partitions whose tests still fail), and the compiled SQL.
"""

from __future__ import annotations

import datetime as dt
import html
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daedalus.errors import ConfigError

if TYPE_CHECKING:
    from daedalus.build import Session
    from daedalus.config import Config

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;\
max-width:1100px;color:#1d2433;padding:0 1rem}
h1{margin-bottom:.2rem} .sub{color:#5b6478;margin-top:0}
section.model{border:1px solid #d8dde8;border-radius:8px;padding:1rem 1.2rem;margin:1rem 0}
table{border-collapse:collapse;width:100%;font-size:.92rem} \
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #eceff5;vertical-align:top}
th{background:#f5f7fb} code{background:#f2f4f8;padding:0 .25rem;border-radius:3px}
.tag{display:inline-block;background:#e8eefc;color:#2a4fb0;border-radius:10px;\
padding:0 .5rem;margin-right:.3rem;font-size:.8rem}
.kind{color:#5b6478;font-size:.9rem} svg text{font-size:12px;font-family:inherit}
nav{display:flex;flex-wrap:wrap;gap:.3rem .9rem}
.lineage{overflow-x:auto;border:1px solid #eceff5;border-radius:8px;padding:.5rem}
.legend{display:flex;flex-wrap:wrap;gap:.4rem 1.2rem;font-size:.85rem;color:#5b6478;margin:.4rem 0}
.legend span.box{display:inline-block;width:14px;height:10px;border:2px solid;border-radius:3px;\
margin-right:.3rem;vertical-align:middle}
.PASS{color:#1a7f37;font-weight:600} .FAIL{color:#c62828;font-weight:600} .WARN{color:#b26a00;font-weight:600}
pre.sql{background:#f5f7fb;padding:.6rem;border-radius:6px;overflow-x:auto;font-size:.82rem}
"""

LAYER_COLORS = {"bronze": "#c98a3d", "silver": "#8a95a8", "gold": "#d4a017"}
FAILED_COLOR = "#c62828"  # a model with a failing data test: red dashed box
BOX_W, BOX_H, GAP_X, GAP_Y = 150, 28, 34, 14


def _e(x: Any) -> str:
    return html.escape(str(x if x is not None else ""))


def _depths(session: Session) -> dict[str, int]:
    depth: dict[str, int] = {f"source:{n}": 0 for n in session.project.sources}
    for name in session.dag.order:
        m = session.project.models[name]
        parents = [f"source:{n}" for _, n in m.sources] + list(m.refs)
        depth[name] = 1 + max((depth.get(p, 0) for p in parents), default=0)
    return depth


def edge_points(src: tuple[int, int], dst: tuple[int, int]) -> list[tuple[float, float]]:
    """The polyline of one lineage edge from the box at `src` to the box at `dst` (top-left corners).

    Adjacent columns: straight across the gap between them. Farther: out into the gap after the
    parent, up or down to the free lane above the child's row, along that lane (no box lies on it:
    lanes are the gaps between rows), down into the gap before the child, and in.
    """
    x1, y1 = src[0] + BOX_W, src[1] + BOX_H / 2
    x2, y2 = dst[0], dst[1] + BOX_H / 2
    if x2 - x1 <= GAP_X:
        return [(x1, y1), (x1 + GAP_X / 2, y1), (x1 + GAP_X / 2, y2), (x2, y2)]
    lane = dst[1] - GAP_Y / 2
    return [
        (x1, y1),
        (x1 + GAP_X / 3, y1),
        (x1 + GAP_X / 3, lane),
        (x2 - GAP_X / 3, lane),
        (x2 - GAP_X / 3, y2),
        (x2, y2),
    ]


def lineage_layout(session: Session) -> tuple[dict[str, tuple[int, int]], list[tuple[str, str]], int, int]:
    """Box positions (node → top-left), edges (parent, child), width and height of the SVG."""
    depth = _depths(session)
    columns: dict[int, list[str]] = {}
    for node, d in sorted(depth.items(), key=lambda kv: (kv[1], kv[0])):
        columns.setdefault(d, []).append(node)
    pos: dict[str, tuple[int, int]] = {}
    for d, nodes in columns.items():
        for i, n in enumerate(nodes):
            pos[n] = (10 + d * (BOX_W + GAP_X), 10 + i * (BOX_H + GAP_Y))
    edges = []
    for name in session.dag.order:
        m = session.project.models[name]
        edges += [(p, name) for p in [f"source:{n}" for _, n in m.sources] + list(m.refs) if p in pos]
    width = 20 + (max(columns, default=0) + 1) * (BOX_W + GAP_X)
    height = 20 + max((len(v) for v in columns.values()), default=1) * (BOX_H + GAP_Y)
    return pos, edges, width, height


def lineage_svg(session: Session, failing: set[str] | None = None) -> str:
    pos, edges, width, height = lineage_layout(session)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="lineage">',
        '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="8" refY="4" orient="auto">'
        '<path d="M0,0 L8,4 L0,8 z" fill="#8a95a8"/></marker></defs>',
    ]
    for p, child in edges:
        pts = " L".join(f"{x:g},{y:g}" for x, y in edge_points(pos[p], pos[child]))
        parts.append(
            f'<path class="edge" d="M{pts}" fill="none" stroke="#8a95a8" stroke-linejoin="round" '
            f'marker-end="url(#arrow)"/>'
        )
    for node, (x, y) in pos.items():
        if node.startswith("source:"):
            label, layer, href = f"bronze.{node[7:]}", "bronze", f"#source-{node[7:]}"
        else:
            m = session.project.models[node]
            label, layer, href = m.relation, m.layer, f"#model-{node}"
        color = LAYER_COLORS.get(layer, "#6b7a99")
        dash = ""
        if node in (failing or set()):
            color, dash = FAILED_COLOR, ' stroke-dasharray="5,3"'
        parts.append(
            f'<a href="{_e(href)}"><rect class="box" x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" '
            f'rx="6" fill="#fff" stroke="{color}" stroke-width="2"{dash}/>'
            f'<text x="{x + 8}" y="{y + 18}">{_e(label)}</text></a>'
        )
    parts.append("</svg>")
    return "".join(parts)


def legend_html() -> str:
    items = [
        f"<span><span class='box' style='border-color:{c}'></span>{_e(layer)}</span>"
        for layer, c in LAYER_COLORS.items()
    ]
    items.append(
        f"<span><span class='box' style='border-color:{FAILED_COLOR};border-style:dashed'></span>"
        "a data test failed in the newest build that ran it</span>"
    )
    items.append("<span>→ reads from (arrow points at the model that reads)</span>")
    return "<div class='legend'>" + "".join(items) + "</div>"


def _test_results_html(results: dict[str, Any] | None, failed_parts: dict[str, list[str]]) -> str:
    if not results and not failed_parts:
        return "<p class='kind'>data tests: not run by any build yet</p>"
    rows = []
    for r in (results or {}).get("results", []):
        status = "PASS" if r["passed"] else ("WARN" if r.get("severity") == "warn" else "FAIL")
        rows.append(
            f"<tr><td><code>{_e(r['name'])}</code></td><td class='{status}'>{status}</td>"
            f"<td>{_e(r.get('failures', 0))}</td></tr>"
        )
    at = (results or {}).get("at")
    when = f" (build of {dt.datetime.fromtimestamp(at, dt.UTC):%Y-%m-%d %H:%M:%S} UTC)" if at else ""
    out = (
        (
            f"<p><b>Data tests</b>{when}</p>"
            "<table><tr><th>test</th><th>result</th><th>offending rows</th></tr>" + "".join(rows) + "</table>"
        )
        if rows
        else ""
    )
    if failed_parts:
        out += (
            "<p class='FAIL'>Partitions whose tests failed (rebuilt by the next build, left out of the "
            "catalog): "
            + ", ".join(
                f"<code>{_e(pid or '(table)')}</code> ({_e(', '.join(t))})"
                for pid, t in sorted(failed_parts.items())
            )
            + "</p>"
        )
    return out


def compiled_sql(session: Session, name: str) -> tuple[str, str]:
    """(what it was compiled for, the SQL) of a model: its newest partition, or the whole view/table."""
    from daedalus.build import example_sql

    try:
        return example_sql(session, name)
    except Exception as e:  # noqa: BLE001 - the page shows why instead of failing
        return f"does not compile: {str(e).splitlines()[0]}", ""


def _tests_html(tests: list[Any]) -> str:
    out = []
    for t in tests:
        if isinstance(t, dict):
            k, v = next(iter(t.items()))
            out.append(f"<code>{_e(k)}</code> {_e(v) if v else ''}")
        else:
            out.append(f"<code>{_e(t)}</code>")
    return "<br>".join(out)


def render_docs(session: Session) -> str:
    from daedalus.build import last_test_results, load_failed

    s = session
    tested = last_test_results(s.lake)
    failed = load_failed(s.lake)
    failing = {
        n
        for n, t in tested.items()
        if any(not r["passed"] and r.get("severity") != "warn" for r in t.get("results", []))
    } | {n for n, p in failed.items() if p}
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = [
        f"<h1>Daedalus models</h1><p class='sub'>Generated {generated} from {_e(s.lake.root)} · "
        "<a href='health.html'>lake health</a></p>",
        "<nav>"
        + "".join(f"<a href='#model-{_e(n)}'>{_e(s.project.models[n].relation)}</a>" for n in s.dag.order)
        + "</nav>",
        "<h2>Lineage</h2>",
        legend_html(),
        f"<div class='lineage'>{lineage_svg(s, failing)}</div>",
        "<h2>Sources</h2>",
    ]
    for src in sorted(s.project.sources.values(), key=lambda x: x.name):
        body.append(
            f"<section class='model' id='source-{_e(src.name)}'><h3>{_e(src.relation)}</h3>"
            f"<p>{_e(src.docs.description)}</p><p class='kind'>hive-partitioned by "
            f"{_e(', '.join(src.partition_by))}</p>{_columns(src.docs, _SourceTypes(s, src.name))}</section>"
        )
    body.append("<h2>Models</h2>")
    for name in s.dag.order:
        m = s.project.models[name]
        ms = s.manifest.models.get(name)
        tags = "".join(f"<span class='tag'>{_e(t)}</span>" for t in m.config.tags)
        deps = ", ".join(
            [f"<a href='#source-{_e(n)}'>bronze.{_e(n)}</a>" for _, n in m.sources]
            + [f"<a href='#model-{_e(r)}'>{_e(s.project.models[r].relation)}</a>" for r in m.refs]
        )
        kind = m.materialized
        if m.config.partition_by:
            kind += f" by {', '.join(m.config.partition_by)}"
        if m.config.lookback:
            kind += f", lookback {m.config.lookback}"
        if m.config.carry_state:
            kind += ", carries state across dates"
        stats = ""
        if ms is not None and ms.partitions:
            parts = ms.partitions.values()
            last = max(p.built_at for p in parts)
            stats = (
                f"<p class='kind'>{len(ms.partitions)} partition(s), {sum(p.rows for p in parts):,} rows, "
                f"{sum(len(p.files) for p in parts)} file(s), {sum(p.bytes for p in parts):,} bytes; "
                f"last built {dt.datetime.fromtimestamp(last, dt.UTC):%Y-%m-%d %H:%M:%S} UTC"
            )
            if ms.last_build:
                lb = ms.last_build
                stats += (
                    f" (last build: {lb.get('partitions', 0)} partition(s), {lb.get('rows', 0):,} rows in "
                    f"{float(lb.get('seconds', 0)):.2f} s)"
                )
            stats += "</p>"
        body.append(
            f"<section class='model' id='model-{_e(name)}'><h3>{_e(m.relation)} {tags}</h3>"
            f"<p class='kind'>{_e(kind)} · <code>{_e(m.path.name)}</code></p>"
            f"<p>{_e(m.docs.description)}</p><p class='kind'>reads: {deps or '—'}</p>{stats}"
            f"{_columns(m.docs, ms)}"
            + (f"<p><b>Model tests:</b><br>{_tests_html(m.docs.tests)}</p>" if m.docs.tests else "")
            + _test_results_html(tested.get(name), failed.get(name, {}))
            + _sql_html(s, name)
            + "</section>"
        )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Daedalus models</title>"
        f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n"
    )


def _sql_html(session: Session, name: str) -> str:
    what, sql = compiled_sql(session, name)
    return (
        f"<details><summary>compiled SQL ({_e(what)})</summary>"
        + (f"<pre class='sql'>{_e(sql)}</pre>" if sql else "")
        + "</details>"
    )


class _SourceTypes:
    """A bronze channel's column types, shaped like a manifest entry's `columns`."""

    def __init__(self, session: Session, name: str) -> None:
        try:
            self.columns = [list(c) for c in session.source_columns(name)]
        except Exception:  # a user source without declared types: show no types
            self.columns = []


def _columns(docs: Any, ms: Any) -> str:
    types = {c[0]: c[1] for c in (ms.columns if ms is not None else [])}
    names = list(docs.columns) + [c for c in types if c not in docs.columns]
    if not names:
        return ""
    rows = []
    for n in names:
        c = docs.columns.get(n)
        rows.append(
            f"<tr><td><code>{_e(n)}</code></td><td>{_e(types.get(n) or (c.data_type if c else ''))}</td>"
            f"<td>{_e(c.description if c else '')}</td><td>{_tests_html(c.tests) if c else ''}</td></tr>"
        )
    return (
        "<table><tr><th>column</th><th>type</th><th>description</th><th>tests</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def write_docs(
    config: Config, output: str | Path | None = None, start: str | None = None, days: int = 1
) -> Path:
    """Write `index.html` and `health.html` (daedalus/serve/health_page.py, over `days` UTC days from
    `start`) into `output` (default `<root>/docs` for a local lake); returns the index's path."""
    from daedalus.build import open_session
    from daedalus.serve.health import gather
    from daedalus.serve.health_page import render_health

    s = open_session(config, udfs=False)
    try:
        page = render_docs(s)
    finally:
        s.close()
    if output is None:
        root = config.storage.root
        output = Path(root).expanduser() / "docs" if "://" not in root else Path("docs")
    out = Path(output)
    if out.exists() and not out.is_dir():  # never overwrite a file the user named by mistake
        raise ConfigError(
            f"--output {out}: is a file; give a folder (the page is written as index.html in it)"
        )
    path = out / "index.html"
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / ".index.html.tmp"
        tmp.write_text(page)
        os.replace(tmp, path)  # a reader of the old page never sees half of the new one
        (out / "health.html").write_text(render_health(gather(config, start, days), config.storage.root))
    except OSError as e:
        raise ConfigError(f"--output {out}: cannot write the docs page there ({e.strerror or e})") from None
    return path
