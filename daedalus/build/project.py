"""The model project: models (`sql/<layer>/<name>.sql`), macros, sources, YAML docs and data tests.

A project is one or more *project roots*, each with `sql/` and optionally `macros/` and
`tests/sql/`. The built-in root comes from the installed package data (`daedalus.sql`,
`daedalus.macros`); a user project (`project_dir`, from `daedalus init`) adds its own models beside
them. A user root may hold `project.yml` with `include_builtin: false` to stand alone (the toy
project of the tests does).

Loading reads files only; rendering and config checks happen in `daedalus.build.compiler`.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from daedalus.build.durations import lookback_seconds
from daedalus.errors import CompileError, ConfigError, SelectionError
from daedalus.udfs.columns import column_docs

MATERIALIZATIONS = ("view", "table", "partitioned")


class ModelConfig(BaseModel):
    """The keys a model's `{{ config(...) }}` header may set."""

    model_config = ConfigDict(extra="forbid")

    materialized: Literal["view", "table", "partitioned"] = "view"
    partition_by: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    lookback: str | None = None
    """How much earlier input a partition needs: '900 seconds', '1 day', '2 hours'."""
    settings: dict[str, Any] = Field(default_factory=dict)
    """DuckDB settings applied while this model builds, e.g. {'threads': 1}."""
    carry_state: bool = False
    """Partitions of a series build in date order; previous_partition() reads the previous one."""
    order_by: list[str] = Field(default_factory=list)
    """Sort each written file by these columns (sequential readers and the monotonic test rely on it)."""
    slice_by: str | None = None
    """A TIMESTAMPTZ column: the partition may be built in time slices of `etl.slice_hours`, one file
    each, because a row at time t reads only input in [t − lookback, t]. Bounds memory by a slice."""

    @field_validator("lookback")
    @classmethod
    def _lookback_parses(cls, v: str | None) -> str | None:
        if v is not None:
            lookback_seconds(v)
        return v

    def data_affecting(self) -> dict[str, Any]:
        """The config that changes a model's rows (part of every partition's fingerprint)."""
        return {
            "materialized": self.materialized,
            "partition_by": self.partition_by,
            "lookback": self.lookback,
            "settings": self.settings,
            "carry_state": self.carry_state,
            "order_by": self.order_by,
        }


@dataclass
class ColumnDoc:
    name: str
    description: str = ""
    tests: list[Any] = field(default_factory=list)
    data_type: str | None = None


@dataclass
class Docs:
    """What a `*.yml` says about one model or source."""

    description: str = ""
    columns: dict[str, ColumnDoc] = field(default_factory=dict)
    tests: list[Any] = field(default_factory=list)
    yml_path: Path | None = None


@dataclass
class Model:
    name: str
    layer: str
    path: Path
    raw_sql: str
    root: Path
    builtin: bool
    docs: Docs = field(default_factory=Docs)
    # Filled by the compiler's parse pass:
    config: ModelConfig = field(default_factory=ModelConfig)
    refs: list[str] = field(default_factory=list)
    sources: list[tuple[str, str]] = field(default_factory=list)
    uses_previous_partition: bool = False
    calls_python: bool = False  # its SQL calls a Daedalus UDF or Python relation (numba: dag.py)

    @property
    def materialized(self) -> str:
        return self.config.materialized

    @property
    def relation(self) -> str:
        """The catalog view name: `<layer>.<name>`."""
        return f"{self.layer}.{self.name}"

    @property
    def lake_prefix(self) -> str:
        """Where its files live under the lake root."""
        return f"{self.layer}/{self.name}"


@dataclass
class Source:
    """A bronze channel declared in `sources.yml` (`source('bronze', name)`)."""

    source_name: str
    name: str
    docs: Docs = field(default_factory=Docs)
    partition_by: list[str] = field(default_factory=lambda: ["exchange", "date"])

    @property
    def relation(self) -> str:
        return f"{self.source_name}.{self.name}"

    @property
    def lake_prefix(self) -> str:
        return f"{self.source_name}/{self.name}"


