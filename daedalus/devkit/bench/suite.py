"""`daedalus bench`: the scenarios, each measured in its own worker process, in one run.

Data comes from `daedalus.devkit.synth.generate` (one symbol, BTC/USDT, N consecutive UTC days of `hours`
each; a full day is 864,000 snapshots at 100 ms). It is generated once per run under the work
directory and hard-linked into a fresh lake per scenario, so every build starts from the same bronze
and nothing but its own silver/gold/_state.

Sections (each a dict of figures; `targets` holds the checks of issues 4, 5 and 7):
- build: the floor (DuckDB reading every bronze order-book list), the full build (silver + gold +
  data tests + catalog) with its per-model breakdown, cold (empty numba cache) vs warm, issue 4's SQL
  gold models at memory_limit 512MB, issue 5's sequential stage and kernels alone, bytes of bronze
  vs silver vs gold, CLI start.
- scaling: 1, 2, 4 symbol-days, default and Pi profile: seconds and peak RSS per symbol-day.
- incremental: a 7-symbol-day lake, append the next hour of bronze and rebuild, vs that hour alone
  and vs the full 7-day build.
- collector: the collector's own benchmark (`daedalus bench collect`) in a worker.
- updates: one symbol-day generated with `book_updates` (a deep book, daedalus/devkit/synth_book.py) and
  built twice side by side, from its 20-level snapshots and from its updates + hourly checkpoints,
  with the default and the Pi profile: seconds, peak RSS, bronze bytes of each channel.

Ratios are only meaningful inside one run: the machine is shared and absolute times are noisy.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from daedalus.devkit.bench.measure import WorkerRun, median, python_flags, ratio, run_worker

SYMBOL = "BTC/USDT"
START = "2024-01-01"
SEQUENTIAL_MODELS = ("orderbook_seq", "vpin_buckets")
SQL_GOLD_MODELS = ("orderbook_hf", "orderbook_bars", "trade_bars", "ticker_hf")
"""Issue 4's gold models (orderbook_hf measured without the sequential join: see build_section)."""


@dataclass
class Target:
    """One target of the issues: `value op limit`."""

    name: str
    value: float | None
    limit: float
    unit: str
    op: str = "<="  # or ">="
    note: str = ""

    @property
    def ok(self) -> bool | None:
        if self.value is None:
            return None
        return self.value <= self.limit if self.op == "<=" else self.value >= self.limit

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "limit": self.limit,
            "op": self.op,
            "unit": self.unit,
            "ok": self.ok,
            "note": self.note,
        }


def pi_config_path() -> Path:
    """config/pi.yaml as shipped with the package (the repository's config/ folder in a checkout)."""
    return Path(str(resources.files("daedalus.bundled_config") / "pi.yaml"))


def day(i: int) -> str:
    return (dt.date.fromisoformat(START) + dt.timedelta(days=i)).isoformat()


def link_bronze(src: Path, dst: Path, dates: list[str] | None = None, channel: str | None = None) -> int:
    """Hard-link (copy where links are impossible) src's bronze files of `dates` (all when None), of one
    `channel` (all when None), into the lake `dst`; returns their bytes."""
    total = 0
    for path in sorted((src / "bronze" / (channel or "")).rglob("*.parquet")):
        date = next((p.split("=", 1)[1] for p in path.parts if p.startswith("date=")), None)
        if dates is not None and date not in dates:
            continue
        target = dst / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)
        total += path.stat().st_size
    return total


def model_seconds(
    run: WorkerRun, names: tuple[str, ...] | None = None, layer: str | None = None
) -> float | None:
    models = run.result.get("models") or {}
    if not run.ok or not models:
        return None
    picked = [
        m
        for n, m in models.items()
        if (names is None or n in names) and (layer is None or m["layer"] == layer)
    ]
    return sum(m["seconds"] for m in picked) if picked else None


