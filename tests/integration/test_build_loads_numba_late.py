"""numba and the kernels load at the first model that calls a UDF, not when a build starts.

Loaded, they stay resident for the rest of the process (~100 MB: numba's typing and target contexts
and LLVM), so the models that call none are built first (daedalus/build/dag.py) and peak that much
lower: silver.trades, one of the largest, at the Pi profile. Run in a fresh interpreter: the test
process has numba loaded.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fresh_build import run_fresh

from daedalus.devkit.synth import generate


def _build(root: Path, *args: str, cfg_name: str = "daedalus.yaml") -> tuple[str, bool]:
    """A build of the lake in a fresh interpreter: its output, and whether it imported numba."""
    cli = ["-c", str(root / cfg_name), "--root", str(root / "lake"), "build", *args]
    out, loaded = run_fresh(root, cli, ("numba",))
    return out, loaded["numba"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[str, bool]]:
    """A small updates lake, fully built once in a fresh interpreter: (its folder, that build: its output, whether it imported numba)."""
    root = tmp_path_factory.mktemp("numba-late")
    generate(root / "lake", symbols=["BTC/USDT"], days=1, hours=0.05, book_updates=True)
    (root / "daedalus.yaml").write_text(f"duckdb:\n  temp_directory: {root / 'tmp'}\n")
    return root, _build(root)


def test_a_full_build_loads_it_after_every_model_that_needs_none(
    built: tuple[Path, tuple[str, bool]],
) -> None:
    out, numba = built[1]
    assert numba, out[-2000:]
    models = [line.split()[1].rstrip(":") for line in out.splitlines() if line.strip().startswith("built ")]
    first_python = min(models.index(m) for m in ("orderbook", "orderbook_unserved", "vpin_buckets"))
    no_python = {"events", "ticker", "ticker_hf", "trades", "trade_bars"}  # events: when bronze has some
    assert {"ticker", "ticker_hf", "trades", "trade_bars"} <= set(models[:first_python]) <= no_python, models


@pytest.mark.parametrize("select", ["trades,trade_bars", "events,ticker,ticker_hf"])
def test_models_that_call_no_udf_build_without_numba(
    built: tuple[Path, tuple[str, bool]], select: str
) -> None:
    # a rebuild of them (what `watch` does when their bronze grows), data tests and catalog included
    out, numba = _build(built[0], "-s", select, "--full-refresh")
    assert not numba, out[-2000:]


def test_a_sliced_model_registers_them_before_its_slices_stream(built: tuple[Path, tuple[str, bool]]) -> None:
    # A sliced partition's queries run on cursors feeding one COPY (partitioned.write_stream), not
    # through execute_copy: the first model to call Python registers the UDFs there too.
    root = built[0]
    (root / "sliced.yaml").write_text(
        f"duckdb:\n  temp_directory: {root / 'tmp'}\netl:\n  slice_hours: 0.25\n"
    )
    out, numba = _build(root, "-s", "orderbook", "--full-refresh", cfg_name="sliced.yaml")
    assert numba, out[-2000:]
