"""Which SQL needs the Daedalus UDFs registered (udfs/relations.py `calls_python`): a build registers
them, importing numba (~100 MB resident), only at the first query that does (Session.con_for)."""

from __future__ import annotations

from daedalus.build.compiler import Compiler
from daedalus.build.project import load_project
from daedalus.config import Config
from daedalus.udfs.relations import calls_python, memo_sql, relation_sql, table_sql


def test_a_udf_call_or_a_python_relation_needs_them() -> None:
    assert calls_python("SELECT daedalus_book_structural(bids, asks, 20, [5.0]) FROM t")
    assert calls_python("SELECT x FROM t WHERE daedalus_levels_invalid (bids)")
    assert calls_python(f"SELECT * FROM {relation_sql('vpin_buckets', {'start': 'x'}, 'SELECT 1')}")
    # a memo's input query calling a UDF needs them too: it runs on the same connection
    assert calls_python(f"SELECT * FROM {memo_sql('SELECT daedalus_ofi(a, b, c, d, 5, 0.5) FROM t')}")


def test_plain_sql_a_memo_and_the_build_s_own_names_do_not() -> None:
    assert not calls_python("SELECT * FROM (SELECT 1 AS x) AS __daedalus_model WHERE x > 0")
    assert not calls_python(f"SELECT * FROM {memo_sql('SELECT 1 AS x')}")
    assert not calls_python(f"SELECT * FROM {table_sql('SELECT 1 AS x')}")
    assert not calls_python("SELECT 'daedalus_ofi' AS name, daedalus_x FROM t")


def test_the_models_that_call_python_are_the_book_and_sequential_ones() -> None:
    project = load_project()
    Compiler(project, Config()).parse_all()
    calling = {name for name, m in project.models.items() if m.calls_python}
    assert calling == {"orderbook", "orderbook_unserved", "vpin_buckets", "orderbook_seq", "orderbook_hf"}