@dataclass
class SqlTest:
    """A custom data test: a query returning offending rows (none = pass)."""

    name: str
    path: Path
    raw_sql: str


@dataclass
class Macro:
    path: Path
    text: str


@dataclass
class Project:
    roots: list[Path]
    models: dict[str, Model] = field(default_factory=dict)
    sources: dict[str, Source] = field(default_factory=dict)
    macros: list[Macro] = field(default_factory=list)
    sql_tests: list[SqlTest] = field(default_factory=list)

    def model(self, name: str) -> Model:
        try:
            return self.models[name]
        except KeyError:
            raise SelectionError(  # a name given on the command line: usage (exit 2), not a compile error
                f"unknown model '{name}' (known: {', '.join(sorted(self.models)) or 'none'})"
            ) from None


# ---------------------------------------------------------------------------------------------
# Loading


def builtin_roots() -> tuple[Path, Path]:
    """The installed package's model folder and macro folder."""
    sql = Path(str(importlib.resources.files("daedalus.sql")))
    macros = Path(str(importlib.resources.files("daedalus.macros")))
    return sql, macros


def _read_project_yml(root: Path) -> dict[str, Any]:
    for name in ("project.yml", "daedalus_project.yml"):
        p = root / name
        if p.exists():
            try:
                data = yaml.safe_load(p.read_text()) or {}
            except yaml.YAMLError as e:
                mark = getattr(e, "problem_mark", None)
                raise CompileError(f"{p}:{mark.line + 1 if mark else 1}: not valid YAML") from None
            if not isinstance(data, dict):
                raise CompileError(f"{p}:1: must be a mapping")
            unknown = set(data) - {"name", "include_builtin", "description"}
            if unknown:
                raise CompileError(
                    f"{p}:1: unknown key '{sorted(unknown)[0]}' (allowed: name, include_builtin, description)"
                )
            return data
    return {}


def load_project(
    config: Any = None, project_dir: str | Path | None = None, include_builtin: bool | None = None
) -> Project:
    """Load the built-in project plus the user project of `config.project_dir` (or `project_dir`).

    `include_builtin=None` follows the user project's `project.yml` (default: include).
    """
    user_dir = project_dir if project_dir is not None else getattr(config, "project_dir", None)
    roots: list[tuple[Path, Path, Path | None, bool]] = []  # (sql dir, macros dir, tests dir, builtin)
    want_builtin = True
    if user_dir is not None:
        ur = Path(user_dir).expanduser().resolve()
        if not ur.is_dir():
            raise ConfigError(f"project_dir {ur}: not a directory; fix project_dir in the config")
        meta = _read_project_yml(ur)
        want_builtin = bool(meta.get("include_builtin", True))
        roots.append((ur / "sql", ur / "macros", ur / "tests" / "sql", False))
    if include_builtin is not None:
        want_builtin = include_builtin
    if want_builtin:
        sql, macros = builtin_roots()
        roots.insert(0, (sql, macros, None, True))

    project = Project(roots=[r[0] for r in roots])
    for sql_dir, macro_dir, tests_dir, builtin in roots:
        _load_root(project, sql_dir, macro_dir, tests_dir, builtin)
    return project


def _load_root(
    project: Project, sql_dir: Path, macro_dir: Path, tests_dir: Path | None, builtin: bool
) -> None:
    if macro_dir.is_dir():
        for p in sorted(macro_dir.glob("*.sql")):
            project.macros.append(Macro(p, p.read_text()))
    if tests_dir is not None and tests_dir.is_dir():
        for p in sorted(tests_dir.glob("*.sql")):
            project.sql_tests.append(SqlTest(p.stem, p, p.read_text()))
    if not sql_dir.is_dir():
        return
    for p in sorted(sql_dir.rglob("*.sql")):
        rel = p.relative_to(sql_dir)
        if rel.parts[0] == "tests":
            project.sql_tests.append(SqlTest(p.stem, p, p.read_text()))
            continue
        if len(rel.parts) < 2:
            raise CompileError(f"{p}:1: a model must sit in a layer folder, e.g. sql/silver/ or sql/gold/")
        layer = rel.parts[0]
        name = p.stem
        if name in project.models:
            other = project.models[name].path
            raise CompileError(
                f"{p}:1: model name '{name}' is already used by {other}; model names are unique"
            )
        project.models[name] = Model(
            name=name, layer=layer, path=p, raw_sql=p.read_text(), root=sql_dir, builtin=builtin
        )
    for y in sorted(list(sql_dir.rglob("*.yml")) + list(sql_dir.rglob("*.yaml"))):
        _load_yml(project, y)


