"""`daedalus docs`: one self-contained HTML page (no scripts, no external assets).

Lineage as an inline SVG (sources → models, one column per DAG depth), then per model: layer,
materialization, partitioning, tags, description, columns with their docs and tests, the models it
reads and the last build's stats from the manifest.
"""

from __future__ import annotations

import datetime as dt
import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from daedalus.config import Config
    from daedalus.runner import Session

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;color:#1d2433;padding:0 1rem}
h1{margin-bottom:.2rem} .sub{color:#5b6478;margin-top:0}
section.model{border:1px solid #d8dde8;border-radius:8px;padding:1rem 1.2rem;margin:1rem 0}
table{border-collapse:collapse;width:100%;font-size:.92rem} th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #eceff5;vertical-align:top}
th{background:#f5f7fb} code{background:#f2f4f8;padding:0 .25rem;border-radius:3px}
.tag{display:inline-block;background:#e8eefc;color:#2a4fb0;border-radius:10px;padding:0 .5rem;margin-right:.3rem;font-size:.8rem}
.kind{color:#5b6478;font-size:.9rem} svg text{font-size:12px;font-family:inherit}
nav{display:flex;flex-wrap:wrap;gap:.3rem .9rem}
.lineage{overflow-x:auto;border:1px solid #eceff5;border-radius:8px;padding:.5rem}
"""

LAYER_COLORS = {"bronze": "#c98a3d", "silver": "#8a95a8", "gold": "#d4a017"}


def _e(x: Any) -> str:
    return html.escape(str(x if x is not None else ""))


def _depths(session: Session) -> dict[str, int]:
    depth: dict[str, int] = {f"source:{n}": 0 for n in session.project.sources}
    for name in session.dag.order:
        m = session.project.models[name]
        parents = [f"source:{n}" for _, n in m.sources] + list(m.refs)
        depth[name] = 1 + max((depth.get(p, 0) for p in parents), default=0)
    return depth


def lineage_svg(session: Session) -> str:
    depth = _depths(session)
    columns: dict[int, list[str]] = {}
    for node, d in sorted(depth.items(), key=lambda kv: (kv[1], kv[0])):
        columns.setdefault(d, []).append(node)
    w, h, gap_x, gap_y = 150, 28, 34, 14
    pos: dict[str, tuple[int, int]] = {}
    for d, nodes in columns.items():
        for i, n in enumerate(nodes):
            pos[n] = (10 + d * (w + gap_x), 10 + i * (h + gap_y))
    width = 20 + (max(columns, default=0) + 1) * (w + gap_x)
    height = 20 + max((len(v) for v in columns.values()), default=1) * (h + gap_y)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="lineage">',
             '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="8" refY="4" orient="auto">'
             '<path d="M0,0 L8,4 L0,8 z" fill="#8a95a8"/></marker></defs>']
    for name in session.dag.order:
        m = session.project.models[name]
        for p in [f"source:{n}" for _, n in m.sources] + list(m.refs):
            if p in pos:
                x1, y1 = pos[p][0] + w, pos[p][1] + h // 2
                x2, y2 = pos[name][0], pos[name][1] + h // 2
                parts.append(f'<path d="M{x1},{y1} C{x1 + 18},{y1} {x2 - 18},{y2} {x2},{y2}" fill="none" '
                             f'stroke="#8a95a8" marker-end="url(#arrow)"/>')
    for node, (x, y) in pos.items():
        if node.startswith("source:"):
            label, layer, href = f"bronze.{node[7:]}", "bronze", f"#source-{node[7:]}"
        else:
            m = session.project.models[node]
            label, layer, href = m.relation, m.layer, f"#model-{node}"
        color = LAYER_COLORS.get(layer, "#6b7a99")
        parts.append(f'<a href="{_e(href)}"><rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6" fill="#fff" '
                     f'stroke="{color}" stroke-width="2"/><text x="{x + 8}" y="{y + 18}">{_e(label)}</text></a>')
    parts.append("</svg>")
    return "".join(parts)


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
    s = session
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = [f"<h1>Daedalus models</h1><p class='sub'>Generated {generated} from {_e(s.lake.root)}</p>",
            "<nav>" + "".join(f"<a href='#model-{_e(n)}'>{_e(s.project.models[n].relation)}</a>"
                               for n in s.dag.order) + "</nav>",
            "<h2>Lineage</h2>", f"<div class='lineage'>{lineage_svg(s)}</div>", "<h2>Sources</h2>"]
    for src in sorted(s.project.sources.values(), key=lambda x: x.name):
        body.append(f"<section class='model' id='source-{_e(src.name)}'><h3>{_e(src.relation)}</h3>"
                    f"<p>{_e(src.docs.description)}</p><p class='kind'>hive-partitioned by "
                    f"{_e(', '.join(src.partition_by))}</p>{_columns(src.docs, _SourceTypes(s, src.name))}</section>")
    body.append("<h2>Models</h2>")
    for name in s.dag.order:
        m = s.project.models[name]
        ms = s.manifest.models.get(name)
        tags = "".join(f"<span class='tag'>{_e(t)}</span>" for t in m.config.tags)
        deps = ", ".join([f"<a href='#source-{_e(n)}'>bronze.{_e(n)}</a>" for _, n in m.sources] +
                         [f"<a href='#model-{_e(r)}'>{_e(s.project.models[r].relation)}</a>" for r in m.refs])
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
            stats = (f"<p class='kind'>{len(ms.partitions)} partition(s), {sum(p.rows for p in parts):,} rows, "
                     f"{sum(len(p.files) for p in parts)} file(s), {sum(p.bytes for p in parts):,} bytes; "
                     f"last built {dt.datetime.fromtimestamp(last, dt.UTC):%Y-%m-%d %H:%M:%S} UTC")
            if ms.last_build:
                lb = ms.last_build
                stats += (f" (last build: {lb.get('partitions', 0)} partition(s), {lb.get('rows', 0):,} rows in "
                          f"{float(lb.get('seconds', 0)):.2f} s)")
            stats += "</p>"
        body.append(
            f"<section class='model' id='model-{_e(name)}'><h3>{_e(m.relation)} {tags}</h3>"
            f"<p class='kind'>{_e(kind)} · <code>{_e(m.path.name)}</code></p>"
            f"<p>{_e(m.docs.description)}</p><p class='kind'>reads: {deps or '—'}</p>{stats}"
            f"{_columns(m.docs, ms)}"
            + (f"<p><b>Model tests:</b><br>{_tests_html(m.docs.tests)}</p>" if m.docs.tests else "")
            + "</section>")
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Daedalus models</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")


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
        rows.append(f"<tr><td><code>{_e(n)}</code></td><td>{_e(types.get(n) or (c.data_type if c else ''))}</td>"
                    f"<td>{_e(c.description if c else '')}</td><td>{_tests_html(c.tests) if c else ''}</td></tr>")
    return ("<table><tr><th>column</th><th>type</th><th>description</th><th>tests</th></tr>"
            + "".join(rows) + "</table>")


def write_docs(config: Config, output: str | Path | None = None) -> Path:
    """Write `index.html` into `output` (default `<root>/docs` for a local lake); returns its path."""
    from daedalus.runner import Session

    s = Session(config, udfs=False)
    try:
        page = render_docs(s)
    finally:
        s.close()
    if output is None:
        root = config.storage.root
        output = Path(root).expanduser() / "docs" if "://" not in root else Path("docs")
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "index.html"
    path.write_text(page)
    return path
