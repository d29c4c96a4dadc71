"""One declaration per sequential column (udfs/columns.py) drives the kernel result, the model's SQL
and its docs: each must agree with it, and a column missing from any of them fails here."""

from __future__ import annotations

import numpy as np
import pytest

from daedalus.build.project import load_project
from daedalus.errors import CompileError
from daedalus.udfs.columns import SEQUENTIAL, output_columns
from daedalus.udfs.register import SEQ_FIELDS, SEQ_RETURN_SQL
from daedalus.udfs.series import US, SeqParams, Series, Trades, series_sequential


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


def test_orderbook_hf_documents_the_sequential_columns_from_the_declaration() -> None:
    hf = load_project().models["orderbook_hf"].docs.columns
    for c in output_columns():
        assert hf[c.name].description == c.doc, c.name
        assert hf[c.name].tests == list(c.column.tests), c.name
    assert "after a break" in hf["ofi_sum_5s"].description
    assert "after a break" not in hf["tfi_5s"].description  # trade windows restart at trade breaks only


def test_null_at_break_is_what_the_kernel_nulls_at_a_segment_start() -> None:
    sr = _series(30)
    sr.break_before[10] = True
    trades = Trades(np.arange(30, dtype=np.int64) * US - US // 2, np.ones(30), np.zeros(30))
    out = series_sequential(sr, trades, SeqParams(horizons=(5, 15)), (np.array([0]), np.array([0.5])))
    for c in SEQUENTIAL:
        if c.sql_type != "DOUBLE":
            continue
        at_break = out[c.name][..., 10]
        after = out[c.name][..., 12]
        assert np.isnan(at_break).all() == c.null_at_break, c.name
        if c.null_at_break and c.name not in ("kyle_lambda", "kyle_lambda_r2", "spread_pctile"):
            assert not np.isnan(after).any(), c.name  # NULL at the start only, not after it
    assert out["spread_regime"][10] == -1 and out["spread_regime"][12] >= 0


def test_one_params_struct_carries_every_declared_parameter_into_the_kernel() -> None:
    import duckdb

    from daedalus.config import SequentialParams
    from daedalus.udfs.columns import PARAMS_SQL, params_sql

    p = SequentialParams(
        horizons=[2, 7],
        max_state_staleness_seconds=12.5,
        ofi_levels=3,
        ofi_decay_alpha=0.25,
        use_dynamic_spread_regime=False,
        spread_regime_window=9,
        spread_tight_percentile=0.1,
        spread_wide_percentile=0.9,
        tight_spread_threshold=1e-05,
        kyle_lambda_window=40,
    )
    assert p != SequentialParams()
    assert set(p.model_fields_set) == set(SequentialParams.model_fields)  # the test sets every one
    back = duckdb.sql(f"SELECT {params_sql(p)}").fetchone()[0]
    assert SeqParams(**back) == p
    assert PARAMS_SQL.count(",") == len(SequentialParams.model_fields) - 1


def test_a_symbols_override_reaches_its_params_struct() -> None:
    from daedalus.config import EtlConfig

    etl = EtlConfig(symbols={"ETH/USDT": {"tight_spread_threshold": 0.002}})
    assert etl.sequential_params("ETH/USDT").tight_spread_threshold == 0.002
    assert etl.sequential_params("BTC/USDT").tight_spread_threshold == etl.features.tight_spread_threshold
    assert etl.sequential_params().horizons == etl.features.horizons


def test_vpin_params_come_from_the_vpin_keys_as_one_struct() -> None:
    import duckdb

    from daedalus.config import EtlConfig
    from daedalus.udfs.columns import VpinParams, vpin_params_sql

    etl = EtlConfig(
        features={"vpin_window_buckets": 7, "vpin_classification": "bvc", "vpin_bvc_sigma_bars": 9},
        symbols={"ETH/USDT": {"vpin_bucket_volume": 25}},
    )
    assert VpinParams.from_config(etl) == VpinParams(None, 7, True, 9)  # auto: NULL in SQL
    eth = VpinParams.from_config(etl, "ETH/USDT")
    assert eth == VpinParams(25.0, 7, True, 9)
    for p in (VpinParams.from_config(etl), eth):
        assert VpinParams(**duckdb.sql(f"SELECT {vpin_params_sql(p)}").fetchone()[0]) == p
