"""Acceptance: selectors choose models, and `--dry-run` lists exactly the partitions a build rewrites."""

from __future__ import annotations

import pytest
from toy import make_toy, trade_rows

from daedalus.build import build, plan_build

ENV = {"DAEDALUS_NO_UDFS": "1"}
DAYS = ("2024-01-01", "2024-01-02")


@pytest.fixture
def toy(tmp_path):
    t = make_toy(tmp_path)
    for day in DAYS:
        t.write_bronze("x", day, trade_rows("x", "BTC/USDT", day))
    return t


def models(plan) -> set[str]:
    return {p.model for p in plan}


@pytest.mark.parametrize(
    ("select", "exclude", "expected"),
    [
        (None, None, {"toy_trades", "toy_bars"}),
        (["toy_bars"], None, {"toy_bars"}),
        (["+toy_bars"], None, {"toy_trades", "toy_bars"}),
        (["toy_trades+"], None, {"toy_trades", "toy_bars"}),
        (["toy_trades_clean+"], ["toy_bars"], {"toy_trades"}),
        (["tag:bars"], None, {"toy_bars"}),
        (["tag:toy"], ["tag:bars"], {"toy_trades"}),
        (["layer:silver"], None, {"toy_trades"}),
        (["layer:gold", "toy_trades"], None, {"toy_trades", "toy_bars"}),
        (["+toy_bars&tag:bars"], None, {"toy_bars"}),  # & = intersection
        (["+toy_bars,tag:bars"], None, {"toy_trades", "toy_bars"}),  # comma = a list (union)
        (["silver.toy_trades"], None, {"toy_trades"}),  # the name `ls` prints
        (["gold.*"], None, {"toy_bars"}),
        (["toy_*"], ["*_clean", "toy_bars"], {"toy_trades"}),
        (["1+toy_bars"], None, {"toy_trades", "toy_bars"}),
        (["toy_trades_clean"], None, set()),  # a view writes nothing
        (["path:gold/"], None, {"toy_bars"}),  # the model file's path contains the fragment
        (["path:toy_"], ["path:bars"], {"toy_trades"}),
    ],
)
def test_selectors(toy, select, exclude, expected):
    build(toy.config(), udfs=False)
    plan = plan_build(toy.config(), select=select, exclude=exclude, full_refresh=True, udfs=False)
    assert models(plan) == expected


def test_selecting_a_child_alone_needs_its_parent_built(toy):
    """Unselected parents are read as the manifest has them: on an empty lake, toy_bars has no input."""
    assert plan_build(toy.config(), select=["toy_bars"], udfs=False) == []
    build(toy.config(), select=["toy_trades"], udfs=False)
    assert models(plan_build(toy.config(), select=["toy_bars"], udfs=False)) == {"toy_bars"}


def test_unknown_selector_is_one_line(toy):
    proc = toy.cli("build", "--select", "toy_barz", env=ENV)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: selector 'toy_barz' matches nothing: no such model, tag: or layer: "
        "(models: gold.toy_bars, silver.toy_trades, silver.toy_trades_clean)"
    )


def test_dry_run_lists_exactly_what_build_rewrites(toy):
    proc = toy.cli("build", "--dry-run", env=ENV, check=True)
    assert proc.stdout.splitlines() == [
        "toy_trades exchange=x/symbol=BTC%2FUSDT/date=2024-01-01 (new)",
        "toy_trades exchange=x/symbol=BTC%2FUSDT/date=2024-01-02 (new)",
        "toy_bars exchange=x/symbol=BTC%2FUSDT/date=2024-01-01 (new)",
        "toy_bars exchange=x/symbol=BTC%2FUSDT/date=2024-01-02 (new)",
    ]
    assert not (toy.root / "_state" / "manifest.json").exists(), "--dry-run writes nothing"
    assert not (toy.root / "silver").exists()
    toy.cli("build", env=ENV, check=True)
    assert toy.cli("build", "--dry-run", env=ENV, check=True).stdout == ""

    toy.write_bronze("x", "2024-01-01", trade_rows("x", "BTC/USDT", "2024-01-01", n=4, start_id=77), "late")
    toy.write_bronze("x", "2024-01-01", trade_rows("x", "SOL/USDT", "2024-01-01", n=4), "sol")
    dry = toy.cli("build", "--dry-run", env=ENV, check=True).stdout.splitlines()
    assert dry == [
        "toy_trades exchange=x/symbol=BTC%2FUSDT/date=2024-01-01 (inputs changed)",
        "toy_trades exchange=x/symbol=SOL%2FUSDT/date=2024-01-01 (new)",
        "toy_bars exchange=x/symbol=BTC%2FUSDT/date=2024-01-01 (upstream rebuilt)",
        "toy_bars exchange=x/symbol=BTC%2FUSDT/date=2024-01-02 (upstream rebuilt)",
        "toy_bars exchange=x/symbol=SOL%2FUSDT/date=2024-01-01 (new)",
    ]
    sel = toy.cli("build", "--dry-run", "--select", "toy_bars", "--start", "2024-01-02", env=ENV, check=True)
    assert sel.stdout.splitlines() == []  # toy_trades is not selected: nothing of toy_bars 01-02 changed yet
    result = build(toy.config(), udfs=False)
    assert [f"{m} {p}" for m, p in result.rebuilt] == [line.rsplit(" (", 1)[0] for line in dry]
    assert (
        toy.cli("build", "--dry-run", "--full-refresh", env=ENV, check=True).stdout.count("(full refresh)")
        == 6
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--select", "layer:platinum"],
            "error: selector 'layer:platinum' matches nothing (layers: gold, silver)",
        ),
        (["--select", "tag:nope"], "error: selector 'tag:nope' matches nothing (tags: bars, toy)"),
        (
            ["--start", "2026-12-05", "--end", "2026-12-01"],
            "error: --start 2026-12-05 --end 2026-12-01: the range is empty (start is after end)",
        ),
    ],
)
def test_a_selection_matching_nothing_fails_on_the_command_line(toy, args, message):
    proc = toy.cli("build", *args, env=ENV)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == message
    assert not (toy.root / "_state" / "manifest.json").exists()


def test_space_separated_selectors_on_the_command_line(toy):
    proc = toy.cli("build", "--select", "silver.toy_trades", "toy_bars", "--dry-run", env=ENV, check=True)
    assert {line.split()[0] for line in proc.stdout.splitlines()} == {"toy_trades", "toy_bars"}
    proc = toy.cli("build", "--select", "silver.toy_trades", "--dry-run", env=ENV, check=True)
    assert {line.split()[0] for line in proc.stdout.splitlines()} == {"toy_trades"}
