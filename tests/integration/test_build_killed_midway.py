"""Acceptance: a build killed between writing new files and deleting the old ones leaves every
partition readable (old or new rows, never a mix), and the next build gives the same rows as a
clean build. The build SIGKILLs itself at a chosen point through DAEDALUS_TEST_KILL."""

from __future__ import annotations

import signal

import duckdb
import pytest
from toy import make_toy, trade_rows

from daedalus.build import build

DAYS = ("2024-01-01", "2024-01-02", "2024-01-03")
ENV = {"DAEDALUS_NO_UDFS": "1"}


def write_inputs(toy, extra: bool) -> None:
    for day in DAYS:
        toy.write_bronze(
            "x", day, trade_rows("x", "BTC/USDT", day) + trade_rows("x", "ETH/USDT", day, price=10)
        )
    if extra:
        toy.write_bronze(
            "x", "2024-01-02", trade_rows("x", "BTC/USDT", "2024-01-02", n=6, start_id=900), "seg-0002"
        )


def partition_rows(toy) -> dict[tuple[str, str], list[tuple]]:
    """Read every partition through the manifest's exact file lists."""
    out = {}
    con = duckdb.connect()
    for name, ms in toy.manifest()["models"].items():
        for pid, p in ms["partitions"].items():
            files = [str(toy.root / f[0]) for f in p["files"]]
            for f in files:
                assert (toy.root / f).exists(), f"{name}/{pid}: manifest names a missing file {f}"
            rel = f"read_parquet({files!r}, hive_partitioning=false)"
            cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()]
            cast = ", ".join(f'CAST("{c}" AS VARCHAR)' for c in cols)
            out[(name, pid)] = con.execute(f"SELECT {cast} FROM {rel} ORDER BY ALL").fetchall()
    con.close()
    return out


def catalog_counts(toy) -> dict[str, int]:
    con = duckdb.connect(
        str(toy.root / "catalog.duckdb"), read_only=True, config={"file_search_path": str(toy.root)}
    )
    try:
        return {
            v: con.execute(f"SELECT count(*) FROM {v}").fetchone()[0]
            for v in ("silver.toy_trades", "gold.toy_bars", "silver.toy_trades_clean")
        }
    finally:
        con.close()


@pytest.fixture(scope="module")
def clean_rows(tmp_path_factory):
    toy = make_toy(tmp_path_factory.mktemp("clean"))
    write_inputs(toy, extra=True)
    build(toy.config(), udfs=False)
    return partition_rows(toy)


@pytest.mark.slow
@pytest.mark.parametrize(
    "kill_at", ["after_write:1", "after_write:3", "after_manifest:1", "after_manifest:2"]
)
def test_killed_build_leaves_partitions_readable(tmp_path, clean_rows, kill_at):
    toy = make_toy(tmp_path)
    write_inputs(toy, extra=False)
    toy.cli("build", env=ENV, check=True)
    before = partition_rows(toy)
    before_counts = catalog_counts(toy)

    toy.write_bronze(
        "x", "2024-01-02", trade_rows("x", "BTC/USDT", "2024-01-02", n=6, start_id=900), "seg-0002"
    )
    proc = toy.cli("build", env={**ENV, "DAEDALUS_TEST_KILL": kill_at})
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr)

    during = partition_rows(toy)  # every partition of the manifest reads, from files that exist
    assert set(during) == set(before)
    for key, rows in during.items():
        assert rows in (before[key], clean_rows[key]), f"{key}: neither the old nor the new rows"
    if kill_at == "after_write:1":
        assert during == before  # the manifest still names the old files
    elif kill_at == "after_write:3":  # silver was saved, gold's first new file is an orphan
        assert {k: v for k, v in during.items() if k[0] == "toy_trades"} == {
            k: v for k, v in clean_rows.items() if k[0] == "toy_trades"
        }
        assert {k: v for k, v in during.items() if k[0] == "toy_bars"} == {
            k: v for k, v in before.items() if k[0] == "toy_bars"
        }
    elif kill_at == "after_manifest:1":  # saved while toy_trades was not yet published (issue 17)
        assert during == before
    else:  # after toy_trades was published, all of it at once; toy_bars not yet
        assert {k: v for k, v in during.items() if k[0] == "toy_trades"} == {
            k: v for k, v in clean_rows.items() if k[0] == "toy_trades"
        }
        assert {k: v for k, v in during.items() if k[0] == "toy_bars"} == {
            k: v for k, v in before.items() if k[0] == "toy_bars"
        }
    # The catalog still answers: the file-backed views with the published partitions (the view
    # model over bronze globs bronze, so it already sees the new bronze file).
    after_kill = catalog_counts(toy)
    assert after_kill.pop("silver.toy_trades_clean") == before_counts.pop("silver.toy_trades_clean") + 6
    assert after_kill == {
        k: sum(len(r) for (m, _), r in during.items() if m == k.split(".")[1]) for k in before_counts
    }

    toy.cli("build", env=ENV, check=True)
    assert partition_rows(toy) == clean_rows
    on_disk = {str(p.relative_to(toy.root)) for p in toy.root.glob("s*/**/*.parquet")} | {
        str(p.relative_to(toy.root)) for p in toy.root.glob("gold/**/*.parquet")
    }
    in_manifest = {
        f[0]
        for ms in toy.manifest()["models"].values()
        for p in ms["partitions"].values()
        for f in p["files"]
    }
    assert on_disk == in_manifest, "orphans of the killed build must be cleaned up"
    assert "0 partition(s) rebuilt" in toy.cli("build", env=ENV, check=True).stderr
