"""Pure pieces of the materializations: partition ids, paths, filters, the COPY template, the registry."""

from __future__ import annotations

from daedalus.build.materializations import MATERIALIZATIONS, copy_sql
from daedalus.build.materializations.base import partition_filter, partition_id, path_value
from daedalus.paths import hive_keys, unescape


def test_registry_has_the_three_kinds():
    assert sorted(MATERIALIZATIONS) == ["partitioned", "table", "view"]
    assert not MATERIALIZATIONS["view"].writes_files


def test_partition_id_escapes_symbols_injectively():
    keys = {"exchange": "binanceus", "symbol": "BTC/USDT", "date": "2024-08-08"}
    assert partition_id(keys) == "exchange=binanceus/symbol=BTC%2FUSDT/date=2024-08-08"
    assert path_value("ETH/USD:USD") == "ETH%2FUSD%3AUSD"
    assert path_value("BTC-USDT") == "BTC-USDT"  # not BTC/USDT's folder any more
    values = ["BTC/USDT", "BTC-USDT", "BTC%2FUSDT", "a=b", "a%3Db", "x/../y", "wei rd'\\"]
    assert len({path_value(v) for v in values}) == len(values)
    assert all(unescape(path_value(v)) == v for v in values)
    assert hive_keys("exchange=x/symbol=BTC%2FUSDT/date=2024-08-08") == {
        "exchange": "x",
        "symbol": "BTC/USDT",
        "date": "2024-08-08",
    }


def test_partition_filter_uses_raw_values_and_a_date_literal():
    keys = {"exchange": "x", "symbol": "BTC/USDT", "date": "2024-08-08"}
    assert partition_filter(keys) == (
        "\"exchange\" = 'x' AND \"symbol\" = 'BTC/USDT' AND \"date\" = DATE '2024-08-08'"
    )
    assert partition_filter({"exchange": "o'k", "date": "2024-01-01"}).startswith("\"exchange\" = 'o''k'")


def test_copy_template():
    assert copy_sql("SELECT 1", "/l/p/part-1.parquet") == (
        "COPY (\nSELECT 1\n) TO '/l/p/part-1.parquet' (FORMAT parquet, COMPRESSION zstd)"
    )


def test_kinds_answer_what_callers_ask() -> None:
    view, table, part = (MATERIALIZATIONS[k] for k in ("view", "table", "partitioned"))
    assert (view.writes_files, view.inlines, view.partitioned) == (False, True, False)
    assert (table.writes_files, table.inlines, table.partitioned) == (True, False, False)
    assert (part.writes_files, part.inlines, part.partitioned) == (True, False, True)


def test_each_kind_validates_its_own_options() -> None:
    import pytest

    from daedalus.build.materializations import parse_config
    from daedalus.errors import CompileError

    assert parse_config(
        {"materialized": "partitioned", "partition_by": ["date"], "slice_by": "ts"}, "m.sql:1"
    )
    with pytest.raises(CompileError, match=r"m.sql:1: slice_by only applies to materialized='partitioned'"):
        parse_config({"materialized": "table", "slice_by": "ts"}, "m.sql:1")
    with pytest.raises(CompileError, match=r"partition_by only applies to materialized='partitioned'"):
        parse_config({"partition_by": ["date"]}, "m.sql:1")


def test_planner_names_the_parts_that_changed() -> None:
    from daedalus.build.planner import changed
    from daedalus.lake.manifest import PartitionState

    old = PartitionState({}, [], "fp", parts={"sql": "a", "config": "b", "inputs": "c", "previous": "d"})
    assert changed(old, {"sql": "x", "config": "b", "inputs": "c", "previous": "d"}) == "sql changed"
    assert changed(old, {"sql": "a", "config": "x", "inputs": "y", "previous": "d"}) == (
        "config changed, inputs changed"
    )
    assert (
        changed(old, {"sql": "a", "config": "b", "inputs": "c", "previous": "x"})
        == "previous partition changed"
    )
    assert changed(PartitionState({}, [], "fp"), {"sql": "x"}) == "inputs changed"  # an older manifest
    assert PartitionState.from_json({"keys": {}, "files": []}).parts == {}