def _yml_line(path: Path, needle: str) -> int:
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return i
    return 1


# Column lists declared in code once and shared with the kernels and SQL (`generated_columns: <key>`).
GENERATED_COLUMNS = {"sequential": column_docs}


def _docs_from(entry: dict[str, Any], path: Path) -> Docs:
    docs = Docs(description=str(entry.get("description") or ""), yml_path=path)
    docs.tests = list(entry.get("tests") or []) + list(entry.get("data_tests") or [])
    cols = entry.get("columns") or []
    if isinstance(cols, dict):  # {name: {description, tests}} is accepted too
        cols = [{"name": k, **(v or {})} for k, v in cols.items()]
    generated = entry.get("generated_columns")
    if generated is not None:
        if generated not in GENERATED_COLUMNS:
            raise CompileError(
                f"{path}:{_yml_line(path, 'generated_columns')}: unknown generated_columns "
                f"'{generated}' (known: {', '.join(GENERATED_COLUMNS)})"
            )
        cols = list(cols) + GENERATED_COLUMNS[generated]()
    for c in cols:
        if not isinstance(c, dict) or "name" not in c:
            raise CompileError(f"{path}:{_yml_line(path, 'columns')}: each column needs a 'name'")
        docs.columns[str(c["name"])] = ColumnDoc(
            name=str(c["name"]),
            description=str(c.get("description") or ""),
            tests=list(c.get("tests") or []) + list(c.get("data_tests") or []),
            data_type=c.get("data_type"),
        )
    return docs


def _load_yml(project: Project, path: Path) -> None:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise CompileError(
            f"{path}:{mark.line + 1 if mark else 1}: not valid YAML ({getattr(e, 'problem', e)})"
        ) from None
    if not isinstance(data, dict):
        raise CompileError(f"{path}:1: must be a mapping with 'models:' and/or 'sources:'")
    for src in data.get("sources") or []:
        sname = str(src.get("name", "bronze"))
        for t in src.get("tables") or src.get("channels") or []:
            if not isinstance(t, dict) or "name" not in t:
                raise CompileError(f"{path}:{_yml_line(path, 'tables')}: each source table needs a 'name'")
            name = str(t["name"])
            source = Source(sname, name, _docs_from(t, path))
            if t.get("partition_by"):
                source.partition_by = list(t["partition_by"])
            project.sources[name] = source
    for entry in data.get("models") or []:
        if not isinstance(entry, dict) or "name" not in entry:
            raise CompileError(f"{path}:{_yml_line(path, 'models')}: each model entry needs a 'name'")
        name = str(entry["name"])
        if name not in project.models:
            # Docs for a model of another root (e.g. a user yml documenting a built-in model) are fine;
            # docs for no model at all are a typo worth one clear line.
            raise CompileError(
                f"{path}:{_yml_line(path, name)}: documents model '{name}', which does not exist"
            )
        project.models[name].docs = _docs_from(entry, path)


def parse_config_kwargs(kwargs: dict[str, Any], where: str) -> ModelConfig:
    """Validate a config(...) call's keys and values; one line naming the bad key and what is allowed.
    Which keys a kind supports is the materialization's to say (materializations.parse_config)."""
    try:
        cfg = ModelConfig.model_validate(kwargs)
    except ValidationError as e:
        first = e.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "?"
        if first["type"] == "extra_forbidden":
            allowed = ", ".join(ModelConfig.model_fields)
            raise CompileError(f"{where}: unknown config key '{key}' (allowed: {allowed})") from None
        raise CompileError(f"{where}: invalid config '{key}': {first['msg']}") from None
    return cfg
