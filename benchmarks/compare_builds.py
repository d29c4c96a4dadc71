"""Before/after figures of `daedalus bench build` for two checkouts, run alternately in one session.

    python benchmarks/compare_builds.py --before /path/to/old-checkout --after . --rounds 2 --hours 2

Each checkout needs its own virtualenv at `<checkout>/.venv` (an editable install). Runs alternate
(before, after, before, after, ...) so both sides meet the same machine load; the table prints the
median of each figure per side and the ratio after / before.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
from pathlib import Path

FIGURES = {  # label → path in the JSON document of `daedalus bench build --json`
    "floor next to the warm build (s)": ("build", "floor", "next_to_full_build"),
    "full build, warm (s)": ("build", "full_build", "seconds"),
    "  models (s)": ("build", "full_build", "models_seconds"),
    "  tests, planning, catalog (s)": ("build", "full_build", "overhead_seconds"),
    "  peak RSS (MB)": ("build", "full_build", "peak_rss"),
    "full build, cold numba cache (s)": ("build", "cold_build", "seconds"),
}


def _get(doc: dict, path: tuple[str, ...]) -> float | None:
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return float(doc) / (1 << 20) if path[-1] == "peak_rss" else float(doc)


def run_once(checkout: Path, hours: float, out: Path) -> dict:
    exe = checkout / ".venv" / "bin" / "daedalus"
    subprocess.run(
        [str(exe), "bench", "build", "--hours", str(hours), "--json", str(out)],
        cwd=tempfile.gettempdir(),  # not the checkout: its daedalus/ folder would shadow the install
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("--after", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--hours", type=float, default=2.0)
    args = ap.parse_args()
    docs: dict[str, list[dict]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for side in ("before", "after"):
                checkout = (args.before if side == "before" else args.after).resolve()
                print(f"round {r + 1}/{args.rounds}: {side} ({checkout}) ...", flush=True)
                docs[side].append(run_once(checkout, args.hours, Path(tmp) / f"{side}-{r}.json"))
    print(
        f"\n{'figure':36} {'before':>10} {'after':>10} {'after/before':>13}   (median of {args.rounds} runs)"
    )
    models = sorted(docs["before"][0]["build"]["full_build"]["models"])
    rows = dict(FIGURES)
    rows.update({f"    {m} (s)": ("build", "full_build", "models", m, "seconds") for m in models})
    for label, path in rows.items():
        vals = {s: [v for d in docs[s] if (v := _get(d, path)) is not None] for s in docs}
        if not vals["before"] or not vals["after"]:
            continue
        b, a = statistics.median(vals["before"]), statistics.median(vals["after"])
        ratio = f"{a / b:.2f}" if b else "-"
        print(f"{label:36} {b:10.2f} {a:10.2f} {ratio:>13}")
    # the build as a multiple of its own floor: what carries across machine load
    xs = {
        s: [
            full / floor
            for d in docs[s]
            if (full := _get(d, ("build", "full_build", "seconds")))
            and (floor := _get(d, ("build", "floor", "next_to_full_build")))
        ]
        for s in docs
    }
    if xs["before"] and xs["after"]:
        b, a = statistics.median(xs["before"]), statistics.median(xs["after"])
        print(f"{'full build, warm / floor (x)':36} {b:10.1f} {a:10.1f} {a / b:13.2f}")


if __name__ == "__main__":
    main()
