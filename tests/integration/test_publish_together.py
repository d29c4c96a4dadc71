"""A model's partitions are published together or not at all (issue 17): a new version of a model's
SQL that fails on its 3rd partition leaves every partition, and the catalog, on the old version."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from toy import make_toy, trade_rows

from daedalus.build import build
from daedalus.errors import BuildError

DAYS = ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]


def bars(root: Path) -> list[tuple]:
    con = duckdb.connect(str(root / "catalog.duckdb"), read_only=True, config={"file_search_path": str(root)})
    try:
        return con.execute("SELECT symbol, bar_ts, volume FROM gold.toy_bars ORDER BY ALL").fetchall()
    finally:
        con.close()


def test_a_model_failing_on_its_third_partition_publishes_none(tmp_path: Path) -> None:
    toy = make_toy(tmp_path)
    for day in DAYS:
        toy.write_bronze("x", day, trade_rows("x", "BTC/USDT", day))
    cfg = toy.config()
    build(cfg, udfs=False)
    before_rows = bars(toy.root)
    before = toy.manifest()["models"]["toy_bars"]["partitions"]

    sql = toy.project / "sql" / "gold" / "toy_bars.sql"
    text = sql.read_text()
    assert "sum(amount) AS volume" in text
    # version 2 doubles the volume, and cannot build 2024-01-03 (its 3rd partition)
    sql.write_text(
        text.replace(
            "sum(amount) AS volume",
            "2 * sum(amount) + CASE WHEN min(date) = DATE '2024-01-03' "
            "THEN error('boom on the 3rd partition') ELSE 0 END AS volume",
        )
    )
    with pytest.raises(BuildError, match="boom on the 3rd partition"):
        build(cfg, udfs=False)
    after = toy.manifest()["models"]["toy_bars"]["partitions"]
    assert {pid: p["files"] for pid, p in after.items()} == {pid: p["files"] for pid, p in before.items()}
    assert bars(toy.root) == before_rows  # no partition of version 2 is served

    sql.write_text(text.replace("sum(amount) AS volume", "2 * sum(amount) AS volume"))
    build(cfg, udfs=False)
    doubled = bars(toy.root)
    assert [r[:2] for r in doubled] == [r[:2] for r in before_rows]
    assert all(v == pytest.approx(2 * w) for (*_, v), (*_, w) in zip(doubled, before_rows, strict=True))
