"""Data tests: declared in the model YAML, or custom SQL files; run on the partitions just built.

YAML (dbt's shape; `tests:` or `data_tests:`), on a column or on the model:

    models:
      - name: trades
        columns:
          - name: side
            tests: [not_null, {accepted_values: {values: [buy, sell]}}]
          - name: price
            tests: [{accepted_range: {min_value: 0, inclusive: false}}]
        tests:
          - unique: {columns: [exchange, symbol, trade_id]}
          - monotonic: {column: ts, partition_by: [exchange, symbol]}

`accepted_values` fails on NULL too (an unknown input mapped to NULL is not a value; unlike dbt),
unless `allow_null: true`. `accepted_range` fails on NaN and ±inf whatever the bounds.
`monotonic` checks a column never decreases (`strict: true`: always increases) within each series,
in the files' row order, files in path order (`order_by: [...]` to use columns instead). Any test takes
`severity: warn` to report without failing. A custom test is a SQL file under the project's
`tests/sql/` (or `sql/tests/`) returning offending rows, with `ref()` over what was just built.

Each test is one query returning the offending rows; none = pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from daedalus.build.compiler import ParseResolver
from daedalus.build.materializations import kind
from daedalus.build.resolvers import CatalogResolver, Renderer
from daedalus.errors import BuildError, CompileError
from daedalus.sqltext import read_parquet_sql, sql_ident, sql_str

if TYPE_CHECKING:
    from daedalus.build.project import Model
    from daedalus.lake import FileInfo

SAMPLE_ROWS = 5


@dataclass
class DataTest:
    model: str
    name: str  # e.g. "not_null(ts)"
    kind: str
    args: dict[str, Any]
    severity: str = "error"
    where: str = ""  # yml file:line


@dataclass
class TestResult:
    __test__ = False  # not a pytest class

    model: str
    name: str
    passed: bool
    failures: int = 0
    sample: list[dict[str, Any]] = field(default_factory=list)
    severity: str = "error"
    where: str = ""
    sql: str = ""
    failed_dirs: list[str] = field(default_factory=list)  # lake folders of the partitions that failed


def _cols(v: Any) -> list[str]:
    return [v] if isinstance(v, str) else list(v)


def _not_null_cond(a: dict[str, Any]) -> str:
    return " OR ".join(f"{sql_ident(c)} IS NULL" for c in _cols(a["column"]))


def _not_null(rel: str, a: dict[str, Any]) -> str:
    return f"SELECT * FROM {rel} WHERE {_not_null_cond(a)}"


def _unique(rel: str, a: dict[str, Any]) -> str:
    cols = ", ".join(sql_ident(c) for c in _cols(a.get("columns") or a["column"]))
    dupes = f"SELECT {cols}, count(*) AS n_rows FROM {rel}"
    if rel.startswith("read_parquet("):
        # Files, read twice: first a hash table of one 8-byte hash per key, then the keys only of the
        # rows whose hash repeats (every repeated key's rows among them, collisions too). A hash table
        # of the keys themselves was the largest memory of some builds: gold.orderbook_hf's (exchange,
        # symbol, ts, seq) over a 24 h symbol-day, +84 against +56 MB in a bare DuckDB at one thread.
        dupes += f" WHERE hash({cols}) IN (SELECT hash({cols}) FROM {rel} GROUP BY ALL HAVING count(*) > 1)"
    return f"{dupes} GROUP BY ALL HAVING count(*) > 1"


def _accepted_values(rel: str, a: dict[str, Any]) -> str:
    vals = ", ".join(sql_str(v) for v in a["values"])
    c = sql_ident(a["column"])
    # NULL is not one of the values: an unknown input mapped to NULL must fail here, not pass as
    # "no value" (issue 17). A column where NULL means "not yet defined" says `allow_null: true`.
    null_ok = f"{c} IS NOT NULL AND " if a.get("allow_null") else ""
    return (
        f"SELECT {c}, count(*) AS n_rows FROM {rel} WHERE {null_ok}"
        f"(CAST({c} AS VARCHAR) NOT IN ({vals}) OR {c} IS NULL) GROUP BY ALL"
    )


def _accepted_range_cond(a: dict[str, Any]) -> str:
    c = sql_ident(a["column"])
    inclusive = a.get("inclusive", True)
    conds = []
    if a.get("min_value") is not None:
        conds.append(f"{c} {'<' if inclusive else '<='} {a['min_value']}")
    if a.get("max_value") is not None:
        conds.append(f"{c} {'>' if inclusive else '>='} {a['max_value']}")
    if not conds:
        raise CompileError("accepted_range needs min_value and/or max_value")
    # DuckDB sorts NaN above every number, so `c < min` lets NaN and +inf pass: a range is finite.
    conds.append(f"NOT isfinite({c})")
    return " OR ".join(conds)


def _accepted_range(rel: str, a: dict[str, Any]) -> str:
    return f"SELECT * FROM {rel} WHERE {_accepted_range_cond(a)}"


ONE_SERIES = "__one_series"
"""A `monotonic` argument the runner sets (never the YAML): partition_by has one value in the relation."""


def _monotonic(rel: str, a: dict[str, Any]) -> str:
    c = sql_ident(a["column"])
    part = ", ".join(sql_ident(x) for x in _cols(a.get("partition_by") or []))
    # Files in path order (DuckDB's file_index over the sorted list, see _relation), rows in file
    # order. An integer, not the filename: a window carrying a path per row is heavy.
    order = ", ".join(sql_ident(x) for x in _cols(a.get("order_by") or [])) or "file_index, file_row_number"
    op = "<=" if a.get("strict") else "<"
    # ONE_SERIES: the caller found a single value of partition_by in `rel`, where the partition is the
    # whole relation. DuckDB's PARTITION BY (a hash partitioning of every row) then only costs memory:
    # gold.orderbook_hf's 24 h symbol-day, +132 against +66 MB in a bare DuckDB at one thread.
    over = f"PARTITION BY {part} ORDER BY {order}" if part and not a.get(ONE_SERIES) else f"ORDER BY {order}"
    # Only the columns the test reads go through the window: a window materialises every column it
    # carries, and `*` of a wide model (orderbook_hf: ~80) cost more memory than its build.
    keep = list(
        dict.fromkeys([*_cols(a.get("partition_by") or []), *_cols(a.get("order_by") or []), a["column"]])
    )
    cols = ", ".join(sql_ident(x) for x in keep)
    if not a.get("order_by"):
        cols += ", file_index, file_row_number"
    return (
        f"SELECT * EXCLUDE (__prev) FROM (SELECT {cols}, lag({c}) OVER ({over}) AS __prev FROM {rel}) "
        f"WHERE {c} {op} __prev"
    )


KINDS: dict[str, Callable[[str, dict[str, Any]], str]] = {
    "not_null": _not_null,
    "unique": _unique,
    "accepted_values": _accepted_values,
    "accepted_range": _accepted_range,
    "monotonic": _monotonic,
}
NEEDS_ROW_ORDER = {"monotonic"}
ROW_CONDITIONS: dict[str, Callable[[dict[str, Any]], str]] = {
    "not_null": _not_null_cond,
    "accepted_range": _accepted_range_cond,
}
"""Tests whose failures are the rows matching one condition: a model's run in one scan together."""


