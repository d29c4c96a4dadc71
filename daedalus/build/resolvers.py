"""What ref(), source() and previous_partition() render to, and a model's SQL compiled with them.

- `BuildResolver`: one partition being built reads exactly the input files it was planned with.
- `EmptyResolver`: everything empty, to learn a model's columns when it has no files yet.
- `CatalogResolver`: every current file (data tests, `compile` of a view); the catalog overrides
  `relation()` only (build/catalog_views.py: globs of the model folders).

An input with no files renders as an empty relation with the right columns: from the manifest, from
bronze's schemas, or from the model's own SQL rendered over empty inputs.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from daedalus.build.durations import lookback_seconds
from daedalus.build.materializations import MATERIALIZATIONS, PartPlan
from daedalus.build.partition import PartitionCtx
from daedalus.errors import CompileError
from daedalus.sqltext import empty_relation_sql, read_parquet_sql, sql_str

if TYPE_CHECKING:
    import duckdb

    from daedalus.build.compiler import Compiler
    from daedalus.build.inventory import Inventory
    from daedalus.build.parts import InputPart
    from daedalus.build.project import Model, Project
    from daedalus.lake import Lake
    from daedalus.lake.manifest import Manifest


class Renderer:
    """Compiles models against an inventory of the lake's partitions."""

    def __init__(
        self,
        project: Project,
        compiler: Compiler,
        lake: Lake,
        manifest: Manifest,
        inventory: Inventory,
        con: Callable[..., duckdb.DuckDBPyConnection],  # con(sql): ready for sql (its UDFs registered)
    ) -> None:
        self.project, self.compiler, self.lake, self.manifest = project, compiler, lake, manifest
        self.inventory, self.con = inventory, con
        self.source_cols: dict[str, list[tuple[str, str]]] = {}

    def reads(self, model: Model, part: PartPlan) -> list[InputPart]:
        return MATERIALIZATIONS[model.materialized].reads(self.inventory, model, part)

    def partition_ctx(
        self, model: Model, part: PartPlan | None, bounds: tuple[dt.datetime, dt.datetime] | None = None
    ) -> PartitionCtx | None:
        if part is None or not MATERIALIZATIONS[model.materialized].partitioned:
            return None
        return PartitionCtx(dict(part.keys), lookback_seconds(model.config.lookback), bounds)

    def compile_model_sql(
        self,
        model: Model,
        part: PartPlan | None,
        symbolic_empty: bool = False,
        bounds: tuple[dt.datetime, dt.datetime] | None = None,
    ) -> str:
        """The model's SQL for one partition, or one time slice of it (or over all files when part
        is None)."""
        if part is None:
            return self.compiler.render_model(model, CatalogResolver(self), None)
        resolver = BuildResolver(self, model, part, self.reads(model, part), symbolic_empty)
        return self.compiler.render_model(model, resolver, self.partition_ctx(model, part, bounds))

    def relation_sql(self, rel: str) -> str:
        """A relation over every current file of a source or model (empty relation when none)."""
        kind, name = rel.split(":", 1)
        files = [self.lake.url(f.path) for f in self.inventory.all_files(rel)]
        if files:
            return read_parquet_sql(files, hive=(kind == "source"))
        if kind == "source":
            return empty_relation_sql(self.source_columns(name))
        return self.empty_model_relation(self.project.models[name], None)

    def source_columns(self, name: str) -> list[tuple[str, str]]:
        """A bronze channel's columns as DuckDB reads them (from collector/schemas.py) + hive keys."""
        if name in self.source_cols:
            return self.source_cols[name]
        src = self.project.sources[name]
        cols: list[tuple[str, str]] = []
        try:
            from daedalus.collector.schemas import SCHEMAS
        except ImportError:  # running from a checkout without the package mapping
            SCHEMAS = {}
        if name in SCHEMAS:
            import tempfile

            import pyarrow.parquet as pq

            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "empty.parquet")
                pq.write_table(SCHEMAS[name].empty_table(), path)
                cols = [
                    (r[0], r[1])
                    for r in self.con()
                    .execute(f"DESCRIBE SELECT * FROM read_parquet({sql_str(path)})")
                    .fetchall()
                ]
        elif src.docs.columns and all(c.data_type for c in src.docs.columns.values()):
            cols = [(c.name, str(c.data_type)) for c in src.docs.columns.values()]
        else:
            raise CompileError(
                f"source '{src.relation}' has no files and no known columns: add data_type "
                "to every column in sources.yml"
            )
        have = {c for c, _ in cols}
        for k in src.partition_by:
            if k not in have:
                cols.append((k, "DATE" if k == "date" else "VARCHAR"))
        self.source_cols[name] = cols
        return cols

    def empty_model_relation(self, model: Model, keys: dict[str, str] | None, depth: int = 0) -> str:
        """An empty relation with the model's columns: from the manifest, else its SQL over empty inputs."""
        ms = self.manifest.models.get(model.name)
        if ms and ms.columns:
            return empty_relation_sql([(c[0], c[1]) for c in ms.columns])
        if depth > 50:
            raise CompileError(f"{model.path}:1: cannot derive the columns of '{model.name}' (recursion)")
        part = None
        if MATERIALIZATIONS[model.materialized].partitioned:
            k = {key: (keys or {}).get(key, "__empty__") for key in model.config.partition_by}
            if k.get("date", "__empty__") == "__empty__":
                k["date"] = "2000-01-01"
            part = PartitionCtx(k, lookback_seconds(model.config.lookback))
        sql = self.compiler.render_model(model, EmptyResolver(self, keys, depth + 1), part)
        derived = f"(SELECT * FROM (\n{sql}\n) AS __empty WHERE false)"
        # Pin the derived columns to plain typed NULLs: the relation then calls no UDF, so it also
        # works where none is registered (the catalog, a BI tool) and costs nothing to plan.
        from daedalus.udfs import relations

        if relations.calls_python(derived):
            # they register their relation kinds; imported only here, for they load numba
            from daedalus.udfs import book_stream, seq_stream  # noqa: F401
        con, names = self.con(derived), []
        try:
            # a streamed relation (silver.orderbook's book rebuild) must be bound to be described
            names = relations.bind(con, derived)
            cols = [(r[0], r[1]) for r in con.execute(f"DESCRIBE SELECT * FROM {derived}").fetchall()]
        except Exception:  # noqa: BLE001 - e.g. UDFs not registered here: keep the derived form
            return derived
        finally:
            relations.unbind(con, names)
        return empty_relation_sql(cols)

    def empty_previous(self, target: Model, columns: dict[str, str] | None) -> str:
        if columns:
            return empty_relation_sql(list(columns.items()))
        ms = self.manifest.models.get(target.name)
        if ms and ms.columns:
            return empty_relation_sql([(c[0], c[1]) for c in ms.columns])
        raise CompileError(
            f"{target.path}:1: previous_partition(): the first partition of '{target.name}' has no "
            "previous partition and its columns are not known yet; pass them, e.g. "
            "previous_partition(columns={'ts': 'TIMESTAMPTZ', 'bucket': 'BIGINT'})"
        )

    def inlined(self, name: str) -> Model | None:
        """The model `name` when a ref() to it inlines its SQL (a view), else None."""
        up = self.project.models[name]
        return up if MATERIALIZATIONS[up.materialized].inlines else None


