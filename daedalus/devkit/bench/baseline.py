"""A stored baseline of `daedalus bench build` and the comparison of a run against it.

Times are kept as multiples of the floor measured in the same run (DuckDB reading every bronze book
list, the median of several scans after a warm-up), so a baseline taken on one machine says something
on another, and in absolute seconds beside it; memory and bytes are kept in MB (they do not depend on
the machine's speed). Every figure is lower-is-better.

What is compared: a time is named as a regression when it is more than `SLOWER` times its baseline
both as a multiple of the floor and in seconds. Either alone moves with the machine: the floor is a
fraction of a second, so a quiet scan (or a loaded one) next to the build moves every ×floor figure,
and seconds move with the load of the whole run; a build that really got slower moves both. Sizes
(MB) are compared as they are.

    doc = run_bench(["build"], hours=2)
    save_baseline("benchmarks/baseline.json", doc)
    rows = compare(baseline_figures(load_baseline(path)), figures(doc))
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daedalus.errors import ConfigError

SLOWER = 1.2
SECTIONS = ("build", "updates", "incremental")  # the sections whose figures a baseline holds
"""A figure above SLOWER × its baseline is a regression."""
SMALLEST = {"× floor": 1.0, "MB": 1.0}
"""Below these a baseline figure is shown but never named: a model taking a fraction of the floor, or
writing a few kB, moves by more than 1.2x with the machine's noise alone."""
MB = 1024 * 1024


def _x(seconds: Any, floor: Any) -> float | None:
    if seconds is None or not floor:
        return None
    return float(seconds) / float(floor)


def _mb(n: Any) -> float | None:
    return None if not n else float(n) / MB


Found = dict[str, tuple[float | None, str, float | None]]
"""name -> (value, unit, seconds behind a × floor value)."""


def _t(seconds: Any, floor: Any) -> tuple[float | None, str, float | None]:
    secs = None if seconds is None else float(seconds)
    return _x(secs, floor), "× floor", secs


def _m(n: Any) -> tuple[float | None, str, None]:
    return _mb(n), "MB", None


def _build_figures(sec: dict[str, Any]) -> Found:
    fl = sec.get("floor") or {}
    floor = fl.get("next_to_full_build") or fl.get("seconds")
    floor_sql = fl.get("next_to_sql_build") or floor
    full = sec.get("full_build") or {}
    cold = sec.get("cold_build") or {}
    sql = sec.get("sql_models_512MB") or {}
    out: Found = {
        "build: full build, warm": _t(full.get("seconds") if full.get("ok") else None, floor),
        "build: full build, warm, peak RSS": _m(full.get("peak_rss") if full.get("ok") else None),
        "build: full build, cold": _t(cold.get("seconds") if cold.get("ok") else None, floor),
        "build: silver at 512MB": _t(sql.get("silver_seconds"), floor_sql),
        "build: SQL gold at 512MB": _t(sql.get("gold_seconds"), floor_sql),
        "build: silver + SQL gold at 512MB, peak RSS": _m(sql.get("peak_rss")),
    }
    for name, m in sorted((full.get("models") or {}).items()):
        out[f"build: {m['layer']}.{name}"] = _t(m["seconds"], floor)
        out[f"build: {m['layer']}.{name} bytes"] = _m(m.get("bytes"))
    return out


def _updates_figures(sec: dict[str, Any]) -> Found:
    out: Found = {}
    floors = sec.get("floor") or {}
    for source in ("snapshots", "updates"):
        floor = (floors.get(source) or {}).get("seconds")
        for profile in ("default", "pi"):
            fig = sec.get(f"{source}_{profile}") or {}
            ok = fig.get("ok")
            out[f"updates: from {source}, {profile}"] = _t(fig.get("seconds") if ok else None, floor)
            out[f"updates: from {source}, {profile}, peak RSS"] = _m(fig.get("peak_rss") if ok else None)
    return out


def _incremental_figures(sec: dict[str, Any]) -> Found:
    """The append's partition count (what it rebuilt: 12 for one symbol-day, a count that does not
    move with the machine) and its peak RSS. Its time over the hour alone is a ratio of two ~2-3 s
    builds, printed with the section's target rather than compared here."""
    append = sec.get("append") or {}
    ok = append.get("ok")
    n = sec.get("append_partitions") if ok else None
    count = None if n is None else float(n)
    return {
        "incremental: partitions rewritten by the append": (count, "partitions", None),
        "incremental: rebuild after the append, peak RSS": _m(append.get("peak_rss") if ok else None),
    }


