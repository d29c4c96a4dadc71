"""`daedalus.yaml`, the project file (like dbt's `dbt_project.yml`): found in the current folder or
one of its parents when neither `--config` nor `DAEDALUS_CONFIG` names a config file.

It is an ordinary config file (every key of `config/config.example.yaml`); a relative `storage.root`
in it is relative to the file's folder, so commands run from any subfolder use the same lake.
`daedalus demo` writes one beside its lake, so the README's tour runs on the demo lake unchanged.

`announce_root` says on stderr which lake root a command reads and where that root came from, and
says so loudly when the root holds no bronze (a tour on an empty `./lake` looked like success).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import yaml

from daedalus.errors import ConfigError

PROJECT_FILE = "daedalus.yaml"


def find_project_file(start: str | Path | None = None) -> Path | None:
    """The nearest `daedalus.yaml` in `start` (default: the current folder) or its parents."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / PROJECT_FILE
        if candidate.is_file():
            return candidate
    return None


def _file_root(path: Path) -> str | None:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, ValueError, yaml.YAMLError):  # ValueError: not UTF-8
        return None  # load_config reports it with file and line
    storage = doc.get("storage") if isinstance(doc, dict) else None
    root = storage.get("root") if isinstance(storage, dict) else None
    return str(root) if root is not None else None


def load(config_path: str | None, overrides: dict[str, Any]) -> tuple[Any, str]:
    """The effective config and where its `storage.root` came from (for `announce_root`)."""
    from daedalus.config import load_config

    project = None
    if config_path is None:
        project = find_project_file()
        config_path = str(project) if project else None
    cfg = load_config(config_path, overrides)
    if overrides.get("storage.root") is not None:
        return cfg, "--root"
    if os.environ.get("DAEDALUS__STORAGE__ROOT"):
        return cfg, "DAEDALUS__STORAGE__ROOT"
    file_root = _file_root(Path(config_path)) if config_path else None
    if file_root is None:
        return cfg, "default storage.root"
    if project is not None and "://" not in file_root and not Path(file_root).is_absolute():
        cfg.storage.root = str((project.parent / file_root).resolve())
    return cfg, f"storage.root in {config_path}"


def announce_root(cfg: Any, source: str, stream: Any = None, warn_empty: bool = True) -> None:
    """One stderr line: the lake root in use and its origin; a WARNING line when it has no bronze."""
    stream = stream or sys.stderr
    root = cfg.storage.root
    print(f"lake: {root} ({source})", file=stream)
    if "://" in root or not warn_empty:
        return  # listing a bucket costs a request; the commands themselves report an empty S3 lake
    bronze = Path(root) / "bronze"
    if not bronze.is_dir() or not any(bronze.iterdir()):
        print(
            f"WARNING: no bronze data under {root} — nothing to build or query. Point --root, "
            f"DAEDALUS_CONFIG or a {PROJECT_FILE} at your lake, or run `daedalus land` / `daedalus demo`.",
            file=stream,
        )


DEMO_HEADER = "# written by `daedalus demo`: commands run in this folder (or below it) use the demo lake\n"


def write_for_demo(lake: str | Path, settings: dict[str, Any] | None = None) -> Path | None:
    """Write `daedalus.yaml` beside the demo lake (root relative to it) with every other setting the
    demo built with (`settings`, nested), so a `build` after the demo rebuilds nothing; unless a file
    there was not written by the demo: then the user's file wins and None is returned."""
    lake = Path(lake).resolve()
    path = lake.parent / PROJECT_FILE
    doc = {**(settings or {}), "storage": {**(settings or {}).get("storage", {}), "root": lake.name}}
    text = DEMO_HEADER + yaml.safe_dump(doc, sort_keys=False)
    if path.exists():
        existing = _file_root(path)
        ours = path.read_text(errors="replace").startswith(DEMO_HEADER)
        if existing is None or (path.parent / existing).resolve() != lake:
            return None
        if not ours:
            return path  # the user's own file names this lake: theirs to keep
    try:
        path.write_text(text)
    except OSError as e:
        raise ConfigError(f"{path}: cannot write the demo's project file ({e.strerror})") from None
    return path
