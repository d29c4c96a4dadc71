"""A built lake moved (`mv`) or copied (`cp -a`) plans no rebuild with the real models: the fingerprint
spells the lake's root as <root>, also inside the names of the Python relations (digests of their input
queries, which name files by absolute path). A manifest recorded by the versions that named those
relations over the lake's own paths (`sql_form` "tokens") is not rebuilt on upgrade either."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from daedalus.build import build, plan_build, planner
from daedalus.build.materializations import MATERIALIZATIONS
from daedalus.build.session import Session
from daedalus.config import Config, load_config
from daedalus.devkit.synth import generate

pytestmark = pytest.mark.slow  # one real build over two small synthetic days


def _config(root: Path, tmp: Path) -> Config:
    return load_config(overrides={"storage.root": str(root), "duckdb.temp_directory": str(tmp / "spill")})


def _stale(cfg: Config) -> list[tuple[str, str, str]]:
    return [(p.model, p.pid, p.reason) for p in plan_build(cfg)]


def _record_as_tokens_form(cfg: Config) -> int:
    """Rewrite every partition's record as the previous version computed it."""
    s = Session(cfg)
    n = 0
    for name, ms in s.manifest.models.items():
        model = s.project.models[name]
        for part in MATERIALIZATIONS[model.materialized].candidates(s.inventory, model):
            state = ms.partitions.get(part.pid)
            if state is None:
                continue
            state.fingerprint, _, state.parts = planner.partition_fingerprint(
                s, model, part, planner.TOKENS_FORM
            )
            n += 1
    s.manifest.save()
    return n


def test_a_moved_or_copied_lake_and_an_upgraded_manifest_plan_nothing(tmp_path: Path) -> None:
    staging, root = tmp_path / "staging", tmp_path / "lake"
    summary = generate(
        staging, symbols=["BTC/USDT"], start="2024-01-06", days=2, snapshot_ms=20_000, levels=5
    )
    shutil.copytree(staging / "bronze", root / "bronze")
    cfg = _config(root, tmp_path)
    assert build(cfg, catalog=False).rebuilt
    assert _stale(cfg) == []

    moved = tmp_path / "moved"
    root.rename(moved)
    assert _stale(_config(moved, tmp_path)) == []

    copy = tmp_path / "copy"
    assert subprocess.run(["cp", "-a", str(moved), str(copy)]).returncode == 0
    copy_cfg = _config(copy, tmp_path)
    assert _stale(copy_cfg) == []

    # the previous version's records: relations named over the lake's own paths
    assert _record_as_tokens_form(copy_cfg) > 0
    records = Session(copy_cfg).manifest.models["orderbook"].partitions.values()
    assert {ps.parts["sql_form"] for ps in records} == {planner.TOKENS_FORM}
    assert _stale(copy_cfg) == []
    assert summary.dates == ["2024-01-06", "2024-01-07"]
