"""`table`: one unpartitioned relation, rewritten whole when any input changes."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from daedalus.build.materializations.base import Inputs, Materialization, PartPlan, all_reads, order_clause

if TYPE_CHECKING:
    from daedalus.build.project import Model


class TableMaterialization(Materialization):
    name = "table"

    def candidates(self, inputs: Inputs, model: Model) -> list[PartPlan]:
        return [PartPlan(model.name, "", {}, all_reads(inputs, model))]

    def select_sql(
        self, model: Model, part: PartPlan, sql: str, bounds: tuple[dt.datetime, dt.datetime] | None = None
    ) -> str:
        return f"SELECT * FROM (\n{sql}\n) AS __daedalus_model{order_clause(model)}"
