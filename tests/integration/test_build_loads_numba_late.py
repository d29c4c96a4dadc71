"""numba and the kernels load at the first model that calls a UDF, not when a build starts.

Loaded, they stay resident for the rest of the process (~100 MB: numba's typing and target contexts
and LLVM), so the models that call none are built first (daedalus/build/dag.py) and peak that much
lower: silver.trades, one of the largest, at the Pi profile. Run in a fresh interpreter: the test
process has numba loaded.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from daedalus.devkit.synth import generate

PROBE = """
import sys
from daedalus.cli.app import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    assert not e.code, f"build exited {e.code}"
print("numba loaded" if "numba" in sys.modules else "numba absent")
"""


def _build(root: Path, *args: str, cfg_name: str = "daedalus.yaml") -> str:
    cfg, lake = root / cfg_name, root / "lake"
    out = subprocess.run(
        [sys.executable, "-c", PROBE, "-c", str(cfg), "--root", str(lake), "build", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stderr + out.stdout  # progress lines, then the probe's verdict


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A small updates lake, fully built once in a fresh interpreter: (its folder, that build's output)."""
    root = tmp_path_factory.mktemp("numba-late")
    generate(root / "lake", symbols=["BTC/USDT"], days=1, hours=0.05, book_updates=True)
    (root / "daedalus.yaml").write_text(f"duckdb:\n  temp_directory: {root / 'tmp'}\n")
    return root, _build(root)


def test_a_full_build_loads_it_after_every_model_that_needs_none(built: tuple[Path, str]) -> None:
    out = built[1]
    assert out.strip().splitlines()[-1] == "numba loaded", out[-2000:]
    models = [line.split()[1].rstrip(":") for line in out.splitlines() if line.strip().startswith("built ")]
    first_python = min(models.index(m) for m in ("orderbook", "orderbook_unserved", "vpin_buckets"))
    no_python = {"events", "ticker", "ticker_hf", "trades", "trade_bars"}  # events: when bronze has some
    assert {"ticker", "ticker_hf", "trades", "trade_bars"} <= set(models[:first_python]) <= no_python, models


@pytest.mark.parametrize("select", ["trades,trade_bars", "events,ticker,ticker_hf"])
def test_models_that_call_no_udf_build_without_numba(built: tuple[Path, str], select: str) -> None:
    # a rebuild of them (what `watch` does when their bronze grows), data tests and catalog included
    out = _build(built[0], "-s", select, "--full-refresh")
    assert out.strip().splitlines()[-1] == "numba absent", out[-2000:]


def test_a_sliced_model_registers_them_before_its_slices_stream(built: tuple[Path, str]) -> None:
    # A sliced partition's queries run on cursors feeding one COPY (partitioned.write_stream), not
    # through execute_copy: the first model to call Python registers the UDFs there too.
    root = built[0]
    (root / "sliced.yaml").write_text(
        f"duckdb:\n  temp_directory: {root / 'tmp'}\netl:\n  slice_hours: 0.25\n"
    )
    out = _build(root, "-s", "orderbook", "--full-refresh", cfg_name="sliced.yaml")
    assert out.strip().splitlines()[-1] == "numba loaded", out[-2000:]
