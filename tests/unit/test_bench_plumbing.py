"""`daedalus bench` plumbing (issue 23): workers import the installed package whatever the working
directory holds, a failed worker fails the command, and a run is compared against a stored baseline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daedalus.devkit.bench.baseline import (
    SLOWER,
    compare,
    figures,
    load_baseline,
    problems,
    save_baseline,
)
from daedalus.devkit.bench.measure import run_worker
from daedalus.devkit.bench.suite import BenchSuite
from daedalus.errors import ConfigError

WORKER = ["-m", "daedalus.devkit.bench.worker"]


def _shadowing_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding a `daedalus/` package that breaks on import (a checkout's parent,
    a scratch copy): `python -m daedalus...` run from here would import it."""
    cwd = tmp_path / "cwd"
    (cwd / "daedalus").mkdir(parents=True)
    (cwd / "daedalus" / "__init__.py").write_text("raise ImportError('the shadowing daedalus/ folder')\n")
    monkeypatch.chdir(cwd)
    return cwd


def test_worker_imports_the_installed_package_from_a_shadowing_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _shadowing_cwd(tmp_path, monkeypatch)
    empty = tmp_path / "empty-lake"
    empty.mkdir()
    run = run_worker([*WORKER, json.dumps({"task": "floor", "root": str(empty)})], timeout=120)
    # the real worker ran (it found no bronze there); the shadow would have raised ImportError
    assert run.returncode == 0, run.stderr_tail
    assert run.result["error"] == f"no bronze orderbook files under {empty}"
    assert "shadowing" not in run.stderr_tail


def test_cli_start_figures_import_the_installed_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _shadowing_cwd(tmp_path, monkeypatch)
    out = BenchSuite(tmp_path / "work", log=lambda _: None).cli_start(tmp_path, repeat=1)
    assert "help_error" not in out, out
    assert out["help_seconds"] > 0


def test_a_failed_worker_is_a_failure_of_the_run(tmp_path: Path) -> None:
    suite = BenchSuite(tmp_path / "work", log=lambda _: None)
    empty = tmp_path / "empty-lake"
    empty.mkdir()
    suite.worker("floor-start", {"task": "floor", "root": str(empty)})
    suite.worker("no-such-task", {"task": "nope"})  # KeyError in the worker: a crash, not a result
    doc = suite.document()
    assert doc["failures"]["floor-start"] == f"no bronze orderbook files under {empty}"
    assert doc["failures"]["no-such-task"].startswith("exit 1: KeyError")
    found = problems(doc)
    assert found == [f"2 bench worker(s) failed, first floor-start: no bronze orderbook files under {empty}"]


def _doc(full_seconds: float, floor: float, rss_mb: float, ok: bool = True) -> dict:
    mb = 1024 * 1024
    return {
        "build": {
            "floor": {"next_to_full_build": floor},
            "full_build": {
                "ok": ok,
                "seconds": full_seconds,
                "peak_rss": rss_mb * mb,
                "models": {"orderbook": {"layer": "silver", "seconds": full_seconds / 2, "bytes": 10 * mb}},
            },
        },
        "failures": {} if ok else {"build-warm": "BuildError: boom"},
    }


