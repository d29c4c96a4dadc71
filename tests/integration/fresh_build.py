"""A `daedalus` CLI run in a fresh interpreter, reporting which of some modules it imported: the test
process has them all loaded, so only a new process can tell what a build itself imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROBE = """
import sys
from daedalus.cli.app import main
modules = sys.argv[1].split(",")
try:
    main(sys.argv[2:])
except SystemExit as e:
    assert not e.code, f"daedalus exited {e.code}"
print(" ".join(f"{m}={'loaded' if m in sys.modules else 'absent'}" for m in modules))
"""


def run_fresh(cwd: Path, args: list[str], modules: tuple[str, ...]) -> tuple[str, dict[str, bool]]:
    """`daedalus ARGS` (exit 0 asserted): its stderr and stdout, and for each module whether it was
    imported by the end."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(modules), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    verdict = out.stdout.strip().splitlines()[-1]
    loaded = {m: state == "loaded" for m, state in (pair.split("=") for pair in verdict.split())}
    return out.stderr + out.stdout, loaded
