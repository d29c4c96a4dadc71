"""Column-by-column comparison of the models of two built lakes (an old build vs a new one).

    python benchmarks/compare_lakes.py OLD_LAKE NEW_LAKE [--models orderbook,orderbook_seq,orderbook_hf]

For each model present in both lakes: the row counts, the column names and types, and for every column
the number of rows whose value differs (`IS DISTINCT FROM`, so NULL = NULL and NaN = NaN), rows
matched by their position in the model's sort order (`order_by` of the model: exchange, symbol, ts,
seq for the order-book models). Exit 1 when anything differs. A rewrite of a model's SQL is checked
with it on a whole synthetic symbol-day (`daedalus.devkit.synth.generate`), built before and after.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb

KEYS = {
    "orderbook": ["exchange", "symbol", "ts", "seq"],
    "orderbook_seq": ["exchange", "symbol", "ts", "seq"],
    "orderbook_hf": ["exchange", "symbol", "ts", "seq"],
    "trades": ["exchange", "symbol", "ts", "trade_id"],
    "orderbook_bars": ["exchange", "symbol", "bar_seconds", "bar_start"],
    "trade_bars": ["exchange", "symbol", "bar_seconds", "bar_start"],
}


def model_dirs(lake: Path) -> dict[str, Path]:
    return {p.name: p for layer in ("silver", "gold") for p in sorted((lake / layer).glob("*")) if p.is_dir()}


def compare(con: duckdb.DuckDBPyConnection, old: Path, new: Path, model: str) -> list[str]:
    def rel(p: Path) -> str:
        return f"read_parquet('{p}/**/*.parquet', hive_partitioning=false)"

    o, n = rel(old), rel(new)
    problems = []
    cols_o = con.execute(f"DESCRIBE SELECT * FROM {o}").fetchall()
    cols_n = con.execute(f"DESCRIBE SELECT * FROM {n}").fetchall()
    if [c[:2] for c in cols_o] != [c[:2] for c in cols_n]:
        problems.append(f"{model}: columns differ: {[c[:2] for c in cols_o]} vs {[c[:2] for c in cols_n]}")
        return problems
    rows = con.execute(f"SELECT (SELECT count(*) FROM {o}), (SELECT count(*) FROM {n})").fetchone()
    if rows[0] != rows[1]:
        problems.append(f"{model}: {rows[0]} rows vs {rows[1]}")
        return problems
    keys = [k for k in KEYS.get(model, []) if k in [c[0] for c in cols_o]] or [c[0] for c in cols_o]
    order = ", ".join(f'"{k}"' for k in keys)
    for name, *_ in cols_o:
        diff = con.execute(
            f"""SELECT count(*) FROM
                (SELECT row_number() OVER (ORDER BY {order}) AS rn, "{name}" AS v FROM {o}) a
                JOIN (SELECT row_number() OVER (ORDER BY {order}) AS rn, "{name}" AS v FROM {n}) b USING (rn)
                WHERE a.v IS DISTINCT FROM b.v"""
        ).fetchone()[0]
        if diff:
            problems.append(f"{model}.{name}: {diff} of {rows[0]} rows differ")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--models", default="", help="Comma list (default: every model in both lakes).")
    args = ap.parse_args()
    old, new = model_dirs(args.old), model_dirs(args.new)
    wanted = [m for m in args.models.split(",") if m] or sorted(set(old) & set(new))
    con = duckdb.connect()
    problems = []
    for m in wanted:
        if m not in old or m not in new:
            problems.append(f"{m}: not built in both lakes")
            continue
        found = compare(con, old[m], new[m], m)
        print(f"{m}: {'equal' if not found else f'{len(found)} difference(s)'}")
        problems += found
    for p in problems:
        print("  " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
