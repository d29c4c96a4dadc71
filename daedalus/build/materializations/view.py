"""`view`: no files. A ref() to a view inlines its SQL, rendered for the partition being built, so
its inputs become the reader's inputs; the catalog holds it as a view over all files."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from daedalus.build.materializations.base import Inputs, Materialization, PartPlan

if TYPE_CHECKING:
    from daedalus.build.project import Model


class ViewMaterialization(Materialization):
    name = "view"
    writes_files = False
    inlines = True

    def candidates(self, inputs: Inputs, model: Model) -> list[PartPlan]:
        return []

    def select_sql(
        self, model: Model, part: PartPlan, sql: str, bounds: tuple[dt.datetime, dt.datetime] | None = None
    ) -> str:
        return sql