def _line(model: Model, needle: str) -> str:
    path = model.docs.yml_path
    if path is None:
        return str(model.path)
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return f"{path}:{i}"
    return f"{path}:1"


def _parse(model: Model, spec: Any, column: str | None) -> DataTest:
    if isinstance(spec, str):
        kind, args = spec, {}
    elif isinstance(spec, dict) and len(spec) == 1:
        kind, args = next(iter(spec.items()))
        args = dict(args or {}) if not isinstance(args, list) else {"values": args}
    else:
        raise CompileError(
            f"{_line(model, 'tests')}: a data test is a name or {{name: {{args}}}}, got {spec!r}"
        )
    if kind not in KINDS:
        raise CompileError(
            f"{_line(model, kind)}: unknown data test '{kind}' on model '{model.name}' "
            f"(allowed: {', '.join(KINDS)})"
        )
    args.pop("config", None)
    severity = str(args.pop("severity", "error"))
    if "column_name" in args:
        args["column"] = args.pop("column_name")
    if column is not None:
        args.setdefault("column", column)
    if kind == "unique" and "columns" not in args and "column" not in args:
        raise CompileError(f"{_line(model, 'unique')}: unique on model '{model.name}' needs columns: [...]")
    if kind != "unique" and "column" not in args:
        raise CompileError(f"{_line(model, kind)}: {kind} on model '{model.name}' needs a column")
    if kind == "accepted_values" and not args.get("values"):
        raise CompileError(f"{_line(model, kind)}: accepted_values on '{model.name}' needs values: [...]")
    target = args.get("columns") or args.get("column")
    name = f"{kind}({', '.join(_cols(target))})"
    return DataTest(model.name, name, kind, args, severity, _line(model, kind))


