"""`daedalus.yaml`, the project file: found in the current folder or a parent, a relative root is
relative to the file, flags and environment still win; the lake root is announced (issue #16)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from daedalus.config import load_config
from daedalus.project_file import announce_root, find_project_file, load, write_for_demo


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "daedalus.yaml").write_text("storage:\n  root: mylake\nduckdb:\n  threads: 3\n")
    (tmp_path / "a" / "b").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "a" / "b")
    monkeypatch.delenv("DAEDALUS__STORAGE__ROOT", raising=False)
    return tmp_path


def test_found_in_a_parent_with_root_relative_to_it(project: Path) -> None:
    assert find_project_file() == project / "daedalus.yaml"
    cfg, source = load(None, {})
    assert cfg.storage.root == str(project / "mylake")
    assert cfg.duckdb.threads == 3
    assert source == f"storage.root in {project / 'daedalus.yaml'}"


def test_root_flag_and_environment_win(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, source = load(None, {"storage.root": "/elsewhere"})
    assert (cfg.storage.root, source, cfg.duckdb.threads) == ("/elsewhere", "--root", 3)
    monkeypatch.setenv("DAEDALUS__STORAGE__ROOT", "/from-env")
    cfg, source = load(None, {})
    assert (cfg.storage.root, source) == ("/from-env", "DAEDALUS__STORAGE__ROOT")


def test_an_explicit_config_skips_the_project_file(project: Path) -> None:
    other = project / "other.yaml"
    other.write_text("duckdb:\n  threads: 1\n")
    cfg, source = load(str(other), {})
    assert (cfg.storage.root, cfg.duckdb.threads, source) == ("./lake", 1, "default storage.root")


def test_none_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    if find_project_file() is None:  # a daedalus.yaml above the temp folder would be found, rightly
        cfg, source = load(None, {})
        assert (cfg.storage.root, source) == (load_config(None, {}).storage.root, "default storage.root")


def test_announce_is_loud_without_bronze(tmp_path: Path) -> None:
    cfg = load_config(None, {"storage.root": str(tmp_path)})
    out = io.StringIO()
    announce_root(cfg, "--root", out)
    lines = out.getvalue().splitlines()
    assert lines[0] == f"lake: {tmp_path} (--root)"
    assert lines[1].startswith(f"WARNING: no bronze data under {tmp_path}")
    (tmp_path / "bronze" / "trades").mkdir(parents=True)
    out = io.StringIO()
    announce_root(cfg, "--root", out)
    assert out.getvalue().splitlines() == [f"lake: {tmp_path} (--root)"]


def test_demo_writes_one_beside_its_lake_and_keeps_a_users_file(tmp_path: Path) -> None:
    path = write_for_demo(tmp_path / "daedalus-demo")
    assert path == tmp_path / "daedalus.yaml"
    os.chdir(tmp_path)
    try:
        assert load(None, {})[0].storage.root == str(tmp_path / "daedalus-demo")
        assert write_for_demo(tmp_path / "daedalus-demo") == path  # same lake: kept as is
        assert write_for_demo(tmp_path / "another-lake") is None  # points elsewhere: not overwritten
        assert load(None, {})[0].storage.root == str(tmp_path / "daedalus-demo")
    finally:
        os.chdir("/")
