"""What the soak checks after each cycle, read from the lake (bronze files and the catalog)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from daedalus.devkit.soak.venues import HOST_CLOCK_STEP_S, VENUE_FAULTS

TEMP_MARKS = (".land-", ".guard-", ".catalog-", ".tmp")
# raw sources that are no exchange: an event naming one names no series (the `coinbase` source's
# one exchange has its name, so an event naming coinbase is right either way)
SOURCE_NAMES = ("ccxt",)
# the events a venue fault must leave for the venue it hit (None: it loses nothing)
EXPECTED_EVENTS: dict[str, tuple[str, ...] | None] = {
    "disconnect": ("disconnect", "reconnect"),
    "dropped_frames": ("gap",),
    "checksum": ("gap",),
    "stale_feed": ("stale",),
    "rest_429": ("gap",),
    "rest_error": ("gap",),
    "rest_timeout": ("gap",),
    "clock_step": None,
    "disk_full": ("error",),  # the stall, once writing resumes (collector/sink_events.py)
    "host_clock_step": ("clock_step",),  # collector/clockwatch.py
}
# faults after which the venue's book breaks: its next served book starts with `break_before` (all
# venue faults but a clock step and a full disk, which cut no feed)
BOOK_BREAKS = tuple(k for k in VENUE_FAULTS if k not in ("clock_step", "disk_full", "host_clock_step"))
# seconds from the fault to the venue's next served book: reconnects back off, a stale feed is only
# found after stale_after_seconds, a failed REST snapshot is retried after a pause
RECOVERY_BOUND_SECONDS = {
    "disconnect": 10.0,
    "dropped_frames": 8.0,
    "checksum": 8.0,
    "stale_feed": 15.0,
    "rest_429": 12.0,
    "rest_error": 12.0,
    "rest_timeout": 15.0,
    "clock_step": 5.0,
    "disk_full": 8.0,
    # measured on the receive clock, which jumped ahead by the step (soak/venues.py HOST_CLOCK_STEP_S)
    "host_clock_step": 5.0 + HOST_CLOCK_STEP_S,
}
PRICE_TOLERANCE = 1e-9


def quarantine_events(root: Path) -> list[tuple[str, str]]:
    import duckdb

    files = sorted((root / "bronze" / "events").rglob("quarantine_*.parquet"))
    if not files:
        return []
    paths = [str(f) for f in files]
    return duckdb.sql(
        f"SELECT exchange, channel FROM read_parquet({paths}, hive_partitioning = false)"
    ).fetchall()


def bronze_duplicates(root: Path) -> int:
    import duckdb

    files = [str(f) for f in (root / "bronze" / "trades").rglob("*.parquet")]
    if not files:
        return 0
    return duckdb.sql(
        f"SELECT count(*) - count(DISTINCT (exchange, symbol, trade_id, conn_id, seq)) "
        f"FROM read_parquet({files}, union_by_name = true)"
    ).fetchone()[0]


def leftovers(root: Path, temp_dirs: list[Path]) -> list[str]:
    """Temp files, init files of `daedalus shell` and empty staging folders (every process is over)."""
    out = []
    for p in root.rglob("*"):
        rel = p.relative_to(root).as_posix()
        if rel.startswith("raw/active/"):
            continue  # the collector's open segments (it is stopped between cycles, but keeps journals)
        if p.is_file() and any(m in p.name for m in TEMP_MARKS):
            out.append(rel)
    staging = root / "_staging"
    if staging.is_dir():  # every build is over here: any empty folder is junk
        out += [
            d.relative_to(root).as_posix() for d in staging.rglob("*") if d.is_dir() and not any(d.iterdir())
        ]
    for d in temp_dirs:
        out += [str(f) for f in d.glob("shell_init-*")] if d.is_dir() else []
    return out


def models(config: Any) -> dict[str, tuple[int, int]]:
    """Rows and a content hash of every silver and gold view of the catalog."""
    from daedalus.serve.catalog import each_view

    def rows_and_hash(con: Any, schema: str, name: str) -> tuple[int, int]:
        n, h = con.execute(f'SELECT count(*), bit_xor(hash(x)) FROM "{schema}"."{name}" x').fetchone()
        return (n, h or 0)

    views = (
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_schema IN ('silver', 'gold') ORDER BY 1, 2"
    )
    return each_view(config, views, rows_and_hash)


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def book_mismatches(con: Any, books: dict, start_ms: int, end_ms: int, levels: int) -> list[str]:
    """Every (venue, symbol) whose last served book of the cycle differs from the fake's true book
    (top `levels` per side, after the market stopped and the collector drained)."""
    bad = []
    for venue, per_symbol in books.items():
        for symbol, want in per_symbol.items():
            row = con.execute(
                "SELECT [[l.price, l.size] FOR l IN bids[1:?]], [[l.price, l.size] FOR l IN asks[1:?]] "
                "FROM silver.orderbook WHERE exchange = ? AND symbol = ? AND capture_ts BETWEEN ? AND ? "
                "ORDER BY capture_ts DESC, seq DESC LIMIT 1",
                [levels, levels, venue, symbol, _ts(start_ms), _ts(end_ms)],
            ).fetchone()
            if row is None:
                bad.append(f"{venue} {symbol}: no book served")
                continue
            for side, got, exp in (("bids", row[0], want["bids"]), ("asks", row[1], want["asks"])):
                same = len(got) == len(exp) and all(
                    abs(a - c) <= PRICE_TOLERANCE and abs(b - d) <= PRICE_TOLERANCE
                    for (a, b), (c, d) in zip(got, exp, strict=True)
                )
                if not same:
                    bad.append(f"{venue} {symbol} {side}: served {got[:2]}… true {exp[:2]}…")
    return bad


def fault_evidence(con: Any, fault: dict) -> tuple[list[str], float | None]:
    """The events the venue recorded after the fault, and seconds to its next served book (None:
    none served in the cycle)."""
    venue = "binance" if fault["venue"] == "all" else fault["venue"]
    at = _ts(fault["at_ms"])
    by_symbol = fault["kind"] in ("dropped_frames", "checksum") and venue != "coinbase"
    sym = "AND symbol = ?" if by_symbol else ""
    args = [venue, at] + ([fault["symbol"]] if by_symbol else [])
    # a full disk stalls every exchange's writes: its events may name any of them
    which = "exchange = ?" if fault["venue"] != "all" else "? IS NOT NULL"
    events = [
        r[0]
        for r in con.execute(
            f"SELECT DISTINCT event_type FROM silver.events WHERE {which} AND ts >= ? {sym}", args
        ).fetchall()
    ]
    # after a loss, the first book served again starts with a break (a fresh snapshot)
    broken = "AND break_before" if fault["kind"] in BOOK_BREAKS else ""
    first = con.execute(
        f"SELECT epoch(min(capture_ts)) - epoch(?::TIMESTAMPTZ) FROM silver.orderbook "
        f"WHERE exchange = ? AND capture_ts > ? {sym} {broken}",
        [at, *args],
    ).fetchone()[0]
    return events, first
