"""A lake other engines can read: every gold (and silver) model read with `pyarrow.dataset` and hive
partitioning has standard types only (timestamps UTC with a declared unit, signed ints, doubles,
strings, dates, lists/structs of those) and the same rows as DuckDB reads through the catalog."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from daedalus.build import api
from daedalus.config import load_config
from daedalus.devkit.synth import generate
from daedalus.serve.catalog import open_catalog

pytestmark = pytest.mark.slow
KEY_TYPES = {"exchange": pa.string(), "symbol": pa.string(), "date": pa.date32()}


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("engines")
    generate(
        root,
        symbols=["BTC/USDT", "ETH/USDT"],
        start="2024-03-01",
        days=2,
        snapshot_ms=20000,
        levels=5,
        trades_per_sec=0.1,
        gaps_per_day=1,
        hours=2,
        seed=5,
    )
    cfg = load_config(
        None,
        {
            "storage.root": str(root),
            "duckdb.temp_directory": str(root / "_tmp"),
            "duckdb.threads": 2,
            "etl.features.horizons": [5, 60],
        },
    )
    api.build(cfg, run_tests=False)
    return root, cfg


def standard(t: pa.DataType) -> bool:
    """Types Spark, Trino and Athena read without a DuckDB-specific mapping."""
    if pa.types.is_timestamp(t):
        return t.tz in ("UTC", "+00:00") and t.unit in ("ms", "us", "ns")
    if pa.types.is_list(t):
        return standard(t.value_type)
    if pa.types.is_struct(t):
        return all(standard(t.field(i).type) for i in range(t.num_fields))
    return (
        pa.types.is_string(t)
        or pa.types.is_boolean(t)
        or pa.types.is_float64(t)
        or pa.types.is_float32(t)
        or t in (pa.int32(), pa.int64(), pa.int16(), pa.int8())
        or pa.types.is_date32(t)
    )


def test_standard_type_rule() -> None:
    assert standard(pa.timestamp("us", tz="UTC"))
    assert not standard(pa.timestamp("us"))  # naive: which zone?
    assert not standard(pa.uint64())  # Spark has no unsigned 64-bit
    assert not standard(pa.decimal128(38, 0))  # how DuckDB's HUGEINT would come out
    assert standard(pa.list_(pa.struct([("price", pa.float64()), ("size", pa.float64())])))


def _models(cfg, layer: str) -> list:
    s = api.Session(cfg, udfs=False)  # parses every model's config() header
    project = s.project
    s.close()
    return sorted(
        (m for m in project.models.values() if m.layer == layer and m.materialized == "partitioned"),
        key=lambda m: m.name,
    )


@pytest.mark.parametrize("layer", ["gold", "silver"])
def test_every_model_reads_with_pyarrow_dataset(lake, layer: str) -> None:
    root, cfg = lake
    models = _models(cfg, layer)
    if layer == "gold":
        assert {m.name for m in models} >= {
            "orderbook_hf",
            "trade_bars",
            "orderbook_bars",
            "ticker_hf",
            "orderbook_seq",
            "vpin_buckets",
        }
    con = open_catalog(cfg)
    for m in models:
        keys = list(m.config.partition_by)
        part = ds.partitioning(pa.schema([(k, KEY_TYPES[k]) for k in keys]), flavor="hive")
        dset = ds.dataset(str(root / layer / m.name), format="parquet", partitioning=part)
        bad = [f"{f.name}: {f.type}" for f in dset.schema if not standard(f.type)]
        assert bad == [], f"{layer}.{m.name}: non-standard types {bad}"
        for f in pq.ParquetFile(next(iter(dset.files))).schema_arrow:
            if pa.types.is_timestamp(f.type):  # stored as UTC instants, not wall-clock times
                assert f.type.tz == "UTC", f"{m.name}.{f.name}"
        table = dset.to_table()
        n_duck = con.execute(f'SELECT count(*) FROM "{layer}"."{m.name}"').fetchone()[0]
        assert table.num_rows == n_duck, m.name
        assert n_duck > 0 or m.name in ("rejects", "orderbook_unserved"), m.name  # clean: nothing refused
        # rows per partition agree (the path escapes the symbol BTC%2FUSDT, Arrow's hive reader decodes it)
        group = list(keys)
        counts = table.group_by(group).aggregate([([], "count_all")]).to_pylist()
        by_arrow = {tuple(str(r[k]) for k in group): r["count_all"] for r in counts}
        sel = ", ".join(f"CAST({k} AS VARCHAR)" for k in group)
        by_duck = {
            tuple(r[:-1]): r[-1]
            for r in con.execute(f'SELECT {sel}, count(*) FROM "{layer}"."{m.name}" GROUP BY ALL').fetchall()
        }
        assert by_arrow == by_duck, m.name
        # and the values: the sum of every double column
        for f in table.schema:
            if pa.types.is_float64(f.type):
                a = pc.sum(pc.if_else(pc.is_finite(table[f.name]), table[f.name], 0.0)).as_py() or 0.0
                d = con.execute(
                    f'SELECT coalesce(sum(CASE WHEN isfinite("{f.name}") THEN "{f.name}" END), 0) '
                    f'FROM "{layer}"."{m.name}"'
                ).fetchone()[0]
                assert a == pytest.approx(d, rel=1e-9, abs=1e-9), f"{m.name}.{f.name}"
    con.close()
