"""daedalus/sqltext.py canonical_sql: layout and comments never change it; anything else does."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from daedalus.sqltext import canonical_sql

TOKENS = [
    "SELECT",
    "a",
    ",",
    "b",
    "FROM",
    "t",
    "WHERE",
    "x",
    ">=",
    "1.5",
    "'it''s -- no comment'",
    '"q--"',
    "(",
    ")",
]


def test_comments_and_whitespace_are_dropped_literals_kept() -> None:
    sql = "SELECT a,  b -- why\nFROM t /* how\n many */ WHERE s = '--no' AND d = 'a''b' AND \"x--\" = 1.5e3"
    assert canonical_sql(sql) == ("SELECT a , b FROM t WHERE s = '--no' AND d = 'a''b' AND \"x--\" = 1.5e3")


def test_a_changed_literal_or_token_is_a_change() -> None:
    assert canonical_sql("SELECT '  a'") != canonical_sql("SELECT ' a'")
    assert canonical_sql("SELECT a + 0") != canonical_sql("SELECT a")
    assert canonical_sql("SELECT 10") != canonical_sql("SELECT 1 0")


@given(
    st.lists(st.sampled_from(TOKENS), min_size=1, max_size=30),
    st.lists(st.sampled_from([" ", "\n  ", "\t", " -- note\n", " /* a\nb */ "]), min_size=30, max_size=30),
)
def test_any_layout_of_the_same_tokens_is_the_same(tokens: list[str], gaps: list[str]) -> None:
    tight = " ".join(tokens)
    loose = "".join(tok + gaps[i] for i, tok in enumerate(tokens))
    assert canonical_sql(loose) == canonical_sql(tight)
