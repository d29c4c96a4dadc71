"""udfs/relations.py `renamed`: a Python relation's name is a digest of its input query; once a caller
rewrites the texts (the build's fingerprint spells staged files as published), the names follow."""

from __future__ import annotations

from daedalus.udfs.relations import memo_sql, relation_sql, renamed

STAGED = "/lake/_staging/17-ab/gold/x/date=2024-01-01/data.parquet"
PUBLISHED = "/lake/gold/x/date=2024-01-01/data.parquet"


def _query(path: str) -> str:
    inner = memo_sql(f"SELECT * FROM read_parquet(['{path}'])")
    return "SELECT * FROM " + relation_sql(
        "vpin_buckets", {"n": 50, "w": [0.5]}, f"SELECT * FROM {inner} /* x */"
    )


def test_names_follow_the_rewritten_texts_nested_ones_first() -> None:
    staged = _query(STAGED)
    rewritten = staged.replace("/_staging/17-ab/", "/")
    assert rewritten != _query(PUBLISHED)  # the texts agree, the names (digests of the staged texts) not
    assert renamed(rewritten) == _query(PUBLISHED)


def test_a_text_named_as_it_reads_is_unchanged() -> None:
    for sql in (_query(PUBLISHED), _query(STAGED), "SELECT 1"):
        assert renamed(sql) == sql
