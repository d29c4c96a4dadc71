"""`table`: one unpartitioned relation, rewritten whole when any input changes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from daedalus.build.compiler import sql_ident
from daedalus.build.materializations.base import Materialization, PartPlan

if TYPE_CHECKING:
    from daedalus.build.project import Model
    from daedalus.build.runner import Session


class TableMaterialization(Materialization):
    name = "table"

    def candidates(self, session: Session, model: Model) -> list[PartPlan]:
        reads = [ip for rel in session.leaf_relations(model)
                 for ip in sorted(session.parts(rel).values(), key=lambda ip: ip.pid)]
        return [PartPlan(model.name, "", {}, reads)]

    def select_sql(self, model: Model, part: PartPlan, sql: str) -> str:
        order = ""
        if model.config.order_by:
            order = "\nORDER BY " + ", ".join(sql_ident(c) for c in model.config.order_by)
        return f"SELECT * FROM (\n{sql}\n) AS __daedalus_model{order}"
