"""The sequential columns of gold.orderbook_seq, each declared once (docs/features.md "Sequential"),
and the SQL form of its parameters (declared once in daedalus/config.py `SequentialParams`).

From the column list come: the Arrow result of `daedalus_orderbook_seq` (register.py) and of the stream
gold.orderbook_seq reads (udfs/seq_stream.py), the SELECT lists of sql/gold/orderbook_seq.sql (the
compiler exposes `sequential_columns()`), the NULL
after a break (`null_at_break`, applied in `series.series_sequential`), and the column docs and data
tests of orderbook_seq and orderbook_hf (their yml says `generated_columns: sequential`).
Adding a column is one entry here plus the kernel output of that name in `series.series_sequential`.

`per_horizon` columns are 2-D in the kernel (one row per features.horizons entry) and become one
SQL column per horizon, `<name>_<h>s`, grouped by horizon in declaration order (ofi_sum_5s,
mlofi_sum_5s, …, then ofi_sum_15s, …), which is the model's column order since it was written.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from daedalus.config import EtlConfig, SequentialParams

DEFAULT_HORIZONS = (5, 15, 60, 300, 900)  # features.horizons default, for the generated docs


@dataclass(frozen=True)
class SeqColumn:
    name: str
    kernel: str  # the module of udfs/kernels that computes it
    doc: str  # per-horizon docs use {h} for the horizon in seconds
    sql_type: str = "DOUBLE"
    per_horizon: bool = False
    tests: tuple[Any, ...] = ()
    null_at_break: bool = False
    """The first value after a break of the book series is NULL (docs/features.md "Time"; a crossed
    row is a break before and after it): the book-derived columns. Trade windows and VPIN do not
    restart there."""


_UNIT_RANGE = ({"accepted_range": {"min_value": 0, "max_value": 1}},)

SEQUENTIAL: tuple[SeqColumn, ...] = (
    SeqColumn(
        "log_return",
        "returns",
        "ln(mid_n / mid_{n−1}), dimensionless; NULL at a segment start or without a mid",
        null_at_break=True,
    ),
    SeqColumn(
        "mid_velocity",
        "returns",
        "(mid_n − mid_{n−1}) / (ts_n − ts_{n−1}), quote currency per second; NULL if Δt = 0",
        null_at_break=True,
    ),
    SeqColumn(
        "ofi",
        "ofi",
        "Cont–Kukanov–Stoikov order-flow imbalance at level 1, base units (size)",
        null_at_break=True,
    ),
    SeqColumn(
        "mlofi",
        "ofi",
        "Σ_{m≤ofi_levels} exp(−ofi_decay_alpha·(m−1))·e^m, base units; an absent level adds 0",
        null_at_break=True,
    ),
    SeqColumn(
        "ofi_sum",
        "windows",
        "Σ ofi over (t − {h} s, t], base units; NULL when no ofi in the window",
        per_horizon=True,
        null_at_break=True,
    ),
    SeqColumn(
        "mlofi_sum",
        "windows",
        "Σ mlofi over (t − {h} s, t], base units",
        per_horizon=True,
        null_at_break=True,
    ),
    SeqColumn(
        "rv",
        "windows",
        "sqrt(Σ log_return²) over (t − {h} s, t], dimensionless, not annualised",
        per_horizon=True,
        null_at_break=True,
    ),
    SeqColumn(
        "tfi",
        "windows",
        "(B − S)/(B + S) of aggressor trade sizes in (t − {h} s, t], in [−1, 1]; NULL when B + S = 0. "
        "Trade windows restart at breaks of the trades series only (trades received after the same "
        "trades-series break events as the snapshot), not at book breaks",
        per_horizon=True,
    ),
    SeqColumn(
        "trade_volume",
        "windows",
        "B + S of trades in (t − {h} s, t] (same trades as tfi_{h}s), base units; 0 without trades",
        per_horizon=True,
    ),
    SeqColumn(
        "kyle_lambda",
        "kyle",
        "OLS slope of log_return on signed trade size q_n (trades in (ts_{n−1}, ts_n]) over the snapshots "
        "of the last kyle_lambda_window s of the book segment, return per base unit; an observation "
        "needs the trades series unbroken since the previous snapshot too; NULL below 10 observations "
        "or when Var(q) = 0",
        null_at_break=True,
    ),
    SeqColumn(
        "kyle_lambda_r2",
        "kyle",
        "Corr(log_return, q)² of the same regression, in [0, 1]",
        tests=_UNIT_RANGE,
        null_at_break=True,
    ),
    SeqColumn(
        "vpin",
        "vpin",
        "Σ|V_S − V_B| / Σ V over the last vpin_window_buckets buckets completed by trades with ts ≤ t "
        "(gold.vpin_buckets), whatever day they fell on, in [0, 1]; NULL until that many buckets exist; "
        "breaks do not restart it",
        tests=_UNIT_RANGE,
    ),
    SeqColumn(
        "spread_pctile",
        "spread",
        (
            "share of spread_bps values in (t − spread_regime_window, t) "
            "strictly below the current one, in [0, 1]"
        ),
        tests=_UNIT_RANGE,
        null_at_break=True,
    ),
    SeqColumn(
        "spread_regime",
        "spread",
        "tight (pctile ≤ spread_tight_percentile) | normal | wide (≥ spread_wide_percentile); "
        "static mode tight | normal; NULL where spread_pctile is (dynamic mode), which it is derived from",
        sql_type="VARCHAR",
        tests=({"accepted_values": {"values": ["tight", "normal", "wide"], "allow_null": True}},),
    ),
)

ONE_D = tuple(c for c in SEQUENTIAL if not c.per_horizon)
TWO_D = tuple(c for c in SEQUENTIAL if c.per_horizon)


@dataclass(frozen=True)
class OutputColumn:
    """One SQL column of the model: its name, the field of the UDF result it unnests, its doc."""

    name: str
    expr: str  # relative to the result struct, e.g. `tfi[2]`
    column: SeqColumn
    horizon: int | None = None

    @property
    def doc(self) -> str:
        doc = self.column.doc.format(h=self.horizon) if self.horizon is not None else self.column.doc
        return doc + (
            "; NULL on the first row after a break of the book, and on a crossed row and the row after it"
            if self.column.null_at_break
            else ""
        )


def output_columns(horizons: tuple[int, ...] | list[int] = DEFAULT_HORIZONS) -> list[OutputColumn]:
    """The model's sequential columns in order; a run of per-horizon entries is expanded horizon-major."""
    out: list[OutputColumn] = []
    i = 0
    while i < len(SEQUENTIAL):
        if not SEQUENTIAL[i].per_horizon:
            out.append(OutputColumn(SEQUENTIAL[i].name, SEQUENTIAL[i].name, SEQUENTIAL[i]))
            i += 1
            continue
        j = i
        while j < len(SEQUENTIAL) and SEQUENTIAL[j].per_horizon:
            j += 1
        for k, h in enumerate(horizons, 1):
            out += [OutputColumn(f"{c.name}_{h}s", f"{c.name}[{k}]", c, h) for c in SEQUENTIAL[i:j]]
        i = j
    return out


