"""Acceptance: each compile error is one line `file:line: message` and exit code 3 (config: 2),
asserted on the text of the real CLI's output."""

from __future__ import annotations

import pytest
from toy import make_toy

ENV = {"DAEDALUS_NO_UDFS": "1"}


@pytest.fixture
def toy(tmp_path):
    return make_toy(tmp_path)


def edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def one_error_line(proc) -> str:
    # the lake announcement (`lake: ...`, `WARNING: no bronze ...`) and the progress lines a build
    # logs without a terminal (`building ...`, `built ...`) are not error lines
    lines = [
        ln
        for ln in proc.stderr.splitlines()
        if ln.strip() and not ln.startswith(("lake: ", "WARNING: no bronze", "building ", "built "))
    ]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_cycle(toy):
    clean = toy.project / "sql" / "silver" / "toy_trades_clean.sql"
    edit(
        clean,
        "FROM {{ source('bronze', 'trades') }}",
        "FROM {{ source('bronze', 'trades') }}\nLEFT JOIN {{ ref('toy_bars') }} b ON false",
    )
    proc = toy.cli("build", env=ENV)
    assert proc.returncode == 3
    line = one_error_line(proc)
    assert line.startswith("error: ")
    assert "ref cycle:" in line
    assert "toy_trades_clean -> toy_bars" in line or "toy_bars -> toy_trades" in line
    # file:line of a ref() that closes the loop
    assert any(
        f"{p}:" in line
        for p in (
            clean,
            toy.project / "sql" / "silver" / "toy_trades.sql",
            toy.project / "sql" / "gold" / "toy_bars.sql",
        )
    )


def test_unknown_ref(toy):
    bars = toy.project / "sql" / "gold" / "toy_bars.sql"
    edit(bars, "{{ ref('toy_trades') }}", "{{ ref('toy_tardes') }}")
    proc = toy.cli("compile", "toy_bars", env=ENV)
    assert proc.returncode == 3
    line = one_error_line(proc)
    assert line == (
        f"error: {bars}:8: unknown ref 'toy_tardes' (models: toy_bars, toy_trades, toy_trades_clean)"
    )


def test_bad_jinja(toy):
    trades = toy.project / "sql" / "silver" / "toy_trades.sql"
    edit(trades, "WHERE {{ in_window('ts') }}", "WHERE {{ in_window('ts') }\n")
    proc = toy.cli("build", env=ENV)
    assert proc.returncode == 3
    line = one_error_line(proc)
    assert line.startswith(f"error: {trades}:6: Jinja syntax error: ")


def test_undefined_variable(toy):
    trades = toy.project / "sql" / "silver" / "toy_trades.sql"
    edit(
        trades,
        "FROM {{ ref('toy_trades_clean') }}",
        "FROM {{ ref('toy_trades_clean') }} -- {{ featuers.horizons }}",
    )
    proc = toy.cli("build", env=ENV)
    assert proc.returncode == 3
    assert one_error_line(proc) == f"error: {trades}:5: 'featuers' is undefined"


def test_bad_sql(toy):
    bars = toy.project / "sql" / "gold" / "toy_bars.sql"
    edit(bars, "GROUP BY ALL", "GROUP BY ALL )")
    proc = toy.cli("build", env=ENV)
    assert proc.returncode == 3
    line = one_error_line(proc)
    assert line.startswith(f"error: {bars}:11: SQL parse error: ")  # the ')' that no longer closes the CTE


def test_bad_config_key(toy):
    trades = toy.project / "sql" / "silver" / "toy_trades.sql"
    edit(trades, "order_by=['ts', 'trade_id']", "order_by=['ts', 'trade_id'], partition_on=['date']")
    proc = toy.cli("build", env=ENV)
    assert proc.returncode == 3
    assert one_error_line(proc) == (
        f"error: {trades}:1: unknown config key 'partition_on' (allowed: materialized, partition_by, tags, "
        "lookback, settings, carry_state, order_by, slice_by)"
    )


def test_bad_materialization(toy):
    trades = toy.project / "sql" / "silver" / "toy_trades.sql"
    edit(trades, "materialized='partitioned'", "materialized='incremental'")
    proc = toy.cli("build", env=ENV)
    assert proc.returncode == 3
    line = one_error_line(proc)
    assert line.startswith(f"error: {trades}:1: invalid config 'materialized': ")
    assert "'view', 'table' or 'partitioned'" in line


def test_unknown_source(toy):
    clean = toy.project / "sql" / "silver" / "toy_trades_clean.sql"
    edit(clean, "source('bronze', 'trades')", "source('bronze', 'trade')")
    proc = toy.cli("build", env=ENV)
    assert proc.returncode == 3
    assert one_error_line(proc) == (
        f"error: {clean}:13: unknown source 'bronze.trade' (declared in sources.yml: bronze.trades)"
    )


def test_unknown_data_test(toy):
    yml = toy.project / "sql" / "silver" / "toy.yml"
    edit(yml, "tests: [not_null]", "tests: [not_nul]")
    proc = toy.cli("build", env=ENV)
    assert proc.returncode == 3
    line = one_error_line(proc)
    assert line.startswith(f"error: {yml}:") and "unknown data test 'not_nul'" in line


def test_config_error_exit_2(toy):
    toy.config_path.write_text(toy.config_path.read_text() + "storage_typo: 1\n")
    proc = toy.cli("build", env=ENV)
    assert proc.returncode == 2
    assert one_error_line(proc) == f"error: {toy.config_path}: unknown key 'storage_typo'"


def test_runtime_error_is_build_error(toy):
    from toy import trade_rows

    toy.write_bronze("x", "2024-01-01", trade_rows("x", "BTC/USDT", "2024-01-01"))
    bars = toy.project / "sql" / "gold" / "toy_bars.sql"
    edit(bars, "sum(amount) AS volume", "sum(amount_typo) AS volume")
    proc = toy.cli("build", env=ENV)
    assert proc.returncode == 4
    line = one_error_line(proc)
    assert line.startswith(
        f"error: {bars}: gold.toy_bars partition exchange=x/symbol=BTC%2FUSDT/date=2024-01-01: "
    )
    assert "amount_typo" in line


def test_failing_data_test_names_model_test_and_rows(toy):
    from toy import trade_rows

    rows = trade_rows("x", "BTC/USDT", "2024-01-01")
    rows[3]["side"] = "sideways"
    toy.write_bronze("x", "2024-01-01", rows)
    proc = toy.cli("build", env=ENV)
    assert proc.returncode == 4
    line = one_error_line(proc)
    assert "data test accepted_values(side) failed on model 'toy_trades': 1 offending row(s)" in line
    assert "side=sideways" in line
    # `run` skips tests; `test` reports them
    assert toy.cli("run", env=ENV).returncode == 0
    proc = toy.cli("test", env=ENV)
    assert proc.returncode == 4 and "FAIL toy_trades accepted_values(side) (1 rows)" in proc.stdout
