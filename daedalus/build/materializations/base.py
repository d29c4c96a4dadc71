"""The interface every materialization implements, the context it sees, and the one COPY template."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from daedalus.build.layout import DATA_FILE, staged_path
from daedalus.errors import CompileError
from daedalus.paths import partition_id, path_value  # noqa: F401 (re-exported)
from daedalus.sqltext import sql_ident, sql_str

if TYPE_CHECKING:
    import duckdb

    from daedalus.build.parts import InputPart, PartRegistry, RowGroupSpan
    from daedalus.build.project import Model, ModelConfig
    from daedalus.config import Config, StorageConfig
    from daedalus.lake import FileInfo, Lake


@dataclass
class PartPlan:
    """One partition of a model: its keys and the input partitions it reads."""

    model: str
    pid: str  # "exchange=X/symbol=BTC%2FUSDT/date=D" (daedalus/paths.py); "" for a table
    keys: dict[str, str]
    reads: list[InputPart] = field(default_factory=list)
    stale: bool = False
    reason: str = ""

    @property
    def date(self) -> str | None:
        return self.keys.get("date")

    def series(self) -> tuple[tuple[str, str], ...]:
        """The keys of this partition's series (all but date)."""
        return tuple((k, v) for k, v in self.keys.items() if k != "date")


@dataclass
class WriteResult:
    files: list[FileInfo]
    rows: int
    bytes: int


class Inputs(Protocol):
    """What a materialization may ask of the lake's partitions (daedalus/build/inventory.py)."""

    def parts(self, rel: str) -> PartRegistry: ...
    def leaf_relations(self, model: Model) -> list[str]: ...
    def source_relations(self, model: Model) -> list[str]: ...
    def row_group_spans(self, ip: InputPart) -> list[RowGroupSpan]: ...
    def relation_keys(self, rel: str) -> list[str]: ...
    def discover(self, rel: str, ip: InputPart, missing: list[str]) -> list[dict[str, str]]: ...
    def in_range(self, date: str | None) -> bool: ...


@dataclass
class BuildContext:
    """The thin adapter a materialization writes through: never the whole session."""

    lake: Lake
    config: Config
    inputs: Inputs
    con: Callable[..., duckdb.DuckDBPyConnection]  # con(sql): ready to run sql (its UDFs registered)
    execute_copy: Callable[[Model, PartPlan, str], int]  # runs a COPY, returns its rows (errors named)
    query_error: Callable[[Model, PartPlan, Exception], Exception]  # a DuckDB error as execute_copy names it
    compile: Callable[..., str]  # (model, part, bounds=None) → the model's SQL for that partition/slice
    staging: str  # this build's staging folder (daedalus/build/publish.py)

    def staged_path(self, model: Model, pid: str, name: str = DATA_FILE) -> str:
        return staged_path(self.staging, model, pid, name)


def copy_sql(select_sql: str, url: str, storage: StorageConfig | None = None) -> str:
    """The one COPY of a model's rows into a Parquet file (zstd at DuckDB's level 3: level 1 wrote no
    faster here and made silver.orderbook 42 % bigger); `storage` sets the row group size."""
    opts = "" if storage is None else f", ROW_GROUP_SIZE {int(storage.row_group_rows)}"
    return f"COPY (\n{select_sql}\n) TO {sql_str(url)} (FORMAT parquet, COMPRESSION zstd{opts})"


def partition_filter(keys: dict[str, str]) -> str:
    conds = []
    for k, v in keys.items():
        if k == "date":
            conds.append(f"{sql_ident(k)} = DATE {sql_str(v)}")
        else:
            conds.append(f"{sql_ident(k)} = {sql_str(v)}")
    return " AND ".join(conds)


def all_reads(inputs: Inputs, model: Model) -> list[InputPart]:
    """Every partition of every relation the model reads (sorted: the file order is in the SQL)."""
    return [
        ip
        for rel in inputs.leaf_relations(model)
        for ip in sorted(inputs.parts(rel).values(), key=lambda ip: ip.pid)
    ]


class Materialization:
    """Base: a kind of model output. Callers ask these attributes, never the kind's name."""

    name: ClassVar[str] = ""
    writes_files: ClassVar[bool] = True  # has partitions (files) in the manifest
    inlines: ClassVar[bool] = False  # a ref() to it inlines its SQL (a view): it has no files to read
    partitioned: ClassVar[bool] = False  # partition keys, previous_partition(), lookback, slices
    options: ClassVar[frozenset[str]] = frozenset()  # kind-specific config keys it supports

    def check_config(self, cfg: ModelConfig, where: str) -> None:
        """Raise CompileError for a kind-specific option this kind does not support."""
        for key in ("partition_by", "carry_state", "slice_by"):
            if getattr(cfg, key) and key not in self.options:
                kinds = ", ".join(f"'{m.name}'" for m in REGISTERED if key in m.options)
                raise CompileError(
                    f"{where}: {key} only applies to materialized={kinds}"
                    + (" (a slice is part of a day)" if key == "slice_by" else "")
                )

    def relation_keys(self, model: Model) -> list[str]:
        """The keys its partitions are addressed by ([] = one unpartitioned relation)."""
        return []

    def candidates(self, inputs: Inputs, model: Model) -> list[PartPlan]:
        raise NotImplementedError

    def reads(self, inputs: Inputs, model: Model, part: PartPlan) -> list[InputPart]:
        """The input partitions one partition reads."""
        return all_reads(inputs, model)

    def select_sql(
        self, model: Model, part: PartPlan, sql: str, bounds: tuple[dt.datetime, dt.datetime] | None = None
    ) -> str:
        """The query whose rows are this partition (the model wrapped with the partition filter)."""
        raise NotImplementedError

    def slice_bounds(
        self, config: Config, inputs: Inputs, model: Model, part: PartPlan
    ) -> list[tuple[dt.datetime, dt.datetime]] | None:
        """The time slices this partition is built in; None when it is built whole."""
        return None

    def write(self, ctx: BuildContext, model: Model, part: PartPlan, sql: str) -> WriteResult:
        """Write the partition's rows to its one staged file (daedalus/build/publish.py publishes it)."""
        info, rows = self.write_file(ctx, model, part, self.select_sql(model, part, sql))
        if info is None:  # DuckDB wrote nothing: should not happen, even for 0 rows
            return WriteResult([], 0, 0)
        return WriteResult([info], rows, info.size)

    def write_file(
        self,
        ctx: BuildContext,
        model: Model,
        part: PartPlan,
        select: str,
        name: str | None = None,
    ) -> tuple[FileInfo | None, int]:
        """One COPY of `select` into the partition's staging folder: (the file, its rows)."""
        rel = ctx.staged_path(model, part.pid, name or DATA_FILE)
        ctx.lake.prepare_dir(rel.rsplit("/", 1)[0])
        sql = copy_sql(select, ctx.lake.url(rel), ctx.config.storage)
        rows = ctx.execute_copy(model, part, sql)
        return ctx.lake.verify_write(rel, rows), rows  # object stores: list + footer rows = COPY's

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}


REGISTERED: list[Materialization] = []  # filled by materializations/__init__.py (for error messages)


def order_clause(model: Model) -> str:
    if not model.config.order_by:
        return ""
    return "\nORDER BY " + ", ".join(sql_ident(c) for c in model.config.order_by)
