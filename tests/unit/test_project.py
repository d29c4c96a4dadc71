"""Project loading: layers, docs, data tests, sources, built-in + user roots, lookback parsing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from daedalus.build.materializations import parse_config
from daedalus.build.project import load_project, lookback_seconds
from daedalus.errors import CompileError

TOY = Path(__file__).resolve().parents[1] / "fixtures" / "toy_project"


@pytest.fixture
def toy(tmp_path) -> Path:
    dst = tmp_path / "toy"
    shutil.copytree(TOY, dst)
    return dst


def test_toy_project_loads_alone(toy):
    p = load_project(project_dir=toy)
    assert sorted(p.models) == ["toy_bars", "toy_trades", "toy_trades_clean"]
    assert p.models["toy_bars"].layer == "gold" and p.models["toy_trades"].layer == "silver"
    assert p.models["toy_bars"].relation == "gold.toy_bars"
    assert p.models["toy_trades"].docs.columns["side"].tests == [
        {"accepted_values": {"values": ["buy", "sell"]}}
    ]
    assert p.models["toy_bars"].docs.description.startswith("One-minute bars")
    assert list(p.sources) == ["trades"] and p.sources["trades"].partition_by == ["exchange", "date"]
    assert [t.name for t in p.sql_tests] == ["bars_have_trades"]
    assert len(p.macros) == 1


def test_builtin_models_sit_beside_user_models(toy):
    (toy / "project.yml").write_text("include_builtin: true\n")
    p = load_project(project_dir=toy)
    assert {"toy_bars", "toy_trades"} <= set(p.models)
    builtin = [m for m in p.models.values() if m.builtin]
    assert builtin, "the installed package's models are loaded"
    assert {"ticker", "trades", "orderbook", "events"} <= set(p.sources)


def test_builtin_sources_declare_the_four_channels():
    p = load_project(include_builtin=True)
    for ch in ("ticker", "trades", "orderbook", "events"):
        assert p.sources[ch].source_name == "bronze" and p.sources[ch].docs.description


def test_duplicate_model_name(toy):
    (toy / "sql" / "gold" / "toy_trades.sql").write_text("SELECT 1 AS x\n")
    with pytest.raises(CompileError, match=r"toy_trades.sql:1: model name 'toy_trades' is already used by"):
        load_project(project_dir=toy)


def test_model_outside_a_layer(toy):
    (toy / "sql" / "loose.sql").write_text("SELECT 1\n")
    with pytest.raises(CompileError, match=r"loose.sql:1: a model must sit in a layer folder"):
        load_project(project_dir=toy)


def test_yml_for_missing_model(toy):
    (toy / "sql" / "gold" / "extra.yml").write_text("models:\n  - name: nope\n")
    with pytest.raises(CompileError, match=r"extra.yml:2: documents model 'nope', which does not exist"):
        load_project(project_dir=toy)


def test_bad_yaml_names_the_line(toy):
    (toy / "sql" / "gold" / "extra.yml").write_text("models:\n  - name: [oops\n")
    with pytest.raises(CompileError, match=r"extra.yml:\d+: not valid YAML"):
        load_project(project_dir=toy)


def test_unknown_project_yml_key(toy):
    (toy / "project.yml").write_text("include_bultin: false\n")
    with pytest.raises(CompileError, match="unknown key 'include_bultin'"):
        load_project(project_dir=toy)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("900 seconds", 900),
        ("1 day", 86400),
        ("2 hours", 7200),
        ("15 minutes", 900),
        ("900s", 900),
        ("1d", 86400),
        ("0 seconds", 0),
        (None, 0),
        ("30", 30),
    ],
)
def test_lookback(text, seconds):
    assert lookback_seconds(text) == seconds


@pytest.mark.parametrize("text", ["soon", "5 fortnights", "-1 day", "1 2 3"])
def test_bad_lookback(text):
    with pytest.raises(ValueError):
        lookback_seconds(text)


def test_config_checks():
    """Keys and values (project.parse_config_kwargs), then the kind's own options (its materialization)."""
    cfg = parse_config(
        {
            "materialized": "partitioned",
            "partition_by": ["exchange", "date"],
            "lookback": "1 day",
            "settings": {"threads": 1},
        },
        "m.sql:1",
    )
    assert cfg.partition_by == ["exchange", "date"] and cfg.settings == {"threads": 1}
    with pytest.raises(CompileError, match=r"m.sql:1: materialized='partitioned' needs partition_by"):
        parse_config({"materialized": "partitioned"}, "m.sql:1")
    with pytest.raises(CompileError, match=r"partition_by must include 'date'"):
        parse_config({"materialized": "partitioned", "partition_by": ["exchange"]}, "m.sql:1")
    with pytest.raises(CompileError, match=r"m.sql:1: invalid config 'lookback'"):
        parse_config({"lookback": "soon"}, "m.sql:1")
    with pytest.raises(CompileError, match=r"carry_state only applies"):
        parse_config({"carry_state": True}, "m.sql:1")
    with pytest.raises(CompileError, match=r"unknown config key 'tag' \(allowed: materialized, partition_by"):
        parse_config({"tag": "x"}, "m.sql:1")
