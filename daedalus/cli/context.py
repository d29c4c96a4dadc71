"""The global options of one `daedalus` invocation, handed to every command as `ctx.obj`.

The app's callback (daedalus/cli/app.py) fills a `GlobalOptions` from `--config`, `--root`,
`--threads`, `--memory-limit` and `--debug`; a command takes `ctx: typer.Context` and calls
`global_options(ctx)`. No module state: two invocations in one process (tests) never share it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from daedalus.config import Config


@dataclass
class GlobalOptions:
    config_path: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    debug: bool = False

    announced: bool = False

    def config(self) -> Config:
        """The effective config (defaults → YAML (--config, DAEDALUS_CONFIG or the nearest
        daedalus.yaml) → environment → CLI flags)."""
        from daedalus.project_file import load

        return load(self.config_path, self.overrides)[0]

    def lake_config(self, warn_empty: bool = True) -> Config:
        """The config of a command that reads the lake: says once, on stderr, which root it uses
        (and warns when it holds no bronze, unless `warn_empty` is False: `land` fills it)."""
        from daedalus.project_file import announce_root, load

        cfg, source = load(self.config_path, self.overrides)
        _require_root(cfg.storage.root, source)
        if not self.announced:
            self.announced = True
            announce_root(cfg, source, warn_empty=warn_empty)
        return cfg


def _require_root(root: str, source: str) -> None:
    """A local root that does not exist is a typo, not a new lake: `build` used to create
    `catalog.duckdb` and `_state/` there and exit 0 (issue 24). `collect`, `demo` and `init` create
    a lake; every other command needs one."""
    from pathlib import Path

    from daedalus.errors import ConfigError

    if "://" in root or Path(root).expanduser().is_dir():
        return
    raise ConfigError(
        f"storage.root {root} ({source}): no such folder, so no lake; fix --root / storage.root, "
        "or create a lake with `daedalus collect`, `daedalus demo` or `daedalus init`"
    )


def global_options(ctx: typer.Context) -> GlobalOptions:
    """The global options of this invocation (made by the app's callback; a fresh default set when a
    command runs without it)."""
    return ctx.ensure_object(GlobalOptions)
