"""One declaration per sequential column (udfs/columns.py) drives the kernel result, the model's SQL
and its docs: each must agree with it, and a column missing from any of them fails here."""

from __future__ import annotations

import numpy as np
import pytest

from daedalus.build.project import load_project
from daedalus.errors import CompileError
from daedalus.udfs.columns import SEQUENTIAL, output_columns
from daedalus.udfs.register import SEQ_FIELDS, SEQ_RETURN_SQL
from daedalus.udfs.series import US, SeqParams, Series, series_sequential


def _series(n: int) -> Series:
    ts = np.arange(n, dtype=np.int64) * US
    mid = 100.0 + np.arange(n) * 0.01
    return Series(
        ts=ts,
        crossed=np.zeros(n, bool),
        break_before=np.zeros(n, bool),
        mid=mid,
        spread=np.full(n, 0.01),
        ofi_raw=np.ones(n),
        mlofi_raw=np.ones(n),
    )


def test_kernel_returns_every_declared_column_in_its_shape() -> None:
    p = SeqParams(horizons=(5, 15))
    out = series_sequential(_series(30), None, p, None)
    for c in SEQUENTIAL:
        assert c.name in out, c.name
        assert out[c.name].shape == ((2, 30) if c.per_horizon else (30,)), c.name


def test_output_columns_expand_horizons_in_the_models_historic_order() -> None:
    names = [c.name for c in output_columns((5, 60))]
    assert names == [
        "log_return",
        "mid_velocity",
        "ofi",
        "mlofi",
        "ofi_sum_5s",
        "mlofi_sum_5s",
        "rv_5s",
        "tfi_5s",
        "trade_volume_5s",
        "ofi_sum_60s",
        "mlofi_sum_60s",
        "rv_60s",
        "tfi_60s",
        "trade_volume_60s",
        "kyle_lambda",
        "kyle_lambda_r2",
        "vpin",
        "spread_pctile",
        "spread_regime",
    ]
    tfi60 = next(c for c in output_columns((5, 60)) if c.name == "tfi_60s")
    assert tfi60.expr == "tfi[2]" and "(t − 60 s, t]" in tfi60.doc


def test_udf_result_type_follows_the_declaration() -> None:
    assert [f.name for f in SEQ_FIELDS] == ["ts", "seq", "seg_start"] + [c.name for c in SEQUENTIAL]
    assert "spread_regime VARCHAR[]" in SEQ_RETURN_SQL and "tfi DOUBLE[][]" in SEQ_RETURN_SQL


def test_model_sql_and_docs_list_exactly_the_declared_columns() -> None:
    project = load_project()
    model = project.models["orderbook_seq"]
    documented = list(model.docs.columns)
    assert documented == ["exchange", "symbol", "date", "ts", "seq"] + [c.name for c in output_columns()]
    r2 = model.docs.columns["kyle_lambda_r2"]
    assert r2.tests == [{"accepted_range": {"min_value": 0, "max_value": 1}}]
    assert "{h}" not in model.docs.columns["rv_900s"].description


def test_unknown_generated_columns_is_one_line_naming_the_file(tmp_path) -> None:
    sql = tmp_path / "sql" / "gold"
    sql.mkdir(parents=True)
    (sql / "m.sql").write_text("SELECT 1 AS x")
    (sql / "m.yml").write_text("models:\n  - name: m\n    generated_columns: sequentail\n")
    with pytest.raises(CompileError, match=r"m\.yml:3: unknown generated_columns 'sequentail'"):
        load_project(project_dir=tmp_path, include_builtin=False)