def column_docs(horizons: tuple[int, ...] | list[int] = DEFAULT_HORIZONS) -> list[dict[str, Any]]:
    """yml-shaped column entries (name, description, tests) for the model docs and data tests."""
    return [
        {"name": c.name, "description": c.doc, "tests": list(c.column.tests)}
        for c in output_columns(horizons)
    ]


# ------------------------------------------------------------------------------------- parameters

_PARAM_SQL_TYPES = {int: "INTEGER", float: "DOUBLE", bool: "BOOLEAN", list[int]: "INTEGER[]"}


def _sql_type(annotation: Any) -> str:
    return _PARAM_SQL_TYPES[annotation]


# The one struct argument of `daedalus_orderbook_seq`: a field per SequentialParams field.
PARAMS_SQL = (
    "STRUCT("
    + ", ".join(f"{k} {_sql_type(f.annotation)}" for k, f in SequentialParams.model_fields.items())
    + ")"
)


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return str(value)


def params_sql(p: SequentialParams) -> str:
    """`p` as a SQL struct literal of type PARAMS_SQL (what a model passes to the sequential UDF)."""
    fields = ", ".join(f"'{k}': {_literal(getattr(p, k))}" for k in SequentialParams.model_fields)
    return f"{{{fields}}}::{PARAMS_SQL}"


@dataclass(frozen=True)
class VpinParams:
    """The VPIN kernel's parameters (gold.vpin_buckets), from the etl.features vpin_* keys."""

    bucket_volume: float | None = None
    """Base units per bucket; None = auto."""
    window_buckets: int = 50
    bvc: bool = False
    sigma_bars: int = 50

    @classmethod
    def from_config(cls, etl: EtlConfig, symbol: str | None = None) -> VpinParams:
        volume = etl.feature("vpin_bucket_volume", symbol)
        f = etl.features
        return cls(
            None if volume == "auto" else float(volume),
            f.vpin_window_buckets,
            f.vpin_classification == "bvc",
            f.vpin_bvc_sigma_bars,
        )


_VPIN_SQL_TYPES = {"float | None": "DOUBLE", "int": "INTEGER", "bool": "BOOLEAN"}
# The one struct argument `params` of `daedalus_vpin_buckets` (bucket_volume NULL = auto).
VPIN_PARAMS_SQL = (
    "STRUCT(" + ", ".join(f"{f.name} {_VPIN_SQL_TYPES[str(f.type)]}" for f in fields(VpinParams)) + ")"
)


def vpin_params_sql(p: VpinParams) -> str:
    """`p` as a SQL struct literal of type VPIN_PARAMS_SQL."""
    values = ", ".join(f"'{f.name}': {_literal(getattr(p, f.name))}" for f in fields(VpinParams))
    return f"{{{values}}}::{VPIN_PARAMS_SQL}"
