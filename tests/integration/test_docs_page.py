"""`daedalus docs`: per-model test verdicts, a legend, the compiled SQL of each model, and lineage
edges that never run behind a box (issue #16)."""

from __future__ import annotations

import re

import pytest
from toy import make_toy, trade_rows

from daedalus.build import Session
from daedalus.config import load_config
from daedalus.serve.docs_site import BOX_H, BOX_W, edge_points, lineage_layout

ENV = {"DAEDALUS_NO_UDFS": "1"}


def _crosses(p: tuple[float, float], q: tuple[float, float], box: tuple[int, int]) -> bool:
    """Does the axis-aligned segment p→q run through the inside of the box?"""
    bx, by = box
    (x1, y1), (x2, y2) = p, q
    if y1 == y2:
        return by < y1 < by + BOX_H and min(x1, x2) < bx + BOX_W and max(x1, x2) > bx
    assert x1 == x2, "lineage edges are axis-aligned polylines"
    return bx < x1 < bx + BOX_W and min(y1, y2) < by + BOX_H and max(y1, y2) > by


def test_edges_of_the_builtin_project_pass_behind_no_box(tmp_path):
    s = Session(load_config(None, {"storage.root": str(tmp_path)}), udfs=False)
    try:
        pos, edges, _, _ = lineage_layout(s)
    finally:
        s.close()
    long_edges = 0
    for parent, child in edges:
        pts = edge_points(pos[parent], pos[child])
        assert pts[0] == (pos[parent][0] + BOX_W, pos[parent][1] + BOX_H / 2)
        assert pts[-1] == (pos[child][0], pos[child][1] + BOX_H / 2)
        others = [xy for n, xy in pos.items() if n not in (parent, child)]
        for a, b in zip(pts, pts[1:], strict=False):
            for box in [*others, pos[parent], pos[child]]:
                assert not _crosses(a, b, box), (parent, child, a, b, box)
        long_edges += pos[child][0] - pos[parent][0] > BOX_W + 40
    assert long_edges >= 3  # the built-in DAG has edges that skip columns: the case that matters


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("docs")
    toy = make_toy(tmp)
    rows = trade_rows("x", "BTC/USDT", "2024-01-01")
    rows[3]["side"] = "sideways"
    toy.write_bronze("x", "2024-01-01", rows)
    toy.write_bronze("x", "2024-01-02", trade_rows("x", "BTC/USDT", "2024-01-02"))
    assert toy.cli("build", env=ENV).returncode == 4
    toy.cli("docs", "--output", str(tmp / "site"), env=ENV, check=True)
    return (tmp / "site" / "index.html").read_text()


def _section(page: str, model: str) -> str:
    return page.split(f"id='model-{model}'")[1].split("</section>")[0]


def test_test_results_per_model(page):
    trades = _section(page, "toy_trades")
    verdicts = dict(re.findall(r"<td><code>([^<]+)</code></td><td class='(PASS|FAIL|WARN)'>", trades))
    assert verdicts["accepted_values(side)"] == "FAIL"
    assert verdicts["not_null(ts)"] == "PASS"
    assert "<td class='FAIL'>FAIL</td><td>1</td>" in trades  # one offending row
    assert "exchange=x/symbol=BTC%2FUSDT/date=2024-01-01</code> (accepted_values(side))" in trades
    assert "not run by any build yet" in _section(page, "toy_bars")  # skipped downstream


def test_legend_and_failed_box(page):
    assert "<div class='legend'>" in page and "a data test failed" in page
    for layer in ("bronze", "silver", "gold"):
        assert f"></span>{layer}</span>" in page
    assert page.count('stroke-dasharray="5,3"') == 1  # silver.toy_trades only


def test_compiled_sql_of_each_model(page):
    trades = _section(page, "toy_trades")
    assert "compiled SQL (partition exchange=x/symbol=BTC%2FUSDT/date=2024-01-02)" in trades
    assert "<pre class='sql'>" in trades and "read_parquet" in trades
    assert "compiled SQL (view)" in _section(page, "toy_trades_clean")
