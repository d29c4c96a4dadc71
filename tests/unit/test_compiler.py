"""The Jinja context of docs/contracts.md, placeholders of the parse pass, one-line compile errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from daedalus.build.compiler import Compiler, ParseResolver
from daedalus.build.partition import PartitionCtx
from daedalus.build.project import Macro, Model, Project, Source
from daedalus.config import Config
from daedalus.errors import CompileError
from daedalus.sqltext import empty_relation_sql, read_parquet_sql


def project(tmp_path: Path, models: dict[str, str], macros: dict[str, str] | None = None) -> Project:
    p = Project(roots=[tmp_path])
    for name, text in (macros or {}).items():
        path = tmp_path / "macros" / f"{name}.sql"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        p.macros.append(Macro(path, text))
    for name, text in models.items():
        layer = "gold" if name.startswith("g") else "silver"
        path = tmp_path / "sql" / layer / f"{name}.sql"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        p.models[name] = Model(name, layer, path, text, tmp_path / "sql", False)
    p.sources["trades"] = Source("bronze", "trades")
    return p


class Recorder(ParseResolver):
    def ref(self, model, name):  # noqa: ANN001
        super().ref(model, name)
        return f"REF({name})"

    def source(self, source_name, name):  # noqa: ANN001
        super().source(source_name, name)
        return f"SRC({name})"


def render(tmp_path, text, partition=None, macros=None, config=None, extra=None):  # noqa: ANN001
    models = {"m": text, **(extra or {})}
    p = project(tmp_path, models, macros)
    c = Compiler(p, config or Config())
    return c.render_model(p.models["m"], Recorder(), partition)


def test_context_features_etl_var(tmp_path):
    cfg = Config.model_validate(
        {"etl": {"features": {"bands_bps": [0, 5, 10]}, "symbols": {"BTC/USDT": {"vpin_bucket_volume": 25}}}}
    )
    out = render(
        tmp_path,
        "{{ features.bands_bps }} {{ etl.symbols['BTC/USDT'].vpin_bucket_volume }} "
        "{{ var('etl.features.horizons') }} {{ var('nope.x', 7) }} {{ var('storage.root') }}",
        config=cfg,
    )
    assert out == "[0.0, 5.0, 10.0] 25.0 [5, 15, 60, 300, 900] 7 ./lake"


def test_partition_literals(tmp_path):
    part = PartitionCtx({"exchange": "binanceus", "symbol": "BTC/USDT", "date": "2024-08-08"}, lookback=900)
    out = render(
        tmp_path,
        "{{ partition.start }}|{{ partition.end }}|{{ partition.lookback_start }}|"
        "{{ partition.date }}|{{ partition.symbol }}|{{ partition.exchange }}",
        part,
    )
    assert out.split("|") == [
        "TIMESTAMPTZ '2024-08-08 00:00:00.000000+00'",
        "TIMESTAMPTZ '2024-08-09 00:00:00.000000+00'",
        "TIMESTAMPTZ '2024-08-07 23:45:00.000000+00'",
        "DATE '2024-08-08'",
        "BTC/USDT",
        "binanceus",
    ]


@pytest.mark.parametrize(
    ("hours", "edges"),
    [
        (24, ["00:00", "24:00"]),
        (6, ["00:00", "06:00", "12:00", "18:00", "24:00"]),
        (5, ["00:00", "05:00", "10:00", "15:00", "20:00", "24:00"]),  # the last slice ends at midnight
    ],
)
def test_partition_slices(hours, edges):
    part = PartitionCtx({"date": "2024-08-08"})
    got = part.slices(hours)
    stamps = [s.strftime("%H:%M") if s.date().isoformat() == "2024-08-08" else "24:00" for s, _ in got]
    stamps.append("24:00")
    assert stamps == edges
    assert all(a[1] == b[0] for a, b in zip(got, got[1:], strict=False))  # contiguous, no overlap


def test_slice_literals(tmp_path):
    day = PartitionCtx({"date": "2024-08-08"}, lookback=900)
    part = PartitionCtx({"date": "2024-08-08"}, lookback=900, bounds=day.slices(6)[1])
    out = render(
        tmp_path,
        "{{ partition.start }}|{{ partition.end }}|{{ partition.lookback_start }}|"
        "{{ partition.day_start }}|{{ partition.day_end }}|{{ partition.date }}",
        part,
    )
    assert out.split("|") == [
        "TIMESTAMPTZ '2024-08-08 06:00:00.000000+00'",
        "TIMESTAMPTZ '2024-08-08 12:00:00.000000+00'",
        "TIMESTAMPTZ '2024-08-08 05:45:00.000000+00'",
        "TIMESTAMPTZ '2024-08-08 00:00:00.000000+00'",
        "TIMESTAMPTZ '2024-08-09 00:00:00.000000+00'",
        "DATE '2024-08-08'",
    ]


def test_macros_are_global_and_call_each_other(tmp_path):
    macros = {
        "a": "{% macro outer(x) %}outer({{ inner(x) }}, {{ features.max_levels }}){% endmacro %}",
        "b": "{% macro inner(x) %}inner({{ x }}, {{ partition.date }}){% endmacro %}",
    }
    part = PartitionCtx({"date": "2024-01-02"})
    assert render(tmp_path, "{{ outer(1) }}", part, macros) == "outer(inner(1, DATE '2024-01-02'), 20)"


def test_ref_and_source_recorded(tmp_path):
    p = project(
        tmp_path,
        {
            "m": "SELECT * FROM {{ ref('u') }} JOIN {{ source('bronze', 'trades') }} USING (x)",
            "u": "SELECT 1 AS x",
        },
    )
    c = Compiler(p, Config())
    c.parse_all()
    assert p.models["m"].refs == ["u"] and p.models["m"].sources == [("bronze", "trades")]
    assert p.models["m"].config.materialized == "view"


def test_parse_reads_the_config_header(tmp_path):
    p = project(
        tmp_path,
        {
            "m": "{{ config(materialized='partitioned', partition_by=['exchange','date'], "
            "tags=['a'], lookback='1 day') }}\nSELECT 1 AS x WHERE {{ partition.end }} > now()"
        },
    )
    Compiler(p, Config()).parse_all()
    cfg = p.models["m"].config
    assert (cfg.materialized, cfg.partition_by, cfg.tags, cfg.lookback) == (
        "partitioned",
        ["exchange", "date"],
        ["a"],
        "1 day",
    )


def err(tmp_path, text, **kw) -> str:  # noqa: ANN003
    p = project(tmp_path, {"m": text, **kw.get("extra", {})}, kw.get("macros"))
    with pytest.raises(CompileError) as e:
        Compiler(p, Config()).parse_all()
    return str(e.value).replace(str(tmp_path), "T")


def test_unknown_ref_names_the_line(tmp_path):
    assert (
        err(tmp_path, "SELECT 1\nFROM {{ ref('nope') }}")
        == "T/sql/silver/m.sql:2: unknown ref 'nope' (models: m)"
    )


def test_unknown_ref_inside_a_macro_names_the_macro_line(tmp_path):
    macros = {"mac": "{% macro f() %}\n{{ ref('zzz') }}\n{% endmacro %}"}
    assert err(tmp_path, "SELECT * FROM {{ f() }}", macros=macros).startswith(
        "T/macros/mac.sql:2: unknown ref 'zzz'"
    )


def test_jinja_syntax_error(tmp_path):
    assert err(tmp_path, "SELECT 1\n{{ oops(").startswith("T/sql/silver/m.sql:2: Jinja syntax error:")


def test_undefined(tmp_path):
    assert err(tmp_path, "SELECT 1\n\n{{ nope.x }}") == "T/sql/silver/m.sql:3: 'nope' is undefined"


def test_sql_parse_error(tmp_path):
    out = err(tmp_path, "SELECT a,\n  b\nFROM t WHERE (\n")
    assert out.startswith("T/sql/silver/m.sql:3: SQL parse error:")


def test_two_statements(tmp_path):
    assert "exactly one SQL query" in err(tmp_path, "SELECT 1; SELECT 2")


def test_bad_config_key(tmp_path):
    out = err(tmp_path, "-- header\n{{ config(materialised='view') }}\nSELECT 1")
    assert out.startswith("T/sql/silver/m.sql:2: unknown config key 'materialised' (allowed: materialized,")


def test_previous_partition_needs_carry_state(tmp_path):
    out = err(
        tmp_path,
        "{{ config(materialized='partitioned', partition_by=['date']) }}\n"
        "SELECT * FROM {{ previous_partition() }}",
    )
    assert out == "T/sql/silver/m.sql:2: previous_partition() needs config(carry_state=true)"


def test_duckdb_only_syntax_is_accepted(tmp_path):
    p = project(
        tmp_path,
        {
            "m": "SELECT list_transform([1,2], x -> x + 1) AS l, {'a': 1}.a AS s, "
            "* EXCLUDE (y) FROM (SELECT 1 AS y, 2 AS z) ASOF JOIN (SELECT 1 AS y) USING (y)"
        },
    )
    Compiler(p, Config()).parse_all()


def test_relation_fragments():
    assert read_parquet_sql(["/a/b.parquet", "/a/it's.parquet"], True) == (
        "read_parquet(['/a/b.parquet', '/a/it''s.parquet'], hive_partitioning=true, union_by_name=true)"
    )
    assert empty_relation_sql([("a", "BIGINT"), ("date", "DATE")]) == (
        '(SELECT CAST(NULL AS BIGINT) AS "a", CAST(NULL AS DATE) AS "date" WHERE false)'
    )


def test_successful_parses_are_remembered_on_disk_failures_are_not(tmp_path, monkeypatch):
    from daedalus.build import compiler

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    good, bad = "SELECT 1 AS unique_probe_a", "SELECT FROM WHERE unique_probe_b"
    compiler._sqlglot_ok.cache_clear()
    assert compiler._sqlglot_ok(good)[0] is True
    assert compiler._sqlglot_ok(bad)[0] is False
    assert compiler._parsed_marker(good).exists()
    assert not compiler._parsed_marker(bad).exists()
    assert compiler._parsed_marker(good).parent == tmp_path / "daedalus" / "parsed"