def model_tests(model: Model) -> list[DataTest]:
    out = [_parse(model, t, None) for t in model.docs.tests]
    for col in model.docs.columns.values():
        out.extend(_parse(model, t, col.name) for t in col.tests)
    return out


def _relation(r: Renderer, model: Model, files: list[FileInfo] | None, row_order: bool) -> str | None:
    if files is None:  # a view: its SQL over everything
        sql = r.compile_model_sql(model, None)
        return f"(\n{sql}\n)"
    if not files:
        return None
    if not row_order:
        return read_parquet_sql([r.lake.url(f.path) for f in files], hive=False)
    # Files in path order — partitions by date, a partition's slices by name — however the build
    # (or a Dask executor) happened to finish them; file_index then numbers them in that order.
    urls = sorted(r.lake.url(f.path) for f in files)
    return read_parquet_sql(urls, hive=False)[:-1] + ", file_row_number=true)"


def _run(r: Renderer, model_name: str, name: str, sql: str, severity: str, where: str) -> TestResult:
    import duckdb

    try:
        cur = r.con(sql).execute(f"SELECT count(*) FROM ({sql})")
        n = int(cur.fetchone()[0])
        sample: list[dict[str, Any]] = []
        if n:
            # Values as DuckDB prints them: fetching TIMESTAMPTZ into Python would need pytz. Sorted,
            # so the same failure names the same first rows on every run (a parallel scan does not).
            cur = r.con(sql).execute(
                f"SELECT CAST(COLUMNS(*) AS VARCHAR) FROM ({sql}) ORDER BY ALL LIMIT {SAMPLE_ROWS}"
            )
            names = [d[0] for d in cur.description]
            sample = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    except duckdb.Error as e:
        from daedalus.duck import storage_error

        storage = storage_error(None, str(e), f"{where}: data test {name} on '{model_name}'")
        if storage is not None:
            raise storage from None
        raise BuildError(
            f"{where}: data test {name} on '{model_name}' cannot run: {str(e).splitlines()[0]}"
        ) from None
    return TestResult(model_name, name, n == 0, n, sample, severity, where, sql)


def run_model_tests(r: Renderer, model: Model, files: list[FileInfo] | None) -> list[TestResult]:
    """Run a model's YAML tests over `files` (the partitions just built; None = a view's SQL).

    Partition by partition: a test's memory (a `unique` hash table, a `monotonic` window) then
    follows one partition, not the whole build (a 4-day Pi build spilled and grew by 30 % when they
    ran over all files at once). So `unique` and `monotonic` hold within each partition: the
    scope of silver's dedup too, and a key with `ts` in it (order books) can only repeat inside one.
    """
    tests = model_tests(model)
    if kind(model).writes_files and not files:
        return []
    if files is None or not model.config.partition_by:
        return _run_tests(r, model, tests, files)
    groups: dict[str, list[FileInfo]] = {}
    for f in files:
        groups.setdefault(f.path.rsplit("/", 1)[0], []).append(f)
    dirs = sorted(groups)
    runs = [_run_tests(r, model, tests, groups[d]) for d in dirs]
    merged = []
    for same in zip(*runs, strict=True):
        m = _merge(list(same))
        m.failed_dirs = [d for d, r in zip(dirs, same, strict=True) if not r.passed]
        merged.append(m)
    return merged


def _merge(results: list[TestResult]) -> TestResult:
    """One test's results over several partitions as one: failures summed, samples of the first."""
    failed = [r for r in results if not r.passed]
    first = failed[0] if failed else results[0]
    sample = [row for r in failed for row in r.sample][:SAMPLE_ROWS]
    return TestResult(
        first.model,
        first.name,
        not failed,
        sum(r.failures for r in results),
        sample,
        first.severity,
        first.where,
        first.sql,
    )


