"""Materializations: one small class per kind, registered by name in `MATERIALIZATIONS`.

A materialization says which partitions a model has (`candidates`) given its inputs, and how one
partition's rows are written (`write`). Staleness, ordering, the manifest and deletions belong to the
runner; the COPY statement comes from one template (`copy_sql`).
"""

from __future__ import annotations

from daedalus.build.materializations.base import Materialization, PartPlan, WriteResult, copy_sql
from daedalus.build.materializations.partitioned import PartitionedMaterialization
from daedalus.build.materializations.table import TableMaterialization
from daedalus.build.materializations.view import ViewMaterialization

MATERIALIZATIONS: dict[str, Materialization] = {
    m.name: m for m in (ViewMaterialization(), TableMaterialization(), PartitionedMaterialization())
}

__all__ = ["MATERIALIZATIONS", "Materialization", "PartPlan", "WriteResult", "copy_sql"]
