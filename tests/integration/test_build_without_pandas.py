"""A build never imports pandas (~50 MB of resident memory, a tenth of the Pi budget).

pyarrow imports pandas on its first Python→Arrow conversion just to recognise pandas inputs
(daedalus/fsio.py skip_pyarrow_pandas_probe). A lake with only one of the two book channels makes the
compiler build the absent channel's empty table before any connection exists, which once brought
pandas in for the whole build. Run in a fresh interpreter: the test process has pandas loaded.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fresh_build import run_fresh

from daedalus.devkit.synth import generate


@pytest.mark.parametrize("book_updates", [True, False], ids=["updates-only lake", "snapshots-only lake"])
def test_a_full_build_leaves_pandas_unimported(tmp_path: Path, book_updates: bool) -> None:
    lake = tmp_path / "lake"
    generate(lake, symbols=["BTC/USDT"], days=1, hours=0.05, book_updates=book_updates)
    if book_updates:  # the generator writes the snapshots beside the updates: keep one book channel
        shutil.rmtree(lake / "bronze" / "orderbook")
    channels = {p.name for p in (lake / "bronze").iterdir()}
    assert ("orderbook" in channels) != book_updates  # exactly one book channel: one source is absent
    cfg = tmp_path / "daedalus.yaml"
    cfg.write_text(f"duckdb:\n  temp_directory: {tmp_path / 'tmp'}\n")
    out, loaded = run_fresh(tmp_path, ["-c", str(cfg), "--root", str(lake), "build"], ("pandas",))
    assert not loaded["pandas"], out[-2000:]
