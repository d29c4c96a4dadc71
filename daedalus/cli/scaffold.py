"""`daedalus init DIR`: a user project whose models sit beside the built-in ones."""

from __future__ import annotations

from pathlib import Path

from daedalus.errors import ConfigError
from daedalus.project_file import PROJECT_FILE

MODEL = """\
{{ config(materialized='partitioned', partition_by=['exchange', 'symbol', 'date'], tags=['mine'],
          lookback='300 seconds') }}
-- An example model of your own: one row per minute with the mean mid price of the built-in
-- orderbook_hf model. `ref()` reads exactly the partitions this one needs; the build keeps only
-- the rows of the partition being built.
SELECT exchange, symbol, date,
       time_bucket(INTERVAL '1 minute', ts) AS minute,
       avg(mid) AS mid_mean,
       count(*) AS n
FROM {{ ref('orderbook_hf') }}
WHERE ts >= {{ partition.lookback_start }} AND ts < {{ partition.end }}
GROUP BY ALL
"""

YML = """\
models:
  - name: my_model
    description: Mean mid price per minute (an example to start from).
    columns:
      - name: minute
        description: Start of the minute (UTC).
        tests: [not_null]
      - name: mid_mean
        description: Mean of the mid price over the minute.
    tests:
      - unique: {columns: [exchange, symbol, minute]}
"""

PROJECT = """\
# A Daedalus user project. Its models (sql/<layer>/*.sql) sit beside the built-in ones;
# set include_builtin: false for a project that stands alone.
name: {name}
include_builtin: true
"""

# Relative paths are relative to this file, and commands run in this folder or below find it as they
# find any daedalus.yaml, so the project moves or is cloned elsewhere unchanged.
CONFIG = """\
# Daedalus project file: commands run in this folder (or below it) use it. Every key:
# config/config.example.yaml of the package. Relative paths are relative to this file.
project_dir: .
storage:
  root: lake
"""

MACRO = """\
{# Macros here are available in every model, beside the built-in ones. #}
{% macro minute(col) -%}
time_bucket(INTERVAL '1 minute', {{ col }})
{%- endmacro %}
"""


def init_project(directory: str | Path, force: bool = False) -> list[Path]:
    """Write the scaffold; returns the files written. Refuses a non-empty folder unless `force`."""
    d = Path(directory).expanduser().resolve()
    if d.exists() and any(d.iterdir()) and not force:
        raise ConfigError(f"{d}: folder is not empty (use --force to write into it)")
    files = {
        d / PROJECT_FILE: CONFIG,
        d / "project.yml": PROJECT.format(name=d.name),
        d / "sql" / "gold" / "my_model.sql": MODEL,
        d / "sql" / "gold" / "my_model.yml": YML,
        d / "macros" / "my_macros.sql": MACRO,
        d / "tests" / "sql" / ".gitkeep": "",
    }
    written = []
    for path, text in files.items():
        if path.exists() and not force:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    (d / "lake").mkdir(exist_ok=True)  # the config's storage.root: commands refuse a root that is not there
    return written
