"""Materializations: one small class per kind, registered by name in `MATERIALIZATIONS`.

A materialization says which partitions a model has (`candidates`) given its inputs, which inputs
one partition reads (`reads`), and how its rows are written (`write`, through a `BuildContext`).
Staleness, ordering, the manifest and deletions belong to the build (planner.py, step.py); the COPY
statement comes from one template (`copy_sql`). Code outside this package asks a kind's attributes
(`writes_files`, `inlines`, `partitioned`, `relation_keys`), never its name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from daedalus.build.materializations.base import (
    REGISTERED,
    BuildContext,
    Inputs,
    Materialization,
    PartPlan,
    WriteResult,
    copy_sql,
)
from daedalus.build.materializations.partitioned import PartitionedMaterialization
from daedalus.build.materializations.table import TableMaterialization
from daedalus.build.materializations.view import ViewMaterialization
from daedalus.build.project import parse_config_kwargs

if TYPE_CHECKING:
    from daedalus.build.project import Model, ModelConfig

MATERIALIZATIONS: dict[str, Materialization] = {
    m.name: m for m in (ViewMaterialization(), TableMaterialization(), PartitionedMaterialization())
}
REGISTERED.extend(MATERIALIZATIONS.values())


def parse_config(kwargs: dict[str, Any], where: str) -> ModelConfig:
    """A model's config(...) call validated: its keys (project.py), then its kind's options."""
    cfg = parse_config_kwargs(kwargs, where)
    MATERIALIZATIONS[cfg.materialized].check_config(cfg, where)
    return cfg


def kind(model: Model) -> Materialization:
    """The materialization of a model."""
    return MATERIALIZATIONS[model.materialized]


__all__ = [
    "MATERIALIZATIONS",
    "BuildContext",
    "Inputs",
    "Materialization",
    "PartPlan",
    "WriteResult",
    "copy_sql",
    "kind",
    "parse_config",
]
