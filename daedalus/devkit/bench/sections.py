"""`daedalus bench build` and `bench build --updates`: the sections that measure one symbol-day's build.

Apart from suite.py, which holds the data, lakes and worker plumbing every section shares: these say
what is measured and which targets it is held to.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daedalus.devkit.bench.measure import FLOOR_SCANS, dir_bytes, median, ratio, spread
from daedalus.devkit.bench.suite import (
    SEQUENTIAL_MODELS,
    SQL_GOLD_MODELS,
    START,
    SYMBOL,
    Target,
    link_bronze,
    mb,
    model_seconds,
)

if TYPE_CHECKING:
    from daedalus.devkit.bench.suite import BenchSuite


def build_section(suite: BenchSuite) -> dict[str, Any]:
    """The build section: one symbol-day built cold and warm beside the bronze scan floor, the SQL
    models at memory_limit 512MB, the sequential stage and kernels, numba start, CLI start, bytes."""
    suite.log("[build] one symbol-day")
    data = suite.data(1)
    sec: dict[str, Any] = {}
    floor_lake = suite.lake("floor", 1)
    floors: list[list[float]] = []
    floor_info: dict[str, Any] = {}

    def floor_pass(tag: str) -> list[float]:
        """The floor right before/after a build: a noisy shared machine drifts between scenarios,
        so each ratio divides by the floor measured next to its own build."""
        f = suite.worker(
            f"floor-{tag}",
            {
                "task": "floor",
                "root": str(floor_lake),
                "repeat": FLOOR_SCANS,
                "overrides": suite.overrides(floor_lake, "default"),
            },
        )
        times = [float(x) for x in f.result.get("seconds", [])] if f.ok else []
        floors.append(times)
        floor_info.update(
            {
                "snapshots": f.result.get("snapshots"),
                "levels": f.result.get("levels"),
                "error": f.error,
                "peak_rss": max(f.peak_rss, floor_info.get("peak_rss", 0)),
            }
        )
        return times

    floor_pass("start")
    cold_lake = suite.lake("cold", 1)
    cold = suite.build("build-cold", cold_lake, env=suite.numba_env("build", fresh=True))
    suite.warmed = cold.ok
    suite.drop(cold_lake)
    before_warm = floor_pass("before-warm")
    warm_lake = suite.lake("warm", 1)
    warm = suite.build("build-warm", warm_lake, env=suite.numba_env("build", fresh=False))
    around_warm = before_warm + floor_pass("after-warm")
    sec["full_build"] = suite.build_figures(warm)
    sec["cold_build"] = suite.build_figures(cold)
    sec["bytes"] = {
        "bronze": dir_bytes(data / "bronze"),
        "silver": dir_bytes(warm_lake / "silver"),
        "gold": dir_bytes(warm_lake / "gold"),
    }

    # Issue 4: its SQL models at memory_limit 512MB, each step in its own process so the peak RSS
    # is theirs: silver, then (not measured: issue 5's) the sequential models that
    # orderbook_hf joins, then the SQL gold models.
    i4_lake = suite.lake("sql512", 1)
    env = suite.numba_env("build", fresh=False)
    limit = {"duckdb.memory_limit": "512MB"}
    i4_silver = suite.build(
        "sql-512MB-silver",
        i4_lake,
        select=["layer:silver"],
        run_tests=False,
        catalog=False,
        overrides=limit,
        env=env,
    )
    suite.build(
        "sql-512MB-sequential",
        i4_lake,
        select=list(SEQUENTIAL_MODELS),
        run_tests=False,
        catalog=False,
        env=env,
    )
    i4 = suite.build(
        "sql-512MB-gold",
        i4_lake,
        select=list(SQL_GOLD_MODELS),
        run_tests=False,
        catalog=False,
        overrides=limit,
        env=env,
    )
    suite.drop(i4_lake)
    around_i4 = floors[-1] + floor_pass("after-sql")
    suite.drop(floor_lake)
    floor = median(around_warm) if around_warm else None
    floor_i4 = median(around_i4) if around_i4 else None
    sec["floor"] = {
        "seconds": median([x for f in floors for x in f]) if any(floors) else None,
        "next_to_full_build": floor,
        "next_to_sql_build": floor_i4,
        "passes": floors,
        "spread_next_to_full_build": spread(around_warm),
        **floor_info,
    }
    gold_sql = model_seconds(i4, SQL_GOLD_MODELS)
    i4_peak = max(i4.peak_rss, i4_silver.peak_rss) if i4.ok and i4_silver.ok else None
    sec["sql_models_512MB"] = {
        "ok": i4.ok and i4_silver.ok,
        "error": i4_silver.error or i4.error,
        "gold_seconds": gold_sql,
        "silver_seconds": model_seconds(i4_silver, layer="silver"),
        "peak_rss": i4_peak,
        "gold_peak_rss": i4.peak_rss,
        "silver_peak_rss": i4_silver.peak_rss,
        "gold": suite.build_figures(i4),
        "silver": suite.build_figures(i4_silver),
    }

    seq = model_seconds(warm, SEQUENTIAL_MODELS)
    k = (
        suite.worker(
            "kernels",
            {"task": "kernels", "root": str(warm_lake), "repeat": 3},
            env=suite.numba_env("build", fresh=False),
        )
        if warm.ok
        else None
    )
    sec["sequential"] = {
        "stage_seconds": seq,
        "kernels": k.result if k is not None else None,
        "kernels_error": k.error if k is not None else "full build failed",
    }
    jit_cold = suite.worker("jit-cold", {"task": "jit"}, env=suite.numba_env("jit", fresh=True))
    jit_warm = suite.worker("jit-warm", {"task": "jit"}, env=suite.numba_env("jit", fresh=False))
    sec["start"] = {
        "jit_cold_seconds": jit_cold.result.get("seconds"),
        "jit_warm_seconds": jit_warm.result.get("seconds"),
        "import_seconds": jit_warm.result.get("import_seconds"),
        "build_cold_seconds": cold.result.get("seconds"),
        "build_warm_seconds": warm.result.get("seconds"),
    }
    sec["cli"] = suite.cli_start(warm_lake)

    full = warm.result.get("seconds") if warm.ok else None
    per_kernel = (k.result.get("per_kernel") or {}) if k is not None and k.ok else {}
    slowest = min(
        ((name, f["rows_per_second"]) for name, f in per_kernel.items()), key=lambda x: x[1], default=None
    )
    suite.targets += [
        Target("issue 7: full build (silver+gold+tests) / floor", ratio(full, floor), 6, "×"),
        Target("issue 23: full build / floor", ratio(full, floor), 15, "×"),
        Target(
            "issue 23: full build peak RSS, default profile",
            mb(warm.peak_rss) if warm.ok else None,
            600,
            "MB",
        ),
        Target(
            "issue 4: SQL gold models / floor",
            ratio(gold_sql, floor_i4),
            4,
            "×",
            note="orderbook_hf, orderbook_bars, trade_bars, ticker_hf",
        ),
        Target("issue 4: peak RSS, silver + SQL gold at memory_limit 512MB", mb(i4_peak), 1024, "MB"),
        Target(
            "issue 5: sequential stage / floor",
            ratio(seq, floor),
            1.5,
            "×",
            note="orderbook_seq + vpin_buckets",
        ),
        Target(
            "issue 5: kernels alone, slowest kernel",
            slowest[1] / 1e6 if slowest else None,
            20,
            "M rows/s",
            op=">=",
            note=slowest[0] if slowest else "",
        ),
        Target("issue 7: `daedalus --help` start", sec["cli"].get("help_seconds"), 1, "s"),
        Target("issue 7: `daedalus ls` start", sec["cli"].get("ls_seconds"), 1, "s"),
    ]
    suite.results["build"] = sec
    return sec


def updates_data(suite: BenchSuite) -> Path:
    """One symbol-day whose bronze holds both order-book channels of the same deep book."""
    from daedalus.devkit.synth import generate

    root = suite.workdir / "data" / "bronze-updates"
    if not (root / "bronze").exists():
        suite.log(f"generating 1 symbol-day with book updates ({suite.hours:g} h) ...")
        t = time.perf_counter()
        summary = generate(root, symbols=[SYMBOL], start=START, days=1, hours=suite.hours, book_updates=True)
        suite.results.setdefault("data", {}).update(
            {
                "updates_generate_seconds": time.perf_counter() - t,
                "book_updates_per_symbol_day": summary.rows["book_updates"],
            }
        )
    return root


def updates_section(suite: BenchSuite) -> dict[str, Any]:
    """Full build of one symbol-day from snapshots vs from book updates, measured in one run."""
    suite.log("[updates] one symbol-day: from 20-level snapshots vs from book updates + checkpoints")
    data = updates_data(suite)
    suite.warm_up()
    env = suite.numba_env("build", fresh=False)
    common = {"trades", "ticker", "events"}
    sec: dict[str, Any] = {
        "bytes": {c: dir_bytes(data / "bronze" / c) for c in ("orderbook", "book_updates")}
    }
    floors: dict[str, Any] = {}
    sec["floor"] = floors
    for source, channel in (("snapshots", "orderbook"), ("updates", "book_updates")):
        # the floor of this source (DuckDB reading every book list of its channel), measured in this
        # run so its builds are compared as multiples of it (benchmarks/baseline.json)
        f = suite.worker(
            f"floor-{source}",
            {
                "task": "floor",
                "root": str(data),
                "channel": channel,
                "repeat": FLOOR_SCANS,
                "overrides": suite.overrides(data, "default"),
            },
        )
        scans = [float(x) for x in f.result.get("seconds") or []] if f.ok else []
        floors[source] = {
            "seconds": median(scans) if scans else None,
            "spread": spread(scans),
            "peak_rss": f.peak_rss,
            "levels": f.result.get("levels"),
            "error": f.error,
        }
        for profile in ("default", "pi"):
            lake = suite.workdir / "lakes" / f"{source}-{profile}"
            shutil.rmtree(lake, ignore_errors=True)
            lake.mkdir(parents=True)
            for c in common | {channel}:
                link_bronze(data, lake, channel=c)
            run = suite.build(f"from-{source}-{profile}", lake, profile=profile, env=env)
            sec[f"{source}_{profile}"] = suite.build_figures(run)
            suite.drop(lake)
    for source in ("snapshots", "updates"):
        fl = floors[source].get("seconds")
        fig = sec[f"{source}_default"]
        suite.targets.append(
            Target(
                f"issue 23: full build from {source} / its floor",
                ratio(fig.get("seconds"), fl) if fig.get("ok") else None,
                15,
                "×",
            )
        )
        suite.targets.append(
            Target(
                f"issue 23: peak RSS from {source}, default profile",
                mb(fig.get("peak_rss")) if fig.get("ok") else None,
                600,
                "MB",
            )
        )
        pi_fig = sec[f"{source}_pi"]
        suite.targets.append(
            Target(
                f"issue 23: peak RSS from {source}, Pi profile",
                mb(pi_fig.get("peak_rss")) if pi_fig.get("ok") else None,
                450,
                "MB",
            )
        )
    t_snap = sec["snapshots_default"].get("seconds") if sec["snapshots_default"]["ok"] else None
    t_upd = sec["updates_default"].get("seconds") if sec["updates_default"]["ok"] else None
    sec["updates_vs_snapshots"] = ratio(t_upd, t_snap)
    pi = sec["updates_pi"]
    suite.targets += [
        Target(
            "issue 13: full build from updates / from snapshots (same run)",
            sec["updates_vs_snapshots"],
            1,
            "×",
        ),
        Target(
            "issue 13: Pi profile peak RSS, one symbol-day from updates",
            mb(pi.get("peak_rss")) if pi.get("ok") else None,
            600,
            "MB",
        ),
    ]
    suite.results["updates"] = sec
    return sec
