"""DAG order, cycles, selectors."""

from __future__ import annotations

from pathlib import Path

import pytest

from daedalus.build.dag import build_dag
from daedalus.build.project import Model, ModelConfig, Project
from daedalus.build.selection import select
from daedalus.errors import CompileError, SelectionError


def proj(edges: dict[str, list[str]], tags: dict[str, list[str]] | None = None) -> Project:
    p = Project(roots=[])
    for name, refs in edges.items():
        layer = "gold" if name.startswith("g") else "silver"
        raw = "\n".join(f"SELECT * FROM {{{{ ref('{r}') }}}}" for r in refs) or "SELECT 1"
        m = Model(name, layer, Path(f"/p/sql/{layer}/{name}.sql"), raw, Path("/p/sql"), False)
        m.refs = list(refs)
        m.config = ModelConfig(tags=(tags or {}).get(name, []))
        p.models[name] = m
    return p


EDGES = {"s_a": [], "s_b": ["s_a"], "g_c": ["s_b"], "g_d": ["s_a", "g_c"], "s_e": []}


def test_topological_order():
    d = build_dag(proj(EDGES))
    pos = {n: i for i, n in enumerate(d.order)}
    for child, parents in EDGES.items():
        assert all(pos[p] < pos[child] for p in parents)
    assert d.ancestors("g_d") == {"s_a", "s_b", "g_c"}
    assert d.descendants("s_b") == {"g_c", "g_d"}


def test_models_calling_no_python_go_first_where_the_dag_allows():
    # numba loads at the first model that calls a UDF and stays (Session.con_for): the models that
    # call none are built before it. Parents still come first, and ties go by name.
    p = proj({"s_book": [], "s_trades": [], "g_hf": ["s_book"], "g_bars": ["g_hf"], "g_tbars": ["s_trades"]})
    for name in ("s_book", "g_hf"):
        p.models[name].calls_python = True
    assert build_dag(p).order == ["s_trades", "g_tbars", "s_book", "g_hf", "g_bars"]
    p.models["s_book"].calls_python = False  # by name again once nothing calls Python
    p.models["g_hf"].calls_python = False
    assert build_dag(p).order == ["s_book", "g_hf", "g_bars", "s_trades", "g_tbars"]


@pytest.mark.parametrize(
    ("sel", "exc", "expected"),
    [
        (None, None, {"s_a", "s_b", "g_c", "g_d", "s_e"}),
        (["g_c"], None, {"g_c"}),
        (["+g_c"], None, {"s_a", "s_b", "g_c"}),
        (["s_b+"], None, {"s_b", "g_c", "g_d"}),
        (["+s_b+"], None, {"s_a", "s_b", "g_c", "g_d"}),
        (["layer:gold"], None, {"g_c", "g_d"}),
        (["tag:x"], None, {"s_b", "g_d"}),
        (["tag:x+"], None, {"s_b", "g_c", "g_d"}),
        (["s_a+"], ["layer:gold"], {"s_a", "s_b"}),
        (["s_a+&layer:gold"], None, {"g_c", "g_d"}),
        (["s_a+,layer:gold"], None, {"s_a", "s_b", "g_c", "g_d"}),  # comma: a list, like a space
        (["s_a s_e"], None, {"s_a", "s_e"}),
        (["s_a", "s_e,g_c"], None, {"s_a", "s_e", "g_c"}),
        (["1+g_c"], None, {"s_b", "g_c"}),
        (["2+g_c"], None, {"s_a", "s_b", "g_c"}),
        (["s_b+1"], None, {"s_b", "g_c"}),
        (["s_a+1"], None, {"s_a", "s_b", "g_d"}),
        (["1+g_c+1"], None, {"s_b", "g_c", "g_d"}),
        (["gold.g_c"], None, {"g_c"}),
        (["silver.*"], None, {"s_a", "s_b", "s_e"}),
        (["g_*"], None, {"g_c", "g_d"}),
        (["tag:*"], None, {"s_b", "g_d"}),
        (["layer:g*"], None, {"g_c", "g_d"}),
        (None, ["+g_c"], {"g_d", "s_e"}),
    ],
)
def test_selectors(sel, exc, expected):
    p = proj(EDGES, tags={"s_b": ["x"], "g_d": ["x", "y"]})
    d = build_dag(p)
    got = select(p, d, sel, exc)
    assert set(got) == expected
    assert got == [n for n in d.order if n in expected]  # build order


def test_unknown_selector():
    p = proj(EDGES)
    with pytest.raises(SelectionError, match=r"selector 'zz' matches nothing: no such model"):
        select(p, build_dag(p), ["+zz"])


@pytest.mark.parametrize(
    ("sel", "exc", "message"),
    [
        (["layer:platinum"], None, "selector 'layer:platinum' matches nothing (layers: gold, silver)"),
        (["tag:nope"], None, "selector 'tag:nope' matches nothing (tags: x, y)"),
        (
            ["silver.g_c"],
            None,
            "selector 'silver.g_c' matches nothing: no such model, tag: or layer: (models: gold.g_c,",
        ),
        (["zz_*"], None, "selector 'zz_*' matches nothing: no model matches that pattern"),
        (
            ["s_a&layer:gold"],
            None,
            "selector 's_a&layer:gold' matches nothing: its parts have no model in common",
        ),
        (["s_a"], ["tag:nope"], "selector 'tag:nope' matches nothing"),
        (["s_a"], ["layer:silver"], "--select s_a --exclude layer:silver: the exclusions leave no model"),
    ],
)
def test_a_selection_matching_nothing_is_an_error_naming_it(sel, exc, message):
    p = proj(EDGES, tags={"s_b": ["x"], "g_d": ["x", "y"]})
    with pytest.raises(SelectionError) as e:
        select(p, build_dag(p), sel, exc)
    assert str(e.value).startswith(message) and e.value.exit_code == 2


def test_cycle_is_one_line_with_file_and_line():
    p = proj({"s_a": ["g_c"], "s_b": ["s_a"], "g_c": ["s_b"]})
    with pytest.raises(CompileError) as e:
        build_dag(p)
    msg = str(e.value)
    assert "\n" not in msg and "ref cycle:" in msg
    assert msg.split(": ref cycle")[0] in {
        "/p/sql/silver/s_a.sql:1",
        "/p/sql/silver/s_b.sql:1",
        "/p/sql/gold/g_c.sql:1",
    }
    loop = msg.split("ref cycle: ")[1].split(" -> ")
    assert loop[0] == loop[-1] and set(loop) == {"s_a", "s_b", "g_c"}