def _run_tests(
    r: Renderer, model: Model, tests: list[DataTest], files: list[FileInfo] | None
) -> list[TestResult]:
    results = []
    by_row = [t for t in tests if t.kind in ROW_CONDITIONS]
    counts = _row_condition_counts(r, model, files, by_row)
    for t in tests:
        rel = _relation(r, model, files, t.kind in NEEDS_ROW_ORDER and kind(model).writes_files)
        assert rel is not None  # files is None (a view) or non-empty
        if t in by_row and counts is not None and not counts[by_row.index(t)]:
            results.append(
                TestResult(model.name, t.name, True, 0, [], t.severity, t.where, KINDS[t.kind](rel, t.args))
            )
            continue  # passed in the shared scan; a failing one runs alone below for its sample
        args = dict(t.args)
        if t.kind in NEEDS_ROW_ORDER and not kind(model).writes_files and not args.get("order_by"):
            args["order_by"] = args["column"]  # a view has no file order
        if t.kind == "monotonic" and args.get("partition_by") and files:
            args[ONE_SERIES] = _one_series(r, rel, _cols(args["partition_by"]))
        results.append(_run(r, model.name, t.name, KINDS[t.kind](rel, args), t.severity, t.where))
    return results


def _one_series(r: Renderer, rel: str, columns: list[str]) -> bool:
    """Whether `columns` take one value (NULLs alike) over `rel`: a partition's files of one series.
    False when the query cannot run (the test then runs partitioned and reports its own error)."""
    import duckdb

    keys = ", ".join(sql_ident(c) for c in columns)
    query = f"SELECT count(*) FROM (SELECT DISTINCT {keys} FROM {rel})"
    try:
        row = r.con(query).execute(query).fetchone()
    except duckdb.Error:
        return False
    return bool(row) and int(row[0]) <= 1


def _row_condition_counts(
    r: Renderer, model: Model, files: list[FileInfo] | None, tests: list[DataTest]
) -> list[int] | None:
    """Failures of each row-condition test from one scan (count(*) FILTER per test), instead of a
    scan per test; None when there is nothing to scan or the shared query cannot run (each test
    then runs alone and reports its own error)."""
    import duckdb

    rel = _relation(r, model, files, False) if tests else None
    if rel is None:
        return None
    try:
        filters = ", ".join(f"count(*) FILTER (WHERE {ROW_CONDITIONS[t.kind](t.args)})" for t in tests)
        query = f"SELECT {filters} FROM {rel}"
        row = r.con(query).execute(query).fetchone()
    except (duckdb.Error, CompileError):
        return None
    return [int(n) for n in row]


class _TestResolver:
    """ref() of a model built in this build reads only the files just written; others read all."""

    def __init__(self, r: Renderer, built: dict[str, list[FileInfo]] | None) -> None:
        self.r, self.built = r, built or {}
        self.refs: list[str] = []

    def ref(self, model: Model | None, name: str) -> str:
        self.refs.append(name)
        files = self.built.get(name)
        if files:
            return read_parquet_sql([self.r.lake.url(f.path) for f in files], hive=False)
        return CatalogResolver(self.r).ref(model, name)

    def source(self, source_name: str, name: str) -> str:
        return self.r.relation_sql(f"source:{name}")

    def previous_partition(self, model: Model | None, columns: dict[str, str] | None) -> str:
        raise CompileError("previous_partition() is not available in a data test")


def run_sql_tests(
    r: Renderer, built: set[str] | dict[str, list[FileInfo]], all_files: bool = False
) -> list[TestResult]:
    """Custom SQL tests whose ref()s are all models of `built` (every test when `all_files`). With a
    dict of the files each model just wrote, ref() reads those partitions only; with names, every
    file."""
    just_built = built if isinstance(built, dict) and not all_files else None
    names = set(built)
    results = []
    for test in r.project.sql_tests:
        if not all_files:
            # a test over several models (book accounting: orderbook + orderbook_unserved) compares
            # them only when all of them were just built: one stale side would fail it for nothing.
            # Its refs are found with placeholders first: a real rendering describes a model not
            # built yet, which for the book models means registering the UDFs (numba, Session.con_for).
            edges = ParseResolver()
            r.compiler.render_test(test, edges)
            if not (edges.refs and set(edges.refs) <= names):
                continue
        resolver = _TestResolver(r, just_built)
        sql = r.compiler.render_test(test, resolver).strip().rstrip(";")
        results.append(
            _run(r, ",".join(dict.fromkeys(resolver.refs)) or "-", test.name, sql, "error", f"{test.path}:1")
        )
    return results


def _fmt_row(row: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}={v!s}" for k, v in row.items()) + "}"


def raise_on_failure(results: list[TestResult]) -> None:
    for r in results:
        if not r.passed and r.severity != "warn":
            sample = "; ".join(_fmt_row(x) for x in r.sample[:3])
            raise BuildError(
                f"{r.where}: data test {r.name} failed on model '{r.model}': "
                f"{r.failures} offending row(s), e.g. {sample}"
            )