class BuildResolver:
    """ref()/source() for one partition: the exact files it reads, or an empty relation."""

    def __init__(
        self, r: Renderer, target: Model, part: PartPlan, reads: list[InputPart], symbolic_empty: bool = False
    ) -> None:
        self.r, self.target, self.part, self.symbolic_empty = r, target, part, symbolic_empty
        self.by_rel: dict[str, list[InputPart]] = {}
        for ip in reads:
            self.by_rel.setdefault(ip.relation, []).append(ip)

    def files(self, rel: str) -> list[str]:
        return [self.r.lake.url(f.path) for ip in self.by_rel.get(rel, []) for f in ip.files]

    def ref(self, model: Model | None, name: str) -> str:
        view = self.r.inlined(name)
        if view is not None:
            sql = self.r.compiler.render_model(view, self, self.r.partition_ctx(self.target, self.part))
            return f"(\n{sql}\n)"
        files = self.files(f"model:{name}")
        if files:
            return read_parquet_sql(files, hive=False)
        if self.symbolic_empty:
            return f"(/* empty model {name} */)"
        return self.r.empty_model_relation(self.r.project.models[name], self.part.keys)

    def source(self, source_name: str, name: str) -> str:
        files = self.files(f"source:{name}")
        if files:
            return read_parquet_sql(files, hive=True)
        if self.symbolic_empty:
            return f"(/* empty source {name} */)"
        return empty_relation_sql(self.r.source_columns(name))

    def previous_partition(self, model: Model | None, columns: dict[str, str] | None) -> str:
        target = self.target
        prev = None
        if MATERIALIZATIONS[target.materialized].partitioned:
            prev = self.r.inventory.previous_part(target, self.part)
        if prev is not None and prev.files:
            return read_parquet_sql([self.r.lake.url(f.path) for f in prev.files], hive=False)
        if self.symbolic_empty:
            return "(/* no previous partition */)"
        return self.r.empty_previous(target, columns)


class EmptyResolver:
    """Everything empty: used to learn a model's columns when it has no files to read."""

    def __init__(self, r: Renderer, keys: dict[str, str] | None, depth: int) -> None:
        self.r, self.keys, self.depth = r, keys, depth

    def ref(self, model: Model | None, name: str) -> str:
        view = self.r.inlined(name)
        if view is not None:
            return f"(\n{self.r.compiler.render_model(view, self, None)}\n)"
        return self.r.empty_model_relation(self.r.project.models[name], self.keys, self.depth)

    def source(self, source_name: str, name: str) -> str:
        return empty_relation_sql(self.r.source_columns(name))

    def previous_partition(self, model: Model | None, columns: dict[str, str] | None) -> str:
        assert model is not None
        return self.r.empty_previous(model, columns)


class CatalogResolver:
    """ref()/source() over every file the manifest (or, for bronze, the lake) holds."""

    def __init__(self, r: Renderer) -> None:
        self.r = r

    def relation(self, rel: str) -> str:
        """SQL reading a source or model ("source:x" / "model:x"); the one thing subclasses change."""
        return self.r.relation_sql(rel)

    def ref(self, model: Model | None, name: str) -> str:
        view = self.r.inlined(name)
        if view is not None:
            return f"(\n{self.r.compiler.render_model(view, self, None)}\n)"
        return self.relation(f"model:{name}")

    def source(self, source_name: str, name: str) -> str:
        return self.relation(f"source:{name}")

    def previous_partition(self, model: Model | None, columns: dict[str, str] | None) -> str:
        assert model is not None
        return self.r.empty_previous(model, columns)
