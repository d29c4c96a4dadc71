"""Jinja → SQL. Renders models with the context of docs/contracts.md and checks them with sqlglot.

Every model renders with: all macros of `macros/*.sql` as globals, `features` (etl.features),
`etl`, `sequential_columns(horizons)`, `sequential_params(symbol)`, `vpin_params(symbol)` (udfs/columns.py;
`vpin_param_values(symbol)`: the same as a dict),
`var('dotted.path', default)`, `config(...)`, `ref()`, `source()`, `previous_partition()` and, for a
partitioned model, `partition`
(`start`/`end`/`lookback_start` TIMESTAMPTZ literals, `date` a DATE literal, `date_iso`, and the raw
key values, e.g. `partition.exchange`).

What `ref()`/`source()` return depends on a *resolver*: the parse pass returns placeholders and
records the edges; the build's resolver returns `read_parquet([...exact files...])` or an empty
relation of the right columns.

Errors are one line, `file:line: message`, raised as CompileError (exit code 3).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import jinja2

from daedalus.build.materializations import parse_config
from daedalus.build.partition import PartitionCtx
from daedalus.build.project import Model, Project, SqlTest
from daedalus.errors import CompileError, DaedalusError
from daedalus.sqltext import read_parquet_sql, sql_ident, sql_str
from daedalus.udfs.columns import VpinParams, output_columns, params_sql, vpin_params_sql
from daedalus.udfs.relations import calls_python, memo_sql, relation_sql, table_sql

PLACEHOLDER_DATE = "2000-01-01"


class _PlaceholderPartition(PartitionCtx):
    """The parse pass does not know the partition; any key reads as a placeholder value."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return "__partition__"


# ---------------------------------------------------------------------------------------------
# Resolvers


class Resolver(Protocol):
    def ref(self, model: Model, name: str) -> str: ...

    def source(self, source_name: str, name: str) -> str: ...

    def previous_partition(self, model: Model, columns: dict[str, str] | None) -> str: ...


@dataclass
class ParseResolver:
    """Records edges; returns placeholder relations of the same shape as the real ones."""

    refs: list[str] = field(default_factory=list)
    sources: list[tuple[str, str]] = field(default_factory=list)
    uses_previous: bool = False

    def ref(self, model: Model, name: str) -> str:
        if name not in self.refs:
            self.refs.append(name)
        return read_parquet_sql([f"__ref__/{name}.parquet"], False)

    def source(self, source_name: str, name: str) -> str:
        if (source_name, name) not in self.sources:
            self.sources.append((source_name, name))
        return read_parquet_sql([f"__source__/{source_name}/{name}.parquet"], True)

    def previous_partition(self, model: Model, columns: dict[str, str] | None) -> str:
        self.uses_previous = True
        return read_parquet_sql(["__previous__.parquet"], False)


# ---------------------------------------------------------------------------------------------
# The compiler


def _dotted(obj: Any, path: str) -> Any:
    node = obj
    for part in path.split("."):
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return node


