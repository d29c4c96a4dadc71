"""`daedalus bench soak`: the lake under faults, cycle after cycle, checked as it runs (issue 24).

Each cycle collects from every fake venue (Binance, OKX, Bybit, Kraken, Coinbase on one simulated
market, the real collectors: devkit/demo.py) for `cycle_seconds`, injects one fault chosen from a
seeded shuffle, then lands and builds through the real CLI in child processes (so kill -9 is real):

- truncate_raw      a closed raw segment cut in half before `land`
- truncate_bronze   a bronze file cut in half before `build`
- kill_land         `land` SIGKILLed at a random moment, then run again
- kill_build        `build` SIGKILLed after its N-th partition write, then run again
- junk_staging      an empty staging tree of a build killed a day ago

After every cycle it checks: land and build end with exit 0 (recovery); every truncation is
counted in `events` (a `quarantine` row more, naming real exchanges, never the source); no bronze
row landed twice; no temp file and no empty staging folder left; gold grows when no rows were cut;
open file descriptors and RSS of this process stay flat. At the end the lake must equal a clean
rebuild from a copy of its bronze (row count and content hash of every silver and gold model).

Not (yet) here: an accelerated clock (the fake market runs in real time), REST errors, rate limits,
stale feeds, a full disk, an S3 outage, a clock step, and the book-equality check against the fakes.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FAULTS = ("truncate_raw", "truncate_bronze", "kill_land", "kill_build", "junk_staging")
TEMP_MARKS = (".land-", ".guard-", ".catalog-", ".tmp")
SOURCE_NAMES = ("ccxt", "coinbase")  # raw sources: an event naming one of them names no series


@dataclass
class SoakReport:
    cycles: int = 0
    faults: Counter = field(default_factory=Counter)
    held: Counter = field(default_factory=Counter)  # invariant → times checked and held
    failures: list[str] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        if ok:
            self.held[name] += 1
        else:
            self.failures.append(f"cycle {self.cycles}: {name}" + (f" ({detail})" if detail else ""))

    def summary(self) -> str:
        lines = [f"soak: {self.cycles} cycles in {self.seconds:.0f}s"]
        lines.append(
            "faults:     " + (", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())) or "none")
        )
        lines.append("invariants: " + ", ".join(f"{k} {v}x" for k, v in sorted(self.held.items())))
        if self.fds:
            rss = f"RSS {self.rss_mb[0]:.0f} → {self.rss_mb[-1]:.0f} MB"
            lines.append(f"open fds {self.fds[0]} → {self.fds[-1]}, {rss}")
        lines += [f"FAILED {f}" for f in self.failures] or ["every invariant held"]
        return "\n".join(lines)


def _config_file(root: Path) -> Path:
    """A config beside the lake with the demo's build settings (the CLI children read it)."""
    import yaml

    from daedalus.devkit.demo import demo_build_settings

    path = root.parent / f"{root.name}-soak.yaml"
    doc = {**demo_build_settings(), "storage": {"root": str(root)}}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _cli(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-c",
        "from daedalus.cli.app import main; main()",
        "--config",
        str(_config_file(root)),
    ]
    cmd += list(args)
    return subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _run(root: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    proc = _cli(root, *args, env=env)
    _, err = proc.communicate(timeout=900)
    return proc.returncode, err


def _cut(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _quarantine_events(root: Path) -> list[tuple[str, str]]:
    import duckdb

    files = sorted((root / "bronze" / "events").rglob("quarantine_*.parquet"))
    if not files:
        return []
    paths = [str(f) for f in files]
    return duckdb.sql(
        f"SELECT exchange, channel FROM read_parquet({paths}, hive_partitioning = false)"
    ).fetchall()


def _bronze_duplicates(root: Path) -> int:
    import duckdb

    files = [str(f) for f in (root / "bronze" / "trades").rglob("*.parquet")]
    if not files:
        return 0
    return duckdb.sql(
        f"SELECT count(*) - count(DISTINCT (exchange, symbol, trade_id, conn_id, seq)) "
        f"FROM read_parquet({files}, union_by_name = true)"
    ).fetchone()[0]


def _leftovers(root: Path) -> list[str]:
    out = []
    for p in root.rglob("*"):
        rel = p.relative_to(root).as_posix()
        if rel.startswith("raw/active/"):
            continue  # the collector's open segments (it is stopped between cycles, but keeps journals)
        if p.is_file() and any(m in p.name for m in TEMP_MARKS):
            out.append(rel)
    staging = root / "_staging"
    if staging.is_dir():  # every build is over here: any empty folder is junk
        out += [
            d.relative_to(root).as_posix() for d in staging.rglob("*") if d.is_dir() and not any(d.iterdir())
        ]
    return out


def _models(config: Any) -> dict[str, tuple[int, int]]:
    """Rows and a content hash of every silver and gold view of the catalog."""
    from daedalus.serve.catalog import open_catalog

    con = open_catalog(config)
    try:
        views = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema IN ('silver', 'gold') ORDER BY 1, 2"
        ).fetchall()
        out = {}
        for schema, name in views:
            n, h = con.execute(f'SELECT count(*), bit_xor(hash(x)) FROM "{schema}"."{name}" x').fetchone()
            out[f"{schema}.{name}"] = (n, h or 0)
        return out
    finally:
        con.close()


def _resources() -> tuple[int, float]:
    import psutil

    p = psutil.Process()
    return p.num_fds(), p.memory_info().rss / 2**20


def run_soak(
    root: str | Path,
    seconds: float,
    seed: int = 1,
    cycle_seconds: float = 6.0,
    echo: Callable[[str], None] = print,
    faults: list[str] | None = None,
    cycles: int | None = None,
) -> SoakReport:
    """Cycles until `seconds` have passed (or exactly `cycles`); the first is fault-free, the others
    take `faults` in turn (default: every kind, in an order shuffled by `seed`)."""
    from daedalus.devkit.demo import collect_demo, demo_config

    root = Path(root).resolve()
    config = demo_config(root, cycle_seconds)
    rng = random.Random(seed)
    order = list(faults or FAULTS)
    if faults is None:
        rng.shuffle(order)
    report = SoakReport()
    started = time.monotonic()
    gold_before = 0

    def more() -> bool:
        if cycles is not None:
            return report.cycles < cycles
        return report.cycles == 0 or time.monotonic() - started < seconds

    while more():
        report.cycles += 1
        asyncio.run(collect_demo(config, cycle_seconds, seed=rng.randrange(1 << 30)))
        kind = "none" if report.cycles == 1 else order[(report.cycles - 2) % len(order)]
        report.faults[kind] += 1
        events_before = len(_quarantine_events(root))
        cut = False
        if kind == "truncate_raw":
            ready = sorted(
                (root / "raw" / "ready").rglob("segment_*.parquet"), key=lambda p: -p.stat().st_size
            )
            if ready:
                _cut(ready[0])
                cut = True
        if kind == "junk_staging":
            (
                root
                / "_staging"
                / f"{int(time.time()) - 25 * 3600}-{rng.randrange(16**10):010x}"
                / "silver"
                / "x"
            ).mkdir(parents=True)
        if kind == "kill_land":
            proc = _cli(root, "land")
            time.sleep(rng.uniform(0.2, 1.5))
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=60)
        rc, err = _run(root, "land")
        report.check(
            "land recovers (exit 0)", rc == 0, err.strip().splitlines()[-1:] and err.strip().splitlines()[-1]
        )
        if kind == "truncate_bronze":
            files = [p for p in (root / "bronze").rglob("*.parquet") if "/events/" not in p.as_posix()]
            if files:
                _cut(rng.choice(sorted(files)))
                cut = True
        if kind == "kill_build":
            env = {"DAEDALUS_TEST_KILL": f"after_write:{rng.randint(1, 8)}"}
            proc = _cli(root, "build", env=env)
            proc.communicate(timeout=900)
        rc, err = _run(root, "build")
        report.check("build recovers (exit 0)", rc == 0, err.strip()[-300:])
        events = _quarantine_events(root)
        if cut:
            report.check("loss counted in events", len(events) > events_before, f"{len(events)} events")
        report.check("losses name exchanges", not [e for e in events if e[0] in SOURCE_NAMES], str(events))
        report.check("each bronze row once", _bronze_duplicates(root) == 0)
        left = _leftovers(root)
        report.check("no temp file or empty staging folder", not left, ", ".join(left[:5]))
        gold = sum(n for name, (n, _) in _models(config).items() if name.startswith("gold."))
        if not cut:
            report.check("gold grows", gold > gold_before, f"{gold_before} → {gold}")
        gold_before = gold
        fds, rss = _resources()
        report.fds.append(fds)
        report.rss_mb.append(rss)
        echo(f"cycle {report.cycles}: fault {kind}, gold rows {gold}, fds {fds}, RSS {rss:.0f} MB")
    if len(report.fds) > 2:
        report.check("open fds flat", report.fds[-1] - report.fds[1] <= 8, f"{report.fds}")
        report.check("RSS flat", report.rss_mb[-1] <= report.rss_mb[1] * 1.5 + 50, f"{report.rss_mb}")
    _compare_with_clean_rebuild(root, config, report)
    report.seconds = time.monotonic() - started
    return report


def _compare_with_clean_rebuild(root: Path, config: Any, report: SoakReport) -> None:
    """The lake as the faults left it equals a build from scratch of a copy of its bronze."""
    from daedalus.devkit.demo import demo_config

    clean = root.parent / f"{root.name}-clean-rebuild"
    shutil.rmtree(clean, ignore_errors=True)
    shutil.copytree(root / "bronze", clean / "bronze")
    try:
        rc, err = _run(clean, "build")
        report.check("clean rebuild builds", rc == 0, err.strip()[-300:])
        ours, theirs = _models(config), _models(demo_config(clean, 6.0))
        diff = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
        report.check("lake equals a clean rebuild", not diff, ", ".join(diff))
    finally:
        shutil.rmtree(clean, ignore_errors=True)
        _config_file(clean).unlink(missing_ok=True)
