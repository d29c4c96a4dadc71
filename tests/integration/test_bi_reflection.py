"""A BI tool's view of the catalog: SQLAlchemy reflection through duckdb-engine, as Superset does it.

Superset adds a dataset with `inspect(engine).get_columns(table, schema=...)`; with SQLAlchemy 2.1
that query joins `pg_catalog.pg_collation`, which DuckDB does not have, so the pinned SQLAlchemy is
the 2.0 line (pyproject.toml). This test reflects every view of a real project's catalog and reads
each through `pandas.read_sql`, so an upgrade that breaks reflection fails here.
"""

from __future__ import annotations

import pytest
from test_break_rules import _lake_rows, write

from daedalus.build import build
from daedalus.config import load_config
from daedalus.serve.catalog import catalog_path
from daedalus.serve.catalog_paths import reader_config

pytestmark = pytest.mark.slow  # one real build of every model


def test_every_catalog_view_reflects_and_reads_through_sqlalchemy(tmp_path) -> None:
    pd = pytest.importorskip("pandas")
    from sqlalchemy import create_engine, inspect, text

    root = tmp_path / "lake"
    for channel, rows in _lake_rows().items():
        write(root, channel, "seg-1", rows)
    cfg = load_config(overrides={"storage.root": str(root), "duckdb.temp_directory": str(tmp_path / "spill")})
    build(cfg)
    path = catalog_path(cfg)  # docs/operations.md's recipe: read-only, paths relative to the catalog's folder
    engine = create_engine(
        f"duckdb:///{path}",
        pool_recycle=3600,
        connect_args={"read_only": True, "config": reader_config(path)},
    )
    insp = inspect(engine)
    schemas = {s.rsplit(".", 1)[-1] for s in insp.get_schema_names()}
    assert {"bronze", "silver", "gold"} <= schemas
    with engine.connect() as con:
        views = con.execute(
            text(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema IN ('bronze', 'silver', 'gold')"
            )
        ).fetchall()
        expected = {
            (s, n): [
                c
                for (c,) in con.execute(
                    text(
                        "SELECT column_name FROM information_schema.columns WHERE table_schema = :s AND table_name = :n "
                        "ORDER BY ordinal_position"
                    ),
                    {"s": s, "n": n},
                ).fetchall()
            ]
            for s, n in views
        }
    assert ("gold", "orderbook_hf") in expected and ("silver", "trades") in expected
    for schema in ("bronze", "silver", "gold"):
        assert sorted(insp.get_view_names(schema=schema)) == sorted(n for s, n in expected if s == schema)
    for (schema, name), columns in expected.items():
        reflected = insp.get_columns(name, schema=schema)
        assert [c["name"] for c in reflected] == columns, (schema, name)
        with engine.connect() as con:
            frame = pd.read_sql(text(f'SELECT * FROM "{schema}"."{name}" LIMIT 5'), con)
            n = con.execute(text(f'SELECT count(*) FROM "{schema}"."{name}"')).scalar()
        assert list(frame.columns) == columns and len(frame) == min(5, n), (schema, name)