class Compiler:
    def __init__(self, project: Project, config: Any) -> None:
        self.project = project
        self.config = config
        self._sources: dict[str, tuple[str, Path]] = {}
        self.env = jinja2.Environment(
            loader=jinja2.FunctionLoader(self._load),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,
        )
        self._templates: dict[str, jinja2.Template] = {}
        self._by_filename: dict[str, jinja2.Template] = {}
        self._macro_templates: list[jinja2.Template] | None = None

    # -- templates --------------------------------------------------------------------------

    def _load(self, name: str) -> tuple[str, str, Callable[[], bool]] | None:
        if name not in self._sources:
            return None
        text, path = self._sources[name]
        return text, str(path), lambda: True

    def _template(self, key: str, text: str, path: Path) -> jinja2.Template:
        tpl = self._templates.get(key)
        if tpl is None:
            self._sources[key] = (text, path)
            try:
                tpl = self.env.get_template(key)
            except jinja2.TemplateSyntaxError as e:
                raise CompileError(f"{path}:{e.lineno}: Jinja syntax error: {e.message}") from None
            self._templates[key] = tpl
            self._by_filename[str(path)] = tpl
        return tpl

    def _macros(self) -> list[jinja2.Template]:
        if self._macro_templates is None:
            self._macro_templates = [
                self._template(f"macro:{m.path}", m.text, m.path) for m in self.project.macros
            ]
        return self._macro_templates

    def template_line(self, default_path: Path) -> str:
        """`file:line` of the template code running now (innermost template frame)."""
        frame = sys._getframe()
        while frame is not None:
            tpl = self._by_filename.get(frame.f_code.co_filename)
            if tpl is not None:
                return f"{frame.f_code.co_filename}:{tpl.get_corresponding_lineno(frame.f_lineno)}"
            frame = frame.f_back
        return f"{default_path}:1"

    def _error_line(self, exc: BaseException, default_path: Path) -> str:
        import traceback

        for fs in reversed(traceback.extract_tb(exc.__traceback__)):
            tpl = self._by_filename.get(fs.filename)
            if tpl is not None:
                return f"{fs.filename}:{fs.lineno}"  # jinja rewrites template frames to source lines
        return f"{default_path}:1"

    # -- context ----------------------------------------------------------------------------

    def _context(
        self,
        model: Model | None,
        path: Path,
        resolver: Resolver,
        partition: PartitionCtx | None,
        config_calls: list[tuple[dict[str, Any], str]] | None,
    ) -> dict[str, Any]:
        cfg = self.config
        ctx: dict[str, Any] = {}

        def config_fn(**kwargs: Any) -> str:
            if config_calls is not None:
                config_calls.append((kwargs, self.template_line(path)))
            return ""

        def ref(name: str) -> str:
            if name not in self.project.models:
                known = ", ".join(sorted(self.project.models)) or "none"
                raise CompileError(f"{self.template_line(path)}: unknown ref '{name}' (models: {known})")
            return resolver.ref(model, name)

        def source(source_name: str, name: str | None = None) -> str:
            if name is None:  # source('orderbook') is accepted as bronze
                source_name, name = "bronze", source_name
            src = self.project.sources.get(name)
            if src is None or src.source_name != source_name:
                known = (
                    ", ".join(f"{s.source_name}.{s.name}" for s in self.project.sources.values()) or "none"
                )
                raise CompileError(
                    f"{self.template_line(path)}: unknown source '{source_name}.{name}' "
                    f"(declared in sources.yml: {known})"
                )
            return resolver.source(source_name, name)

        def previous_partition(columns: dict[str, str] | None = None) -> str:
            if model is None:
                raise CompileError(
                    f"{self.template_line(path)}: previous_partition() is only available "
                    "in a partitioned model with carry_state=true"
                )
            return resolver.previous_partition(model, columns)

        _missing = object()

        def var(name: str, default: Any = _missing) -> Any:
            try:
                return _dotted(cfg, name)
            except (KeyError, AttributeError):
                if default is _missing:
                    raise CompileError(
                        f"{self.template_line(path)}: var('{name}'): no such config key and no default given"
                    ) from None
                return default

        ctx.update(
            config=config_fn,
            ref=ref,
            source=source,
            previous_partition=previous_partition,
            var=var,
            features=cfg.etl.features if cfg is not None else None,
            etl=cfg.etl if cfg is not None else None,
            partition=partition,
            this={"name": model.name, "layer": model.layer, "relation": model.relation} if model else None,
            sql_str=sql_str,
            sql_ident=sql_ident,
            sequential_columns=output_columns,
            # the sequential kernels' parameters for a symbol, as the UDF's one struct argument
            sequential_params=lambda symbol=None: params_sql(cfg.etl.sequential_params(symbol)),
            vpin_params=lambda symbol=None: vpin_params_sql(VpinParams.from_config(cfg.etl, symbol)),
            # the same as plain values (a python_relation's parameters)
            vpin_param_values=lambda symbol=None: asdict(VpinParams.from_config(cfg.etl, symbol)),
            # a relation Python streams from a query's rows (udfs/relations.py; bound at execution)
            python_relation=relation_sql,
            # a small result computed once per text within a build (udfs/relations.py `memo_sql`)
            memo=memo_sql,
            # a result read several times by one query, made just before it (udfs/relations.py `table_sql`)
            temp_table=table_sql,
        )
        if partition is None:
            ctx.pop("partition")  # StrictUndefined: using it outside a partitioned model is an error
        # Macros are module globals sharing this one context dict, so a macro may call any other
        # macro (of any file) and read `features`, `partition`, ... at call time.
        for tpl in self._macros():
            module = tpl.make_module(vars=ctx, shared=True)
            for name in dir(module):
                if not name.startswith("_"):
                    ctx[name] = getattr(module, name)
        return ctx

    # -- rendering --------------------------------------------------------------------------

    def _render(
        self,
        key: str,
        text: str,
        path: Path,
        model: Model | None,
        resolver: Resolver,
        partition: PartitionCtx | None,
        config_calls: list[tuple[dict[str, Any], str]] | None = None,
    ) -> str:
        try:
            tpl = self._template(key, text, path)
            ctx = self._context(model, path, resolver, partition, config_calls)
            return tpl.render(ctx)
        except DaedalusError:
            raise
        except jinja2.TemplateSyntaxError as e:
            where = f"{e.filename or path}:{e.lineno}"
            raise CompileError(f"{where}: Jinja syntax error: {e.message}") from None
        except jinja2.UndefinedError as e:
            raise CompileError(f"{self._error_line(e, path)}: {e.message}") from None
        except jinja2.TemplateError as e:
            raise CompileError(f"{self._error_line(e, path)}: Jinja error: {e}") from None
        except Exception as e:  # an exception raised by Python code the template called
            raise CompileError(f"{self._error_line(e, path)}: {type(e).__name__}: {e}") from None

    def render_model(self, model: Model, resolver: Resolver, partition: PartitionCtx | None = None) -> str:
        return self._render(f"model:{model.name}", model.raw_sql, model.path, model, resolver, partition)

    def render_test(self, test: SqlTest, resolver: Resolver) -> str:
        return self._render(f"test:{test.path}", test.raw_sql, test.path, None, resolver, None)

    # -- the parse pass ---------------------------------------------------------------------

    def parse_model(self, model: Model) -> None:
        """Render once with placeholders: the config header, the ref/source edges, a sqlglot check."""
        resolver = ParseResolver()
        calls: list[tuple[dict[str, Any], str]] = []
        sql = self._render(
            f"model:{model.name}",
            model.raw_sql,
            model.path,
            model,
            resolver,
            _PlaceholderPartition({"date": PLACEHOLDER_DATE}),
            calls,
        )
        merged: dict[str, Any] = {}
        where = f"{model.path}:1"
        for kwargs, line in calls:
            merged.update(kwargs)
            where = line
        model.config = parse_config(merged, where)
        model.refs = resolver.refs
        model.sources = resolver.sources
        model.uses_previous_partition = resolver.uses_previous
        model.calls_python = calls_python(sql)
        if resolver.uses_previous and not model.config.carry_state:
            raise CompileError(
                f"{model.path}:{_find_line(model.raw_sql, 'previous_partition')}: "
                "previous_partition() needs config(carry_state=true)"
            )
        validate_sql(sql, model.path, model.raw_sql)

    def parse_all(self) -> None:
        for model in self.project.models.values():
            self.parse_model(model)