def figures(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The comparable figures of a bench document: name -> {value, unit[, seconds]} (missing ones
    left out; seconds: the absolute time behind a × floor value)."""
    found: Found = {}
    if "build" in doc:
        found.update(_build_figures(doc["build"]))
    if "updates" in doc:
        found.update(_updates_figures(doc["updates"]))
    if "incremental" in doc:
        found.update(_incremental_figures(doc["incremental"]))
    return {
        k: {"value": v, "unit": u, **({"seconds": secs} if secs is not None else {})}
        for k, (v, u, secs) in found.items()
        if v is not None
    }


def save_baseline(path: str | Path, doc: dict[str, Any]) -> dict[str, Any]:
    """Write the run's figures to `path`, keeping the figures of sections this run did not measure
    (so `bench build` and `bench build --updates` can fill one baseline)."""
    p = Path(path)
    old = load_baseline(p) if p.exists() else {"figures": {}}
    meta = {**(doc.get("meta") or {}), "failures": doc.get("failures") or {}}
    for s in ("build", "updates"):  # how steady the floor was: the figures of that section divide by it
        if s in doc:
            meta[f"{s}_floor"] = _floor_summary(doc[s])
    section_meta = {s: meta for s in SECTIONS if s in doc}
    base = {
        "note": "daedalus bench build --save-baseline: times in multiples of the floor of the same run",
        "meta": {**(old.get("meta") or {}), **section_meta},
        "figures": {**old.get("figures", {}), **figures(doc)},
    }
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(base, indent=2, sort_keys=True) + "\n")
    return base


def _floor_summary(sec: dict[str, Any]) -> dict[str, Any]:
    fl = sec.get("floor") or {}
    if "snapshots" in fl and isinstance(fl.get("snapshots"), dict):
        return {k: (fl.get(k) or {}).get("spread") for k in ("snapshots", "updates")}
    return {"next_to_full_build": fl.get("spread_next_to_full_build")}


def load_baseline(path: str | Path) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: not a readable bench baseline ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("figures"), dict):
        raise ConfigError(
            f"{path}: not a bench baseline (no 'figures' object; write one with --save-baseline)"
        )
    return doc


@dataclass
class Row:
    name: str
    unit: str
    baseline: float
    now: float | None
    baseline_seconds: float | None = None
    now_seconds: float | None = None

    @property
    def ratio(self) -> float | None:
        if self.now is None or self.baseline <= 0:
            return None
        return self.now / self.baseline

    @property
    def seconds_ratio(self) -> float | None:
        if self.now_seconds is None or not self.baseline_seconds or self.baseline_seconds <= 0:
            return None
        return self.now_seconds / self.baseline_seconds

    @property
    def compared(self) -> str:
        """Which figure decides: MB as it is; a time on × floor and seconds together (a baseline
        saved before seconds were kept: × floor alone)."""
        if self.unit != "× floor":
            return self.unit
        return "× floor and s" if self.baseline_seconds else "× floor"

    @property
    def regressed(self) -> bool:
        r = self.ratio
        if r is None or r <= SLOWER or self.baseline < SMALLEST.get(self.unit, 0.0):
            return False
        if self.unit == "× floor" and self.baseline_seconds:
            s = self.seconds_ratio
            return s is not None and s > SLOWER
        return True


def compare(baseline: dict[str, Any], doc: dict[str, Any]) -> list[Row]:
    """One row per baseline figure of the sections this run measured (now None when it failed)."""
    now = figures(doc)
    sections = {s for s in SECTIONS if s in doc}
    rows = []
    for name, fig in sorted(baseline["figures"].items()):
        if name.split(":", 1)[0] not in sections:
            continue
        cur = now.get(name) or {}
        rows.append(
            Row(
                name,
                fig["unit"],
                float(fig["value"]),
                cur.get("value"),
                fig.get("seconds"),
                cur.get("seconds"),
            )
        )
    return rows


def problems(doc: dict[str, Any], rows: list[Row] | None = None) -> list[str]:
    """What makes a bench command fail: a failed worker (the first one's error line), a figure more
    than SLOWER times its baseline (by name; a time on × floor and seconds both, see Row.regressed)."""
    found = []
    failures = doc.get("failures") or {}
    if failures:
        key, error = next(iter(failures.items()))
        found.append(f"{len(failures)} bench worker(s) failed, first {key}: {error}")
    worse = [r.name for r in rows or [] if r.regressed]
    if worse:
        found.append(f"{len(worse)} figure(s) more than {SLOWER:g}x the baseline: {', '.join(worse)}")
    return found