def test_baseline_round_trip_and_comparison(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    save_baseline(path, _doc(10.0, 1.0, 500.0))
    base = load_baseline(path)
    assert base["figures"]["build: full build, warm"] == {"value": 10.0, "unit": "× floor", "seconds": 10.0}
    assert base["figures"]["build: full build, warm, peak RSS"] == {"value": 500.0, "unit": "MB"}
    assert base["figures"]["build: silver.orderbook"] == {"value": 5.0, "unit": "× floor", "seconds": 5.0}

    # twice as fast a machine: the same build relative to its floor is no regression
    same = compare(base, _doc(5.0, 0.5, 500.0))
    assert {r.name: round(r.ratio, 6) for r in same} == {
        "build: full build, warm": 1.0,
        "build: full build, warm, peak RSS": 1.0,
        "build: silver.orderbook": 1.0,
        "build: silver.orderbook bytes": 1.0,
    }
    assert problems({}, same) == []

    # 1.3x slower against its floor and 1.25x bigger: both named
    rows = compare(base, _doc(13.0, 1.0, 625.0))
    worse = sorted(r.name for r in rows if r.regressed)
    assert worse == [
        "build: full build, warm",
        "build: full build, warm, peak RSS",
        "build: silver.orderbook",
    ]
    assert problems({}, rows) == [
        f"3 figure(s) more than {SLOWER:g}x the baseline: build: full build, warm, "
        "build: full build, warm, peak RSS, build: silver.orderbook"
    ]
    # just under the limit is not a regression
    assert not any(r.regressed for r in compare(base, _doc(11.9, 1.0, 599.0)))


def test_a_time_is_named_only_when_floor_multiple_and_seconds_agree(tmp_path: Path) -> None:
    """The last session's false alarm: the same build beside a floor scan that came out 2.27x quicker
    is no regression; nor is a run slowed as a whole by a loaded machine (floor slowed with it)."""
    path = tmp_path / "baseline.json"
    save_baseline(path, _doc(10.0, 0.22, 500.0))
    base = load_baseline(path)
    dipped = {r.name: r for r in compare(base, _doc(10.0, 0.096, 500.0))}
    warm = dipped["build: full build, warm"]
    assert round(warm.ratio, 2) == 2.29 and warm.seconds_ratio == 1.0
    assert warm.compared == "× floor and s"
    assert not warm.regressed and problems({}, list(dipped.values())) == []
    loaded = {r.name: r for r in compare(base, _doc(13.0, 0.286, 500.0))}
    assert round(loaded["build: full build, warm"].seconds_ratio, 2) == 1.3
    assert not loaded["build: full build, warm"].regressed
    # slower on both: named; a baseline saved before seconds were kept compares × floor alone
    assert {r.name: r for r in compare(base, _doc(12.5, 0.22, 500.0))}["build: full build, warm"].regressed
    old = {"figures": {"build: full build, warm": {"value": 10 / 0.22, "unit": "× floor"}}}
    (row,) = compare(old, _doc(10.0, 0.096, 500.0))
    assert row.compared == "× floor" and row.regressed


@pytest.mark.parametrize(("seconds", "code"), [(12.5, 4), (11.9, 0)])
def test_bench_show_compare_exits_non_zero_only_past_the_limit(
    tmp_path: Path, seconds: float, code: int
) -> None:
    import json
    import subprocess
    import sys

    base = tmp_path / "baseline.json"
    save_baseline(base, _doc(10.0, 0.5, 500.0))
    run = tmp_path / "run.json"
    doc = _doc(seconds, 0.5, 500.0)
    doc["build"]["full_build"]["models"]["orderbook"]["rows"] = 1000  # what the tables print
    run.write_text(json.dumps(doc))
    out = subprocess.run(
        [sys.executable, "-P", "-m", "daedalus", "bench", "show", str(run), "--compare", str(base)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == code, out.stderr
    named = "more than 1.2x the baseline: build: full build, warm, build: silver.orderbook"
    assert (named in out.stderr) == (code != 0)


def test_tiny_figures_are_shown_but_never_named(tmp_path: Path) -> None:
    """A model taking half the floor, doubled by noise, is not a regression; a big one is."""
    path = tmp_path / "baseline.json"
    save_baseline(path, _doc(1.0, 1.0, 500.0))  # silver.orderbook: 0.5x floor
    rows = {r.name: r for r in compare(load_baseline(path), _doc(2.0, 1.0, 500.0))}
    assert rows["build: silver.orderbook"].ratio == 2.0
    assert not rows["build: silver.orderbook"].regressed
    assert rows["build: full build, warm"].regressed


def test_baseline_keeps_the_other_sections_figures(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    save_baseline(path, _doc(10.0, 1.0, 500.0))
    updates = {
        "updates": {
            "floor": {"snapshots": {"seconds": 0.5}, "updates": {"seconds": 0.25}},
            "updates_default": {"ok": True, "seconds": 5.0, "peak_rss": 400 * 1024 * 1024},
        }
    }
    save_baseline(path, updates)
    got = load_baseline(path)["figures"]
    assert got["build: full build, warm"]["value"] == 10.0
    assert got["updates: from updates, default"] == {"value": 20.0, "unit": "× floor", "seconds": 5.0}
    assert got["updates: from updates, default, peak RSS"] == {"value": 400.0, "unit": "MB"}
    # a build-only run compares only the build figures
    assert all(r.name.startswith("build:") for r in compare(load_baseline(path), _doc(10.0, 1.0, 500.0)))


def test_a_failed_figure_is_missing_not_zero() -> None:
    assert "build: full build, warm" not in figures(_doc(10.0, 1.0, 500.0, ok=False))


def test_unreadable_baseline_is_one_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "b.json"
    bad.write_text('{"no": "figures"}')
    with pytest.raises(ConfigError, match="not a bench baseline"):
        load_baseline(bad)
    with pytest.raises(ConfigError, match="not a readable bench baseline"):
        load_baseline(tmp_path / "missing.json")


def test_the_stored_baseline_is_a_baseline() -> None:
    base = load_baseline(Path(__file__).parents[2] / "benchmarks" / "baseline.json")
    assert base["figures"]["build: full build, warm"]["unit"] == "× floor"
    assert base["figures"]["build: full build, warm"]["value"] > 1


def test_collector_bench_channels_default_to_the_collectors() -> None:
    from daedalus.config import IngestionConfig
    from daedalus.devkit.bench.collect import collect_channels

    assert collect_channels(None) == tuple(IngestionConfig().channels)
    assert "book_updates" in collect_channels(None)  # not orderbook alone (issue 23)
    assert collect_channels(["orderbook", "trades"]) == ("orderbook", "trades")
    with pytest.raises(ValueError, match="orderbook or book_updates among them"):
        collect_channels(["trades"])
    with pytest.raises(ValueError, match="each one of"):
        collect_channels(["orderbook", "level2"])


def test_bench_build_refuses_a_bad_baseline_before_measuring(tmp_path: Path) -> None:
    import subprocess
    import sys

    bad = tmp_path / "baseline.json"
    bad.write_text("[]")
    out = subprocess.run(
        [
            sys.executable,
            "-P",
            "-m",
            "daedalus",
            "bench",
            "build",
            "--hours",
            "0.01",
            "--compare",
            str(bad),
            "--workdir",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, out.stderr
    assert "not a bench baseline" in out.stderr
    assert not (tmp_path / "work" / "data").exists()  # nothing generated: it stopped first


def _incremental(partitions: int, rss_mb: float, ok: bool = True) -> dict:
    return {
        "incremental": {
            "append_partitions": partitions,
            "append_vs_alone": 1.2,
            "append": {"ok": ok, "seconds": 2.8, "peak_rss": rss_mb * 1024 * 1024},
        }
    }


def test_an_append_that_rewrites_more_partitions_is_named(tmp_path: Path) -> None:
    """The regression a 7-day lake's append had (12 -> 36 partitions) names its figure; the build
    section's figures are kept and not compared by an incremental run."""
    path = tmp_path / "baseline.json"
    save_baseline(path, _doc(10.0, 1.0, 500.0))
    save_baseline(path, _incremental(12, 410.0))
    base = load_baseline(path)
    assert base["figures"]["incremental: partitions rewritten by the append"] == {
        "value": 12.0,
        "unit": "partitions",
    }
    assert base["figures"]["build: full build, warm"]["value"] == 10.0
    same = compare(base, _incremental(12, 420.0))
    assert {r.name for r in same} == {
        "incremental: partitions rewritten by the append",
        "incremental: rebuild after the append, peak RSS",
    }
    assert problems({}, same) == []
    worse = compare(base, _incremental(36, 410.0))
    assert problems({}, worse) == [
        "1 figure(s) more than 1.2x the baseline: incremental: partitions rewritten by the append"
    ]
    failed = {r.name: r for r in compare(base, _incremental(12, 410.0, ok=False))}
    assert failed["incremental: partitions rewritten by the append"].now is None