def _find_line(text: str, needle: str) -> int:
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    return 1


def _parsed_marker(sql: str) -> Path:
    """Where a successful parse of exactly this SQL is remembered across processes."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "daedalus" / "parsed"
    return base / hashlib.sha256(sql.encode()).hexdigest()


@functools.lru_cache(maxsize=4096)
def _sqlglot_ok(sql: str) -> tuple[bool, str, int]:
    # Parsing every model with sqlglot costs ~0.15 s each; a CLI verb such as `ls` would pay it on
    # every start. A parse only depends on the text, so successes are remembered on disk by hash.
    marker = _parsed_marker(sql)
    if marker.exists():
        return True, "", 0
    ok = _sqlglot_parse(sql)
    if ok[0]:
        with contextlib.suppress(OSError):
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
    return ok


def _sqlglot_parse(sql: str) -> tuple[bool, str, int]:
    import sqlglot
    from sqlglot.errors import ParseError

    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except ParseError as e:
        err = e.errors[0] if e.errors else {}
        return False, str(err.get("description") or e).split("\n")[0], int(err.get("line") or 1)
    except Exception as e:  # sqlglot's tokenizer raises its own error types
        return False, str(e).split("\n")[0], 1
    if len(statements) != 1:
        return False, f"a model must be exactly one SQL query (found {len(statements)} statements)", 1
    return True, "", 0


def validate_sql(sql: str, path: Path, raw: str) -> None:
    """One query that sqlglot (or, where sqlglot lags DuckDB's dialect, DuckDB itself) parses."""
    ok, message, line = _sqlglot_ok(sql)
    if ok:
        return
    if "exactly one SQL query" not in message:
        # sqlglot does not know every DuckDB construct; DuckDB's own parser has the last word.
        import duckdb

        try:
            if len(duckdb.extract_statements(sql)) == 1:
                return
        except duckdb.Error as e:
            duck_msg = str(e).split("\n")[0]
            m = re.search(r"LINE (\d+):", str(e))
            if m:
                line = int(m.group(1))
            message = f"{message} ({duck_msg})" if message else duck_msg
    compiled_lines = sql.splitlines()
    src_line = line
    if 0 < line <= len(compiled_lines):
        text = compiled_lines[line - 1].strip()
        if text:
            for i, raw_line in enumerate(raw.splitlines(), 1):
                if raw_line.strip() == text:
                    src_line = i
                    break
    raise CompileError(f"{path}:{src_line}: SQL parse error: {message}")
