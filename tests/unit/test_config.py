"""Config: load order, one-line errors naming key and file, the example documents every key."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from daedalus.config import Config, load_config
from daedalus.config_doc import render_example
from daedalus.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_defaults_match_features_contract():
    f = Config().etl.features
    assert f.bands_bps == [0, 5, 10, 25, 50, 100]
    assert f.horizons == [5, 15, 60, 300, 900]
    assert f.bar_durations == [1, 5, 30, 60, 300, 900, 3600]
    assert (f.ofi_levels, f.ofi_decay_alpha, f.vpin_window_buckets) == (10, 0.5, 50)
    assert f.max_state_staleness_seconds == 300
    assert f.vpin_bucket_volume == "auto"


def test_load_order_yaml_then_env_then_flags(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("storage:\n  root: /from/yaml\nduckdb:\n  threads: 2\n  memory_limit: 2GB\n")
    env = {"DAEDALUS__DUCKDB__THREADS": "3", "DAEDALUS__ETL__FEATURES__HORIZONS": "[10, 20]"}
    c = load_config(cfg, environ=env)
    assert c.storage.root == "/from/yaml"
    assert c.duckdb.threads == 3
    assert c.etl.features.horizons == [10, 20]
    c = load_config(cfg, overrides={"duckdb.threads": 4, "storage.root": None}, environ=env)
    assert c.duckdb.threads == 4 and c.storage.root == "/from/yaml"


def test_a_section_with_every_key_commented_out_is_all_defaults(tmp_path):
    # config/pi.yaml with its one storage key commented out: `storage:` loads as None
    cfg = tmp_path / "c.yaml"
    cfg.write_text("storage:\n  # root: /mnt/lake\nduckdb:\n  threads: 1\n")
    c = load_config(cfg, overrides={"storage.root": "/from/flag"}, environ={})
    assert c.storage.root == "/from/flag" and c.duckdb.threads == 1
    assert load_config(cfg, environ={}).storage.root == Config().storage.root


def test_a_flag_under_a_key_that_is_not_a_section_is_one_error(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("storage: /mnt/lake\n")
    with pytest.raises(ConfigError, match=r"c.yaml: invalid value for 'storage': it must be a mapping"):
        load_config(cfg, overrides={"storage.root": "/from/flag"}, environ={})


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("storage:\n  rooot: x\n", "unknown key 'storage.rooot'"),
        ("duckdb:\n  threads: many\n", "invalid value for 'duckdb.threads'"),
        ("etl:\n  features:\n    spread_tight_percentile: 1.5\n", "'etl.features.spread_tight_percentile'"),
        ("etl:\n  features:\n    bands_bps: [10, 5]\n", "'etl.features.bands_bps'"),
        (
            "etl:\n  symbols:\n    BTC/USDT:\n      vpin_bucket_volume: -x\n",
            "'etl.symbols.BTC/USDT.vpin_bucket_volume",
        ),
        ("[unclosed\n", "not valid YAML"),
    ],
)
def test_bad_config_is_one_error_naming_key_and_file(tmp_path, yaml_text, expected):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml_text)
    with pytest.raises(ConfigError) as e:
        load_config(cfg, environ={})
    msg = str(e.value)
    assert expected in msg and str(cfg) in msg and "\n" not in msg


def test_bad_env_value_names_the_environment():
    with pytest.raises(ConfigError, match="environment: invalid value for 'duckdb.threads'"):
        load_config(None, environ={"DAEDALUS__DUCKDB__THREADS": "0"})


def test_per_symbol_override():
    c = load_config(None, overrides={"etl.symbols": {"BTC/USDT": {"vpin_bucket_volume": 25}}}, environ={})
    assert c.etl.feature("vpin_bucket_volume", "BTC/USDT") == 25
    assert c.etl.feature("vpin_bucket_volume", "ETH/USDT") == "auto"


def test_example_is_generated_from_the_models_and_loads():
    example = REPO / "config" / "config.example.yaml"
    assert example.read_text() == render_example(), (
        "regenerate: python -m daedalus.config_doc > config/config.example.yaml"
    )
    cfg = load_config(example, environ={})
    assert cfg.storage.root == str((example.parent / Config().storage.root).resolve())  # beside the file
    cfg.storage.root = Config().storage.root
    assert cfg == Config()


def test_a_relative_root_in_a_file_is_relative_to_the_file(tmp_path, monkeypatch):
    """Issue 24: load_config(path) resolved it against the working folder, daedalus.yaml against the file."""
    (tmp_path / "proj").mkdir()
    cfg = tmp_path / "proj" / "config.yaml"
    cfg.write_text("storage:\n  root: lake\n")
    monkeypatch.chdir(tmp_path)
    assert load_config(cfg, environ={}).storage.root == str(tmp_path / "proj" / "lake")
    assert load_config("proj/config.yaml", environ={}).storage.root == str(tmp_path / "proj" / "lake")
    flag = load_config(cfg, {"storage.root": "other"}, environ={})
    assert flag.storage.root == "other"  # --root stays relative to the working folder
    cfg.write_text("storage:\n  root: s3://bucket/lake\n")
    assert load_config(cfg, environ={}).storage.root == "s3://bucket/lake"


@pytest.mark.parametrize(
    "text,message",
    [
        (
            "etl:\n  features:\n    vpin_bucket_volume: -5\n",
            "'etl.features.vpin_bucket_volume': Input should be greater than 0",
        ),
        (
            "etl:\n  features:\n    vpin_bucket_volume: 0\n",
            "'etl.features.vpin_bucket_volume': Input should be greater than 0",
        ),
        (
            "etl:\n  features:\n    vpin_bucket_volume: .nan\n",
            "'etl.features.vpin_bucket_volume': Input should be a finite number",
        ),
        (
            "etl:\n  symbols:\n    BTC/USDT: {vpin_bucket_volume: .inf}\n",
            "'etl.symbols.BTC/USDT.vpin_bucket_volume': Input should be a finite",
        ),
    ],
)
def test_vpin_bucket_volume_must_be_finite_and_positive(tmp_path, text, message):
    """Issue 24: -5 or 0 built with every VPIN NULL; `.nan` was pasted into the SQL (Binder Error)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(cfg, environ={})


def test_a_config_that_is_not_utf8_is_one_line(tmp_path):
    cfg = tmp_path / "latin1.yaml"
    cfg.write_bytes("storage:\n  root: caf\xe9\n".encode("latin-1"))
    r = subprocess.run(
        [sys.executable, "-m", "daedalus", "--config", str(cfg), "ls"], capture_output=True, text=True
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"error: {cfg}: not UTF-8 text (byte 20: invalid continuation byte); save it as UTF-8"
    ]


def test_cli_bad_config_exits_2_with_one_line(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("ingestion:\n  queue_maxsize: 0\n")
    r = subprocess.run(
        [sys.executable, "-m", "daedalus", "--config", str(cfg), "ls"], capture_output=True, text=True
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "ingestion.queue_maxsize" in lines[0] and str(cfg) in lines[0]


def test_max_unserved_book_share_is_a_share():
    import pytest
    from pydantic import ValidationError

    from daedalus.config import FeatureConfig

    assert FeatureConfig().max_unserved_book_share == 0.005
    assert FeatureConfig(max_unserved_book_share=0).max_unserved_book_share == 0
    for bad in (-0.1, 1.5):
        with pytest.raises(ValidationError, match="max_unserved_book_share"):
            FeatureConfig(max_unserved_book_share=bad)
