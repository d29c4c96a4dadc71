"""`daedalus init`: the files, a config that loads, a refusal to overwrite."""

from __future__ import annotations

import pytest

from daedalus.build.project import load_project
from daedalus.cli.scaffold import init_project
from daedalus.config import load_config
from daedalus.errors import ConfigError


def test_init_writes_a_loadable_project(tmp_path):
    d = tmp_path / "p"
    written = init_project(d)
    assert {p.relative_to(d).as_posix() for p in written} >= {
        "config.yaml",
        "project.yml",
        "sql/gold/my_model.sql",
        "sql/gold/my_model.yml",
        "macros/my_macros.sql",
    }
    cfg = load_config(d / "config.yaml")
    assert cfg.project_dir == str(d) and cfg.storage.root == str(d / "lake")
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
