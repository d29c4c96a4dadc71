"""Partition paths are injective (issue 17, case 5): `BTC/USDT` and `BTC-USDT` on one exchange get
two folders, and a lake written when `/` was spelled `-` stays readable and migrates on rebuild."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from toy import make_toy, trade_rows

from daedalus.build import build

pytestmark = pytest.mark.slow

DAY = "2024-01-01"


def symbol_rows(root: Path, model: str) -> dict[str, int]:
    con = duckdb.connect(str(root / "catalog.duckdb"), read_only=True, config={"file_search_path": str(root)})
    try:
        layer = "silver" if model == "toy_trades" else "gold"
        return dict(con.execute(f"SELECT symbol, count(*) FROM {layer}.{model} GROUP BY ALL").fetchall())
    finally:
        con.close()


def test_slash_and_dash_symbols_do_not_share_a_folder(tmp_path: Path) -> None:
    toy = make_toy(tmp_path)
    toy.write_bronze(
        "x", DAY, trade_rows("x", "BTC/USDT", DAY, n=30) + trade_rows("x", "BTC-USDT", DAY, n=12)
    )
    build(toy.config(), udfs=False)
    folders = sorted(p.name for p in (toy.root / "silver" / "toy_trades" / "exchange=x").iterdir())
    assert folders == ["symbol=BTC%2FUSDT", "symbol=BTC-USDT"]
    assert symbol_rows(toy.root, "toy_trades") == {"BTC/USDT": 30, "BTC-USDT": 12}


def test_a_lake_with_old_dash_paths_stays_readable_and_migrates(tmp_path: Path) -> None:
    toy = make_toy(tmp_path, retain_minutes=0.0)
    toy.write_bronze("x", DAY, trade_rows("x", "BTC/USDT", DAY, n=30))
    cfg = toy.config()
    build(cfg, udfs=False)
    before = symbol_rows(toy.root, "toy_trades")
    # Rewrite the lake as the previous version wrote it: folders and manifest ids spell `/` as `-`.
    for layer in ("silver", "gold"):
        for d in sorted((toy.root / layer).rglob("symbol=BTC%2FUSDT")):
            d.rename(d.with_name("symbol=BTC-USDT"))
    text = (toy.root / "_state" / "manifest.json").read_text().replace("symbol=BTC%2FUSDT", "symbol=BTC-USDT")
    (toy.root / "_state" / "manifest.json").write_text(text)
    (toy.root / "catalog.duckdb").unlink()

    # Silver is current under its old folder; gold recorded its inputs by their old ids, so it is
    # rebuilt once (into the new folder), reading silver's old files.
    again = build(cfg, udfs=False)
    assert [m for m, _ in again.rebuilt] == ["toy_bars"]
    assert symbol_rows(toy.root, "toy_trades") == before
    parts = json.loads((toy.root / "_state" / "manifest.json").read_text())["models"]["toy_trades"][
        "partitions"
    ]
    (pid,) = parts
    assert pid == f"exchange=x/symbol=BTC%2FUSDT/date={DAY}"  # re-keyed from the stored keys
    assert all("/symbol=BTC-USDT/" in f[0] for f in parts[pid]["files"])  # files stay where they are

    full = build(cfg, udfs=False, full_refresh=True)  # a rebuild writes the new folder
    assert full.rebuilt
    parts = json.loads((toy.root / "_state" / "manifest.json").read_text())["models"]["toy_trades"][
        "partitions"
    ]
    assert all("/symbol=BTC%2FUSDT/" in f[0] for f in parts[pid]["files"])
    assert symbol_rows(toy.root, "toy_trades") == before
