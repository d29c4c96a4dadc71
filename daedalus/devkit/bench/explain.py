"""Where a model's time goes: run one partition of it under DuckDB's profiler, operators by time.

`daedalus bench explain orderbook --partition exchange=binance,symbol=BTC/USDT,date=2024-01-01`
compiles the model exactly as a build would (api.compile_sql), writes its rows to a throw-away
Parquet file (the same COPY a build runs) with `enable_profiling='json'`, and lists the operators
of the plan by their own time (EXPLAIN ANALYZE's figures, flattened so the costly ones come first).
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from daedalus.config import Config


@dataclass
class OperatorTiming:
    name: str
    seconds: float
    rows: int | None
    depth: int
    detail: str


@dataclass
class ModelProfile:
    model: str
    partition: str
    seconds: float
    operators: list[OperatorTiming]

    def top(self, n: int = 15) -> list[OperatorTiming]:
        return sorted(self.operators, key=lambda o: -o.seconds)[:n]


def flatten_profile(node: dict[str, Any], depth: int = 0) -> list[OperatorTiming]:
    """Every operator of DuckDB's JSON profile tree with its own (not cumulative) time."""
    out: list[OperatorTiming] = []
    name = node.get("operator_name") or node.get("operator_type") or node.get("name") or "?"
    extra = node.get("extra_info") or {}
    detail = ""
    for key in (
        "Projections",
        "Aggregates",
        "Order By",
        "Conditions",
        "Expression",
        "Function",
        "Groups",
        "Join Type",
    ):
        if key in extra:
            val = extra[key]
            detail = f"{key}: {', '.join(val) if isinstance(val, list) else val}"
            break
    if depth > 0 or "operator_timing" in node:
        card = node.get("operator_cardinality")
        out.append(
            OperatorTiming(
                str(name).strip(),
                float(node.get("operator_timing") or 0.0),
                int(card) if card is not None else None,
                depth,
                detail,
            )
        )
    for child in node.get("children") or []:
        out.extend(flatten_profile(child, depth + 1))
    return out


def profile_model(config: Config, model: str, partition: str | None = None) -> ModelProfile:
    """Run one partition of `model` (default: its newest) under the profiler; see the module doc."""
    from daedalus.build import api
    from daedalus.build.project import load_project
    from daedalus.sqltext import sql_str
    from daedalus.udfs import relations

    project = load_project(config)
    sql = api.compile_sql(config, model, partition, project=project, udfs=True)
    header, _, query = sql.partition("\n")
    con = api.connect(config)
    # the model's own DuckDB settings, as the build sets them (daedalus/build/step.py): without them
    # a model that turns an optimizer off or runs on one thread was profiled as another plan
    for key, value in project.model(model).config.settings.items():
        con.execute(f"SET {key} = {value if isinstance(value, bool | int | float) else sql_str(str(value))}")
    with tempfile.TemporaryDirectory(prefix="daedalus-explain-") as tmp:
        prof = Path(tmp) / "profile.json"
        con.execute("PRAGMA enable_profiling = 'json'")
        con.execute(f"PRAGMA profiling_output = '{prof}'")
        t = time.perf_counter()
        names = relations.bind(con, query)  # a streamed relation (silver.orderbook's book rebuild)
        con.execute(f"COPY (\n{query}\n) TO '{Path(tmp) / 'rows.parquet'}' (FORMAT parquet)")
        relations.unbind(con, names)
        seconds = time.perf_counter() - t
        con.execute("PRAGMA disable_profiling")
        doc = json.loads(prof.read_text())
    con.close()
    return ModelProfile(model, header.removeprefix("-- "), seconds, flatten_profile(doc))
