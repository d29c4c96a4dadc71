"""`daedalus init`: the files, a config that loads, a refusal to overwrite."""

from __future__ import annotations

import pytest

from daedalus.build.project import load_project
from daedalus.cli.scaffold import init_project
from daedalus.config import load_config
from daedalus.errors import ConfigError
from daedalus.project_file import load


def test_init_writes_a_loadable_project(tmp_path):
    d = tmp_path / "p"
    written = init_project(d)
    assert {p.relative_to(d).as_posix() for p in written} >= {
        "daedalus.yaml",
        "project.yml",
        "sql/gold/my_model.sql",
        "sql/gold/my_model.yml",
        "macros/my_macros.sql",
    }
    text = (d / "daedalus.yaml").read_text()
    assert "project_dir: .\n" in text and "root: lake\n" in text  # relative: the folder can move
    cfg = load_config(d / "daedalus.yaml")
    assert cfg.project_dir == str(d.resolve()) and cfg.storage.root == str(d.resolve() / "lake")
    project = load_project(cfg)
    assert project.models["my_model"].layer == "gold" and not project.models["my_model"].builtin
    assert project.models["my_model"].docs.columns["minute"].tests == ["not_null"]
    assert "orderbook_hf" in project.models  # the built-in models sit beside it


def test_init_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "x.txt").write_text("mine")
    with pytest.raises(ConfigError, match="folder is not empty"):
        init_project(tmp_path)
    assert init_project(tmp_path, force=True)
    assert (tmp_path / "x.txt").read_text() == "mine"


def test_init_project_is_found_from_a_subfolder_and_survives_a_move(tmp_path, monkeypatch):
    """The file is a daedalus.yaml: found like one, and its relative paths follow the folder."""
    init_project(tmp_path / "p")
    moved = tmp_path / "elsewhere"
    (tmp_path / "p").rename(moved)
    monkeypatch.delenv("DAEDALUS_CONFIG", raising=False)
    monkeypatch.chdir(moved / "sql" / "gold")
    cfg, source = load(None, {})
    assert source == f"storage.root in {moved.resolve() / 'daedalus.yaml'}"
    assert cfg.storage.root == str(moved.resolve() / "lake") and cfg.project_dir == str(moved.resolve())
    assert not load_project(cfg).models["my_model"].builtin
