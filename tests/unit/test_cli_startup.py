"""`daedalus --help` and `daedalus ls` start without the heavy libraries (issue 7: CLI start ≤ 1 s).

Each command runs in a fresh interpreter and reports which modules it imported; the assertion is on
imports, not on time (timing is the benchmark's job, `daedalus bench build`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("duckdb", "numba", "llvmlite", "ccxt", "pyarrow", "numpy", "boto3", "aiohttp")

PROBE = """
import json, sys
args, watched = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sys.argv = ["daedalus", *args]
from daedalus.cli.app import main
code = 0
try:
    main()
except SystemExit as e:
    code = e.code or 0
heavy = sorted(m for m in watched if m in sys.modules)
print("PROBE " + json.dumps({"code": code, "heavy": heavy}))
"""


def run_cli(args: list[str], tmp_path: Path) -> dict:
    """Run the CLI entry point in a fresh interpreter; the modules it left in sys.modules."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("PROBE ")]
    assert lines, f"no probe output; stderr: {proc.stderr[-2000:]}"
    return json.loads(lines[-1][len("PROBE ") :])


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["bench", "--help"],
        ["build", "--help"],
        ["collect", "--help"],
        ["bench", "build", "--help"],
    ],
)
def test_help_imports_no_heavy_library(args: list[str], tmp_path: Path) -> None:
    out = run_cli(args, tmp_path)
    assert out["code"] == 0
    assert out["heavy"] == []


@pytest.mark.slow  # the project parse of `ls` takes seconds on a loaded machine
def test_ls_imports_no_engine_kernels_or_exchange_client(tmp_path: Path) -> None:
    (tmp_path / "lake").mkdir()  # a root that does not exist is refused before anything (issue 24)
    out = run_cli(["--root", str(tmp_path / "lake"), "ls"], tmp_path)
    assert out["code"] == 0
    # `ls` reads the project and the manifest: it needs neither DuckDB, numba nor ccxt.
    assert not {"duckdb", "numba", "llvmlite", "ccxt"} & set(out["heavy"])


def test_probe_sees_an_import_when_a_command_makes_one(tmp_path: Path) -> None:
    """The probe itself works: `query` runs SQL, so DuckDB must show up in sys.modules."""
    (tmp_path / "lake").mkdir()
    out = run_cli(["--root", str(tmp_path / "lake"), "query", "SELECT 42"], tmp_path)
    assert "duckdb" in out["heavy"]
