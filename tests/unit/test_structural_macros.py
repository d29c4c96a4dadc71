"""Small macros shared by the silver and gold models, rendered through the build's compiler."""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

import duckdb

from daedalus.build.compiler import Compiler, ParseResolver
from daedalus.build.project import SqlTest, load_project
from daedalus.collector.schemas import BREAK_EVENT_TYPES
from daedalus.config import load_config


@functools.cache
def _compiler() -> Compiler:
    cfg = load_config()
    return Compiler(load_project(cfg), cfg)


def render(text: str) -> str:
    return _compiler().render_test(SqlTest("m", Path(f"macro-{abs(hash(text))}.sql"), text), ParseResolver())


def test_break_event_types_match_the_collector_contract() -> None:
    got = duckdb.sql(f"SELECT unnest(list_value{render('{{ break_event_types() }}')})").fetchall()
    assert sorted(r[0] for r in got) == sorted(BREAK_EVENT_TYPES)


def test_bar_start_is_left_closed_on_utc_boundaries() -> None:
    sql = render(
        "SELECT epoch_ms({{ bar_start('t', 5) }}), epoch_ms({{ bar_start('t', 3600) }}) "
        "FROM (SELECT unnest($ts)::TIMESTAMPTZ AS t)"
    )
    con = duckdb.connect()
    con.execute("SET TimeZone = 'Asia/Kolkata'")  # a +05:30 session zone must not shift UTC bars
    ts = ["2024-01-01 00:00:05+00", "2024-01-01 00:00:04.999999+00", "2024-01-01 10:59:59.5+00"]
    rows = con.execute(sql, {"ts": ts}).fetchall()

    def ms(*args: int) -> int:
        return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp() * 1000)

    assert [r[0] for r in rows] == [
        ms(2024, 1, 1, 0, 0, 5),  # exactly on the boundary: opens the new bar
        ms(2024, 1, 1, 0, 0, 0),
        ms(2024, 1, 1, 10, 59, 55),
    ]
    assert rows[2][1] == ms(2024, 1, 1, 10, 0)


def test_utc_date_ignores_session_time_zone() -> None:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'America/Los_Angeles'")
    sql = render("SELECT {{ utc_date(\"TIMESTAMPTZ '2024-01-02 03:00:00+00'\") }}")
    assert con.execute(sql).fetchone()[0] == dt.date(2024, 1, 2)


def test_seconds_interval_rounds_up_to_whole_seconds() -> None:
    assert render("{{ seconds_interval(300.0) }}|{{ seconds_interval(2.5) }}") == "300 seconds|3 seconds"