class BenchSuite:
    def __init__(
        self,
        workdir: str | Path,
        hours: float = 24.0,
        overrides: dict[str, Any] | None = None,
        log: Callable[[str], None] = print,
        timeout: float = 3600.0,
        keep_lakes: bool = False,
    ) -> None:
        self.workdir = Path(workdir)
        self.keep_lakes = keep_lakes
        self.hours = float(hours)
        # The default profile: config defaults plus the user's --threads / --memory-limit flags.
        self.base = {k: v for k, v in (overrides or {}).items() if v is not None and k.startswith("duckdb.")}
        self.log = log
        self.timeout = timeout
        self.results: dict[str, Any] = {}
        self.targets: list[Target] = []
        self.max_days = 1
        """Days the whole run will need: the bronze is generated once, for the longest scenario."""
        self._data: Path | None = None
        self._data_days = 0
        self._runs: dict[str, WorkerRun] = {}
        self.warmed = False

    # -- data and lakes ----------------------------------------------------------------------

    def data(self, days: int) -> Path:
        """Bronze for `days` days of one symbol (generated once; a longer request regenerates)."""
        from daedalus.devkit.synth import generate

        if self._data is not None and self._data_days >= days:
            return self._data
        days = max(days, self.max_days)
        root = self.workdir / "data" / f"bronze-{days}d"
        shutil.rmtree(root, ignore_errors=True)
        self.log(f"generating {days} symbol-day(s) of bronze ({self.hours:g} h each) ...")
        t = time.perf_counter()
        summary = generate(root, symbols=[SYMBOL], start=START, days=days, hours=self.hours)
        self.results.setdefault("data", {}).update(
            {
                "generate_seconds_per_symbol_day": (time.perf_counter() - t) / days,
                "snapshots_per_symbol_day": summary.rows["orderbook"] // days,
                "trades_per_symbol_day": summary.rows["trades"] // days,
                "hours_per_day": self.hours,
            }
        )
        self._data, self._data_days = root, days
        return root

    def appended_hour(self) -> Path:
        """The hour after the lake's last day: its first hour (a separate series start, like a restart)."""
        from daedalus.devkit.synth import generate

        root = self.workdir / "data" / "append-hour"
        if not root.exists():
            generate(root, symbols=[SYMBOL], start=day(7), days=1, hours=self.append_hours, seed=8)
        return root

    @property
    def append_hours(self) -> float:
        return 1.0 if self.hours >= 4 else self.hours / 4

    def lake(self, name: str, days: int, extra: Path | None = None) -> Path:
        root = self.workdir / "lakes" / name
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        link_bronze(self.data(days), root, [day(i) for i in range(days)])
        if extra is not None:
            link_bronze(extra, root)
        return root

    def drop(self, lake: Path) -> None:
        """Remove a measured lake and its spill directory (a 7-day lake holds gigabytes) unless kept."""
        if not self.keep_lakes:
            shutil.rmtree(lake, ignore_errors=True)
            shutil.rmtree(lake.parent / f"{lake.name}-tmp", ignore_errors=True)

    # -- workers -----------------------------------------------------------------------------

    def overrides(self, root: Path, profile: str, **extra: Any) -> dict[str, Any]:
        o: dict[str, Any] = {
            "storage.root": str(root),
            "duckdb.temp_directory": str(root.parent / f"{root.name}-tmp"),
            "storage.retain_replaced_minutes": 0,
        }
        if profile == "default":
            o.update(self.base)
        o.update(extra)
        return o

    def worker(
        self, key: str, spec: dict[str, Any], env: dict[str, str] | None = None, watch_dir: Path | None = None
    ) -> WorkerRun:
        self.log(f"  {key} ...")
        run = run_worker(
            ["-m", "daedalus.devkit.bench.worker", json.dumps(spec)],
            env=env,
            timeout=self.timeout,
            watch_dir=watch_dir,
        )
        if not run.ok:
            self.log(f"  {key}: FAILED: {run.error}")
        self._runs[key] = run
        return run

    def build(
        self, key: str, root: Path, profile: str = "default", env: dict[str, str] | None = None, **spec: Any
    ) -> WorkerRun:
        extra = spec.pop("overrides", {})
        o = self.overrides(root, profile, **extra)
        full = {
            "task": "build",
            "overrides": o,
            "config_path": str(pi_config_path()) if profile == "pi" else None,
            "run_tests": True,
            "catalog": True,
            **spec,
        }
        return self.worker(key, full, env=env, watch_dir=Path(o["duckdb.temp_directory"]))

    def warm_up(self) -> None:
        """Fill the numba cache with a tiny build first, so no measured build pays the JIT compile
        (the build section's cold build does this for the rest of a run)."""
        if self.warmed:
            return
        from daedalus.devkit.synth import generate

        root = self.workdir / "lakes" / "warm-up"
        shutil.rmtree(root, ignore_errors=True)
        # with book updates, so the book rebuild kernel is compiled too (updates win over snapshots)
        generate(root, symbols=[SYMBOL], start=START, days=1, hours=0.1, book_updates=True, book_depth=100)
        self.build("numba warm-up", root, env=self.numba_env("build", fresh=False))
        self.drop(root)
        self.warmed = True

    def numba_env(self, name: str, fresh: bool) -> dict[str, str]:
        cache = self.workdir / "numba" / name
        if fresh:
            shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir(parents=True, exist_ok=True)
        return {"NUMBA_CACHE_DIR": str(cache)}

    @staticmethod
    def build_figures(run: WorkerRun, symbol_days: float = 1.0) -> dict[str, Any]:
        r = run.result
        models = r.get("models") or {}
        model_total = sum(m["seconds"] for m in models.values()) if models else None
        out: dict[str, Any] = {
            "ok": run.ok,
            "error": run.error,
            "seconds": r.get("seconds"),
            "wall_seconds": run.wall_seconds,
            "peak_rss": run.peak_rss,
            "peak_private": run.peak_private,
            "peak_spill_bytes": run.peak_dir_bytes,
            "models_seconds": model_total,
            "overhead_seconds": None
            if model_total is None or r.get("seconds") is None
            else r["seconds"] - model_total,
            "tests": r.get("tests"),
            "failed_tests": r.get("failed_tests"),
            "models": models,
        }
        if run.ok and r.get("seconds") is not None:
            out["seconds_per_symbol_day"] = r["seconds"] / symbol_days
        return out

    # -- sections ----------------------------------------------------------------------------

    def cli_start(self, lake: Path, repeat: int = 3) -> dict[str, Any]:
        """Wall time of `daedalus --help` and `daedalus ls` in fresh processes (median of `repeat`)."""
        out: dict[str, Any] = {}
        for key, args in (("help", ["--help"]), ("ls", ["--root", str(lake), "ls"])):
            times = []
            for _ in range(repeat):
                t = time.perf_counter()
                p = subprocess.run(
                    [sys.executable, *python_flags(), "-m", "daedalus", *args],
                    capture_output=True,
                    text=True,
                    env={**os.environ, "DAEDALUS_CONFIG": ""},
                )
                times.append(time.perf_counter() - t)
                if p.returncode != 0:
                    out[f"{key}_error"] = (p.stderr.strip().splitlines() or ["exit " + str(p.returncode)])[-1]
            out[f"{key}_seconds"] = median(times)
        return out

    def scaling_section(
        self, sizes: tuple[int, ...] = (1, 2, 4), profiles: tuple[str, ...] = ("default", "pi")
    ) -> dict[str, Any]:
        self.log(
            "[scaling] " + ", ".join(f"{n}" for n in sizes) + f" symbol-days, profiles: {', '.join(profiles)}"
        )
        self.data(max(sizes))
        self.warm_up()
        sec: dict[str, Any] = {p: {} for p in profiles}
        for profile in profiles:
            for n in sizes:
                if profile == "default" and n == 1 and "build-warm" in self._runs:
                    run = self._runs["build-warm"]  # the build section's warm build is this very scenario
                else:
                    lake = self.lake(f"scale-{profile}-{n}", n)
                    run = self.build(
                        f"scale-{profile}-{n}",
                        lake,
                        profile=profile,
                        env=self.numba_env("build", fresh=False),
                    )
                    self.drop(lake)
                sec[profile][str(n)] = self.build_figures(run, n)
        self.results["scaling"] = sec
        if "pi" not in sec:
            return sec
        pi = sec["pi"]
        one = pi.get(str(min(sizes)), {})
        biggest = pi.get(str(max(sizes)), {})
        growth = ratio(
            biggest.get("peak_rss") if biggest.get("ok") else None,
            one.get("peak_rss") if one.get("ok") else None,
        )
        self.targets.append(
            Target(
                f"issue 7: Pi profile peak RSS, {min(sizes)} symbol-day(s)",
                mb(one.get("peak_rss")) if one.get("ok") else None,
                600,
                "MB",
            )
        )
        if len(sizes) > 1:
            self.targets += [
                Target(
                    f"issue 7: Pi profile, {max(sizes)} symbol-days complete",
                    1.0 if biggest.get("ok") else (0.0 if biggest else None),
                    1,
                    "",
                    op=">=",
                    note=biggest.get("error") or "",
                ),
                Target(
                    f"issue 7: Pi peak RSS {max(sizes)} / {min(sizes)} symbol-days (memory flat)",
                    growth,
                    1.25,
                    "×",
                ),
            ]
        self.results["scaling"] = sec
        return sec

    def incremental_section(self, days: int = 7) -> dict[str, Any]:
        self.log(f"[incremental] {days} symbol-days, then append {self.append_hours:g} h")
        self.data(days)
        hour = self.appended_hour()
        self.warm_up()
        env = self.numba_env("build", fresh=False)
        lake = self.lake("incremental", days)
        full = self.build("incr-full", lake, env=env)
        link_bronze(hour, lake)
        inc = self.build("incr-append", lake, env=env)
        alone_lake = self.workdir / "lakes" / "hour-alone"
        shutil.rmtree(alone_lake, ignore_errors=True)
        alone_lake.mkdir(parents=True)
        link_bronze(hour, alone_lake)
        alone = self.build("hour-alone", alone_lake, env=env)
        self.drop(lake)
        self.drop(alone_lake)
        sec = {
            "days": days,
            "append_hours": self.append_hours,
            "full": self.build_figures(full, days),
            "append": self.build_figures(inc),
            "alone": self.build_figures(alone),
            "append_partitions": inc.result.get("partitions"),
        }
        t_inc = inc.result.get("seconds") if inc.ok else None
        sec["append_vs_alone"] = ratio(t_inc, alone.result.get("seconds") if alone.ok else None)
        sec["append_vs_full"] = ratio(t_inc, full.result.get("seconds") if full.ok else None)
        self.targets.append(
            Target(
                f"issue 23: append {self.append_hours:g} h to {days}-day lake / that hour alone",
                sec["append_vs_alone"],
                1.5,
                "×",
            )
        )
        self.results["incremental"] = sec
        return sec

    def collector_section(self, messages: int = 50_000) -> dict[str, Any]:
        self.log(f"[collector] {messages} order-book messages through the fake Binance")
        run = self.worker("collect", {"task": "collect", "messages": messages})
        sec = {**run.result, "ok": run.ok, "error": run.error, "peak_rss": run.peak_rss}
        sec.pop("max_rss", None)
        # Throughput that counts: messages written to Parquet per second. A message received and then
        # dropped on a full queue is accounted (an events row), but it is not collected.
        seconds = run.result.get("seconds") or 0
        sec["written_rate"] = run.result.get("written", 0) / seconds if run.ok and seconds > 0 else None
        cpu = run.result.get("cpu_seconds") or 0
        per_cpu = run.result.get("measured", 0) / cpu if run.ok and cpu > 0 else None
        sec["per_cpu_second"] = per_cpu
        self.targets += [
            Target(
                "issue 23: collector book msgs per CPU-second, default channels",
                per_cpu,
                10_000,
                "msg/s",
                op=">=",
                note=", ".join(run.result.get("channels") or []),
            ),
            Target(
                "issue 7: collector order-book msgs/s written (one core)",
                sec["written_rate"],
                5000,
                "msg/s",
                op=">=",
                note=f"received {run.result.get('rate', 0):,.0f}/s, dropped {run.result.get('dropped')}"
                if run.ok
                else "",
            ),
            Target(
                "issue 7: collector peak RSS",
                run.result.get("collector_peak_rss_mb") if run.ok else None,
                250,
                "MB",
            ),
            Target(
                "issue 7: collector unaccounted loss",
                run.result.get("unaccounted") if run.ok else None,
                0,
                "msgs",
            ),
        ]
        self.results["collector"] = sec
        return sec

    def failures(self) -> dict[str, str]:
        """Every failed worker (and CLI start) of the run: scenario -> its error line."""
        out = {key: run.error or "failed" for key, run in self._runs.items() if not run.ok}
        cli = (self.results.get("build") or {}).get("cli") or {}
        out.update({f"cli {k.removesuffix('_error')}": v for k, v in cli.items() if k.endswith("_error")})
        return out

    def document(self) -> dict[str, Any]:
        import duckdb

        return {
            "meta": {
                "started": self.results.get("_started"),
                # the machine's load (1, 5, 15 min averages) as the run started and ended: figures
                # taken on a busy machine are not a baseline for a quiet one
                "load_average_start": self.results.get("_load_start"),
                "load_average_end": load_average(),
                "hours_per_day": self.hours,
                "symbol": SYMBOL,
                "cpus": os.cpu_count(),
                "machine": platform.machine(),
                "python": platform.python_version(),
                "duckdb": duckdb.__version__,
                "profile_overrides": self.base,
            },
            **{k: v for k, v in self.results.items() if not k.startswith("_")},
            "targets": [t.as_dict() for t in self.targets],
            "failures": self.failures(),
        }


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def mb(n: int | float | None) -> float | None:
    return None if n is None else n / (1024 * 1024)
