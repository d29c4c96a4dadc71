"""daedalus/build/planner.py: a stale partition's reason names the fingerprint part that changed, and
both executors record partitions alike (step.record_partition)."""

from __future__ import annotations

import json

import pytest
from toy import make_toy, trade_rows

from daedalus.build import build, plan_build
from daedalus.build.distributed import build_distributed

DAYS = ("2024-01-01", "2024-01-02")


@pytest.fixture
def toy(tmp_path, monkeypatch):
    monkeypatch.setenv("DAEDALUS_NO_UDFS", "1")
    t = make_toy(tmp_path)
    for day in DAYS:
        t.write_bronze("x", day, trade_rows("x", "BTC/USDT", day))
    build(t.config(), udfs=False, run_tests=False)
    return t


def _reasons(toy) -> dict[tuple[str, str], str]:
    return {(p.model, p.date or ""): p.reason for p in plan_build(toy.config(), udfs=False)}


def _edit_bars(toy, old: str, new: str) -> None:
    path = toy.project / "sql" / "gold" / "toy_bars.sql"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_the_manifest_records_named_parts(toy) -> None:
    for ms in toy.manifest()["models"].values():
        for ps in ms["partitions"].values():
            assert set(ps["parts"]) == {"sql", "config", "inputs", "previous", "sql_form"}


def test_comments_and_layout_rebuild_nothing(toy) -> None:
    _edit_bars(toy, "count(*) AS n_trades", "count( * )   AS n_trades -- trades in the bar\n  /* why */")
    assert _reasons(toy) == {}
    _edit_bars(toy, "-- trades in the bar", "-- the trades in the bar, counted")
    assert _reasons(toy) == {}
    _edit_bars(toy, "count( * )", "count( * ) + 0")  # a real change still is one
    assert set(_reasons(toy).items()) == {(("toy_bars", d), "sql changed") for d in DAYS}


def test_a_partition_recorded_over_the_rendered_text_is_not_rebuilt_on_upgrade(tmp_path, monkeypatch) -> None:
    """Manifests written before the sql part was canonical hash the rendered text: compared alike."""
    import daedalus.build.planner as planner

    monkeypatch.setenv("DAEDALUS_NO_UDFS", "1")
    t = make_toy(tmp_path)
    for day in DAYS:
        t.write_bronze("x", day, trade_rows("x", "BTC/USDT", day))
    with monkeypatch.context() as m:  # the older version: fingerprints over the text as rendered
        m.setattr(planner, "canonical_sql", lambda sql: sql)
        build(t.config(), udfs=False, run_tests=False)
    path = t.root / "_state" / "manifest.json"
    doc = json.loads(path.read_text())
    for ms in doc["models"].values():
        for ps in ms["partitions"].values():
            assert ps["parts"].pop("sql_form") == planner.SQL_FORM
    path.write_text(json.dumps(doc))
    assert _reasons(t) == {}
    _edit_bars(t, "count(*) AS n_trades", "count(*) + 0 AS n_trades")
    assert set(_reasons(t).items()) == {(("toy_bars", d), "sql changed") for d in DAYS}


def test_changed_sql_is_named(toy) -> None:
    _edit_bars(toy, "count(*) AS n_trades", "count(*) + 0 AS n_trades")
    assert set(_reasons(toy).items()) == {(("toy_bars", d), "sql changed") for d in DAYS}


def test_changed_data_affecting_config_is_named(toy) -> None:
    _edit_bars(toy, "order_by=['bar_ts']", "order_by=['bar_ts'], settings={'threads': 1}")
    assert set(_reasons(toy).items()) == {(("toy_bars", d), "config changed") for d in DAYS}


def test_touched_input_is_named(toy) -> None:
    toy.write_bronze("x", DAYS[1], trade_rows("x", "BTC/USDT", DAYS[1], n=5, start_id=500), "late")
    reasons = _reasons(toy)
    assert reasons[("toy_trades", DAYS[1])] == "inputs changed"
    assert reasons[("toy_bars", DAYS[1])] == "upstream rebuilt"
    assert ("toy_trades", DAYS[0]) not in reasons


def test_a_manifest_without_parts_falls_back_to_the_generic_reason(toy) -> None:
    path = toy.root / "_state" / "manifest.json"
    doc = json.loads(path.read_text())
    for ms in doc["models"].values():
        for ps in ms["partitions"].values():
            ps.pop("parts")
    path.write_text(json.dumps(doc))
    assert _reasons(toy) == {}  # the combined fingerprint is unchanged: nothing to rebuild
    _edit_bars(toy, "count(*) AS n_trades", "count(*) + 0 AS n_trades")
    assert set(_reasons(toy).values()) == {"inputs changed"}


def test_both_executors_record_the_same_partitions(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DAEDALUS_NO_UDFS", "1")
    lakes = {}
    for name in ("local", "tasks"):
        t = make_toy(tmp_path / name)
        for day in DAYS:
            t.write_bronze("x", day, trade_rows("x", "BTC/USDT", day))
        lakes[name] = t
    build(lakes["local"].config(), udfs=False, run_tests=False)
    build_distributed(lakes["tasks"].config(), executor="local", udfs=False, run_tests=False)

    def recorded(t) -> dict:  # (input files differ in mtime between the lakes, so their hashes do)
        return {
            name: (
                {
                    pid: (p["parts"]["sql"], p["parts"]["config"], p["rows"], sorted(p["inputs"]))
                    for pid, p in ms["partitions"].items()
                },
                ms["columns"],
            )
            for name, ms in t.manifest()["models"].items()
        }

    assert recorded(lakes["local"]) == recorded(lakes["tasks"])


def _volume_comment(toy) -> str | None:
    from daedalus.serve.catalog import open_catalog

    con = open_catalog(toy.config())
    try:
        row = con.execute(
            "SELECT comment FROM duckdb_columns() WHERE table_name = 'toy_bars' AND column_name = 'volume'"
        ).fetchone()
    finally:
        con.close()
    return row[0] if row else None


def test_a_docs_only_change_is_reported_rebuilds_nothing_and_refreshes_the_comments(toy) -> None:
    assert _volume_comment(toy) == "Base volume traded in the minute."
    built = toy.built_at()
    yml = toy.project / "sql" / "gold" / "toy.yml"
    yml.write_text(
        yml.read_text().replace("Base volume traded in the minute.", "Base units traded per minute.")
    )
    _edit_bars(toy, "count(*) AS n_trades", "count(*) AS n_trades /* a comment as well */")
    assert _reasons(toy) == {}
    proc = toy.cli("run", env={"DAEDALUS_NO_UDFS": "1"}, check=True)
    assert "a docs-only change, nothing to rebuild" in proc.stderr, proc.stderr
    assert toy.built_at() == built  # not one partition rewritten
    assert _volume_comment(toy) == "Base units traded per minute."
    # once refreshed, the next build has nothing to say but that everything is up to date
    again = build(toy.config(), udfs=False, run_tests=False)
    assert again.plan == [] and not again.docs_refreshed
    proc = toy.cli("run", env={"DAEDALUS_NO_UDFS": "1"}, check=True)
    assert "everything is up to date" in proc.stderr, proc.stderr
