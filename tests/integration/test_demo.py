"""`daedalus demo` end to end on loopback, and the collector CLI's fail-fast and help texts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fake_exchange import bronze_rows, updates_match_snapshots

from daedalus.devkit.demo import demo_config, format_demo, run_demo

pytestmark = pytest.mark.network


@pytest.mark.slow
def test_demo_collects_lands_builds_and_queries(tmp_path: Path) -> None:
    result = run_demo(tmp_path / "lake", seconds=6)
    assert result.build_error is None
    c = result.collect
    assert c["collector"]["dropped"] == 0
    for source in ("ccxt", "coinbase"):
        for channel in ("orderbook", "trades", "ticker"):
            assert c["written"].get(f"{source}/{channel}", 0) > 0, (source, channel)
    rows = result.rows
    for layer_model in ("bronze.orderbook", "bronze.trades", "silver.orderbook", "silver.trades"):
        assert rows.get(layer_model, 0) > 0, layer_model
    assert any(k.startswith("gold.") and v > 0 for k, v in rows.items())
    # bronze holds exactly what the collectors wrote (land moved every ready segment)
    written = sum(v for k, v in c["written"].items() if k.endswith("/orderbook"))
    assert rows["bronze.orderbook"] == written
    assert Path(result.catalog or "").exists()
    # every exchange reaches every layer: bronze, silver and gold rows for okx, bybit and kraken
    # (trades, order book, ticker) besides binance and coinbase
    per = result.by_exchange
    for ex in ("binance", "okx", "bybit", "kraken", "coinbase"):
        for model in (
            "bronze.orderbook",
            "bronze.trades",
            "bronze.ticker",
            "silver.orderbook",
            "silver.trades",
        ):
            assert per.get(model, {}).get(ex, 0) > 0, (model, ex, per.get(model))
        assert any(m.startswith("gold.") and n.get(ex, 0) > 0 for m, n in per.items()), (ex, per)
    # VPIN shows in the demo (bucket volume sized to the simulated flow), for every demo symbol
    from daedalus.serve.catalog import open_catalog

    con = open_catalog(demo_config(tmp_path / "lake", 6))
    try:
        vpin = con.execute(
            "SELECT exchange, symbol, count(vpin) FROM gold.orderbook_hf GROUP BY ALL"
        ).fetchall()
        # silver serves the book from book_updates: every delta of every venue applies (no id rule of
        # a venue breaks its own stream), bronze deltas = silver delta rows
        served = dict(
            con.execute(
                "SELECT exchange, count(*) FROM silver.orderbook WHERE kind = 'delta' GROUP BY 1"
            ).fetchall()
        )
        landed = dict(
            con.execute(
                "SELECT exchange, count(*) FROM bronze.book_updates WHERE kind = 'delta' GROUP BY 1"
            ).fetchall()
        )
        reasons = con.execute(
            "SELECT DISTINCT break_reason FROM silver.orderbook WHERE break_reason IS NOT NULL"
        ).fetchall()
    finally:
        con.close()
    assert served == landed and set(served) == {"binance", "okx", "bybit", "kraken", "coinbase"}, (
        served,
        landed,
    )
    assert reasons == [("snapshot",)], reasons
    assert {s for _, s, n in vpin if n > 0} >= {"BTC/USDT", "ETH/USDT", "SOL/USDT"}, vpin
    assert {e for e, _, n in vpin if n > 0} >= {"binance", "okx", "bybit", "kraken", "coinbase"}, vpin
    # book_updates: every venue lands snapshots, checkpoints and deltas, and for every series the book
    # replayed from them has, before each top-N `orderbook` row, exactly that row's levels
    updates = bronze_rows(tmp_path / "lake", "book_updates")
    books = bronze_rows(tmp_path / "lake", "orderbook")
    levels = demo_config(tmp_path / "lake", 6).ingestion.orderbook_levels
    assert sum(v for k, v in c["written"].items() if k.endswith("/book_updates")) == len(updates)
    series = {(u["exchange"], u["symbol"]) for u in updates}
    assert {e for e, _ in series} == {"binance", "okx", "bybit", "kraken", "coinbase"}
    for ex, sym in series:
        mine = [u for u in updates if (u["exchange"], u["symbol"]) == (ex, sym)]
        assert {u["kind"] for u in mine} == {"snapshot", "checkpoint", "delta"}, (ex, sym)
        tops = [b for b in books if (b["exchange"], b["symbol"]) == (ex, sym)]
        assert updates_match_snapshots(mine, tops, levels) == len(tops) > 10, (ex, sym)
    text = format_demo(result)
    assert "catalog:" in text and "rows per layer" in text and "gold." in text


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "daedalus", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow  # a fresh interpreter importing ccxt
def test_collect_unknown_exchange_fails_fast_with_one_line(tmp_path: Path) -> None:
    r = _cli("--root", str(tmp_path), "collect", "--exchanges", "nosuchexchange", "--seconds", "5")
    assert r.returncode == 6
    assert r.stderr.strip().count("\n") == 0 and "unknown ccxt.pro exchange 'nosuchexchange'" in r.stderr
    assert not (tmp_path / "raw").exists()  # nothing started, nothing written


@pytest.mark.parametrize("command", [["collect"], ["demo"], ["bench", "collect"]])
def test_commands_have_help_with_an_example(command: list[str]) -> None:
    r = _cli(*command, "--help")
    assert r.returncode == 0 and "Example: daedalus" in r.stdout


@pytest.mark.slow
def test_the_demos_next_steps_work(tmp_path: Path) -> None:
    """Issue 24: `build` right after `demo` rebuilt 60 partitions (the demo's daedalus.yaml lacked
    vpin_bucket_volume), and the printed `duckdb -readonly <catalog>` failed outside the lake."""
    demo = subprocess.run(
        [
            sys.executable,
            "-c",
            "from daedalus.cli.app import main; main()",
            "demo",
            "--seconds",
            "6",
            "--root",
            "lake",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert demo.returncode == 0, demo.stderr
    again = subprocess.run(
        [sys.executable, "-c", "from daedalus.cli.app import main; main()", "build"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert again.returncode == 0, again.stderr
    assert "0 partition(s) rebuilt" in again.stderr and "everything is up to date" in again.stderr
    (hint,) = [ln.split("shell:", 1)[1].strip() for ln in demo.stdout.splitlines() if ln.startswith("shell:")]
    shell = subprocess.run(  # the printed command, as a user pastes it, from another folder
        f'{hint} -csv -c "SELECT count(*) AS n FROM silver.trades"',
        shell=True,
        capture_output=True,
        text=True,
        cwd="/",
        timeout=120,
    )
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.split()[0] == "n" and int(shell.stdout.split()[1]) > 0
