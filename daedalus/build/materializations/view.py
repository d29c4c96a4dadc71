"""`view`: no files. A ref() to a view inlines its SQL, rendered for the partition being built, so
its inputs become the reader's inputs; the catalog holds it as a view over all files."""

from __future__ import annotations

from typing import TYPE_CHECKING

from daedalus.build.materializations.base import Materialization, PartPlan

if TYPE_CHECKING:
    from daedalus.build.project import Model
    from daedalus.build.runner import Session


class ViewMaterialization(Materialization):
    name = "view"
    writes_files = False

    def candidates(self, session: Session, model: Model) -> list[PartPlan]:
        return []

    def select_sql(self, model: Model, part: PartPlan, sql: str) -> str:
        return sql
