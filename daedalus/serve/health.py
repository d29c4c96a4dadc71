"""The lake's health as plain data (issue 27): what `daedalus docs` draws on health.html and
`daedalus coverage` prints, both from this one gathering.

A series is (exchange, symbol, channel) of silver.trades / silver.orderbook / silver.ticker. Over the
selected UTC days it gets one cell per hour:
- `rows`: silver rows of the series with exchange time in the hour; `bronze` the bronze rows (what
  silver did not serve: rejects, duplicates, book rows after a failed update);
- `breaks`: silver.events with is_break naming the series (NULL symbol/channel: every one of the
  exchange; `book_updates` names the orderbook series), placed by receive time; `healed` the ones
  whose interval end is known (the collector saw the series come back);
- `losses`, `lost`: quarantine and overflow events naming the series, and the rows they say were
  lost (their `count`; NULL when the segment's footer was unreadable);
- `rejected`: silver.rejects rows of the series, placed at the hour of their first exchange time
  (rejects are counted per day, so that is the finest place the lake records);
- `status`: lost > break > rejected > empty (no row in an hour between the series' first and last
  row of the window) > ok; `none` outside that span with nothing recorded.
A hole is a cell whose status is neither ok nor none. Freshness is the age of the series' newest row
(whole lake, not just the window); a series older than `max_age_seconds` is stale.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from daedalus.config import Config

CHANNELS = ("trades", "orderbook", "ticker")  # silver.<channel> holds the series of that channel
LOSS_TYPES = ("quarantine", "overflow")  # events whose count is rows the lake lost
CHART_BUCKET_SECONDS = 300  # one point of the per-symbol chart per 5 minutes
HOLE = ("lost", "break", "rejected", "empty")


@dataclass
class Cell:
    hour: str  # ISO start of the hour, UTC
    rows: int = 0
    bronze: int = 0  # bronze rows of the hour: rows + rejected + duplicates (+ book rows not served)
    breaks: int = 0
    healed: int = 0
    losses: int = 0  # loss events (quarantine, overflow)
    lost: int = 0  # rows they say were lost (a loss of unknown size adds none)
    rejected: int = 0
    events: list[int] = field(default_factory=list)  # ids into Health.events
    status: str = "none"


@dataclass
class Series:
    exchange: str
    symbol: str
    channel: str
    cells: list[Cell]
    last_ts: str | None = None  # newest row of the whole lake, ISO UTC
    age_seconds: float | None = None
    stale: bool = False

    @property
    def key(self) -> str:
        return f"{self.exchange} {self.symbol} {self.channel}"


@dataclass
class Health:
    generated_at: str
    start: str  # first selected day
    days: int
    hours: list[str]
    max_age_seconds: float
    series: list[Series] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    builds: dict[str, Any] = field(default_factory=dict)
    tests: dict[str, Any] = field(default_factory=dict)
    failed_tests: dict[str, Any] = field(default_factory=dict)
    charts: dict[str, dict[str, list[Any]]] = field(default_factory=dict)  # "exchange symbol" → series
    note: str = ""  # why parts are missing (no catalog yet, ...)

    def holes(self) -> list[dict[str, Any]]:
        return [
            {
                "exchange": s.exchange,
                "symbol": s.symbol,
                "channel": s.channel,
                "hour": c.hour,
                "status": c.status,
                "events": c.events,
            }
            for s in self.series
            for c in s.cells
            if c.status in HOLE
        ]

    def incidents(self) -> list[dict[str, Any]]:
        """The holes grouped as a person counts them: one per (exchange, symbol, hour, status, events),
        naming the channels it shows in (a connection-wide disconnect is one incident, three cells)."""
        groups: dict[tuple, dict[str, Any]] = {}
        for hole in self.holes():
            key = (hole["exchange"], hole["symbol"], hole["hour"], hole["status"], tuple(hole["events"]))
            g = groups.setdefault(key, {**{k: v for k, v in hole.items() if k != "channel"}, "channels": []})
            g["channels"].append(hole["channel"])
        return sorted(groups.values(), key=lambda g: (g["hour"], g["exchange"], g["symbol"]))

    def stale(self) -> list[str]:
        return [s.key for s in self.series if s.stale]

    def as_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["holes"] = self.holes()
        doc["incidents"] = self.incidents()
        doc["stale"] = self.stale()
        return doc


def ago(seconds: float | None) -> str:
    """42.0 → '42 s ago'; 7200 → '2.0 h ago'."""
    if seconds is None:
        return "no row yet"
    for unit, n in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= n:
            return f"{seconds / n:.1f} {unit} ago"
    return f"{seconds:.0f} s ago"


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _views(con: Any) -> set[str]:
    return {
        f"{s}.{n}"
        for s, n in con.execute("SELECT table_schema, table_name FROM information_schema.tables").fetchall()
    }


def _latest_date(con: Any, views: set[str]) -> dt.date | None:
    dates = [
        con.execute(f"SELECT max(date) FROM silver.{c}").fetchone()[0]
        for c in CHANNELS
        if f"silver.{c}" in views
    ]
    dates = [d for d in dates if d is not None]
    return max(dates) if dates else None


def _window(con: Any, views: set[str], start: dt.date | None, days: int) -> tuple[dt.datetime, dt.datetime]:
    if start is None:
        latest = _latest_date(con, views) or dt.datetime.now(dt.UTC).date()
        start = latest - dt.timedelta(days=days - 1)
    t0 = dt.datetime(start.year, start.month, start.day, tzinfo=dt.UTC)
    return t0, t0 + dt.timedelta(days=days)


def _rows_per_hour(
    con: Any, views: set[str], t0: dt.datetime, t1: dt.datetime, layer: str = "silver"
) -> dict[tuple, int]:
    """(exchange, symbol, channel, hour) → rows with exchange time in the hour. Bronze: a row without
    exchange time counts at its receive time; its `date` folder is the receive date, so a day of slack."""
    out: dict[tuple, int] = {}
    ts = "ts" if layer == "silver" else 'coalesce("timestamp", capture_ts)'
    first = t0.date() if layer == "silver" else t0.date() - dt.timedelta(days=1)
    for c in CHANNELS:
        if f"{layer}.{c}" not in views:
            continue
        q = (
            f"SELECT exchange, symbol, date_trunc('hour', {ts}) AS h, count(*) FROM {layer}.{c} "
            f"WHERE date BETWEEN ?::DATE AND ?::DATE AND {ts} >= ? AND {ts} < ? AND symbol IS NOT NULL "
            "GROUP BY ALL"
        )
        for ex, sym, h, n in con.execute(q, [first, t1.date(), t0, t1]).fetchall():
            out[(ex, sym, c, h)] = int(n)
    return out


def _last_rows(con: Any, views: set[str]) -> dict[tuple, dt.datetime]:
    out = {}
    for c in CHANNELS:
        if f"silver.{c}" in views:
            # the newest row lies in the series' newest date: read ts there only (the file statistics
            # skip the other dates' row groups), not the whole history of a lake running for weeks
            q = (
                f"SELECT exchange, symbol, max(ts) FROM silver.{c} WHERE (exchange, symbol, date) IN "
                f"(SELECT (exchange, symbol, max(date)) FROM silver.{c} GROUP BY exchange, symbol) "
                "GROUP BY ALL"
            )
            for ex, sym, last in con.execute(q).fetchall():
                out[(ex, sym, c)] = last
    return out


def _events(con: Any, views: set[str], t0: dt.datetime, t1: dt.datetime) -> list[dict[str, Any]]:
    if "silver.events" not in views:
        return []
    q = (
        'SELECT exchange, symbol, channel, ts, event_type, conn_id, "count", interval_start, interval_end, '
        "detail, is_break FROM silver.events WHERE date BETWEEN ?::DATE AND ?::DATE AND ts >= ? AND ts < ? "
        f"AND (is_break OR event_type IN {LOSS_TYPES!r}) ORDER BY ts, exchange, symbol, channel"
    )
    out = []
    for i, r in enumerate(con.execute(q, [t0.date(), t1.date(), t0, t1]).fetchall()):
        ex, sym, ch, ts, kind, conn, count, i_start, i_end, detail, is_break = r
        out.append(
            {
                "id": i,
                "exchange": ex,
                "symbol": sym,
                "channel": "orderbook" if ch == "book_updates" else ch,
                "ts": _iso(ts),
                "hour": _iso(ts.replace(minute=0, second=0, microsecond=0)),
                "event_type": kind,
                "conn_id": conn,
                "count": count,
                "loss": kind in LOSS_TYPES,
                "healed": bool(is_break) and kind not in LOSS_TYPES and i_end is not None,
                "seconds": (i_end - i_start).total_seconds() if i_start and i_end else None,
                "detail": detail,
                "series": [],  # filled by gather(): the series keys it marks
            }
        )
    return out


def _rejects(con: Any, views: set[str], t0: dt.datetime, t1: dt.datetime) -> dict[tuple, int]:
    if "silver.rejects" not in views:
        return {}
    q = (
        "SELECT exchange, symbol, channel, date_trunc('hour', first_ts) AS h, sum(\"count\") "
        "FROM silver.rejects WHERE date BETWEEN ?::DATE AND ?::DATE AND first_ts >= ? AND first_ts < ? "
        "GROUP BY ALL"
    )
    return {
        (ex, s, c, h): int(n) for ex, s, c, h, n in con.execute(q, [t0.date(), t1.date(), t0, t1]).fetchall()
    }


def _charts(con: Any, views: set[str], t0: dt.datetime, t1: dt.datetime) -> dict[str, dict[str, list[Any]]]:
    if "gold.orderbook_hf" not in views:
        return {}
    q = (
        f"SELECT exchange, symbol, time_bucket(INTERVAL {CHART_BUCKET_SECONDS} SECOND, ts) AS b, avg(mid), "
        "avg(spread), avg(vpin) FROM gold.orderbook_hf WHERE date BETWEEN ?::DATE AND ?::DATE "
        "AND ts >= ? AND ts < ? GROUP BY ALL ORDER BY exchange, symbol, b"
    )
    out: dict[str, dict[str, list[Any]]] = {}
    for ex, sym, b, mid, spread, vpin in con.execute(q, [t0.date(), t1.date(), t0, t1]).fetchall():
        d = out.setdefault(f"{ex} {sym}", {"t": [], "mid": [], "spread": [], "vpin": []})
        d["t"].append((b - t0).total_seconds())
        d["mid"].append(mid)
        d["spread"].append(spread)
        d["vpin"].append(vpin)
    return out


def _marks(event: dict[str, Any], series: list[Series]) -> list[Series]:
    return [
        s
        for s in series
        if s.exchange == event["exchange"]
        and event["symbol"] in (None, s.symbol)
        and event["channel"] in (None, s.channel)
    ]


def _classify(s: Series) -> None:
    with_rows = [i for i, c in enumerate(s.cells) if c.rows]
    first, last = (with_rows[0], with_rows[-1]) if with_rows else (len(s.cells), -1)
    for i, c in enumerate(s.cells):
        if c.losses:
            c.status = "lost"
        elif c.breaks:
            c.status = "break"
        elif c.rejected:
            c.status = "rejected"
        elif c.rows:
            c.status = "ok"
        elif first <= i <= last:
            c.status = "empty"
        else:
            c.status = "none"


def _builds(config: Config) -> dict[str, Any]:
    from daedalus.build import build_history
    from daedalus.lake import open_lake
    from daedalus.lake.manifest import Manifest

    lake = open_lake(config)
    manifest = Manifest.load(lake)
    last = manifest.last_build
    history = build_history(lake)
    models = sorted({*last.get("models", {}), *(m for h in history for m in h.get("status", {}))})
    return {
        "finished_at": last.get("finished_at"),
        "seconds": last.get("seconds"),
        "models": {
            m: {
                # each model's own last build (a later build that had nothing to do for it keeps it)
                "last_seconds": (ms.last_build.get("seconds") if (ms := manifest.models.get(m)) else None),
                "history": [h.get("seconds", {}).get(m) for h in history],
                "status": next((h["status"][m] for h in reversed(history) if m in h.get("status", {})), None),
            }
            for m in models
        },
    }


def gather(
    config: Config,
    start: str | dt.date | None = None,
    days: int = 1,
    max_age_seconds: float | None = None,
    now: float | None = None,
) -> Health:
    """The health of the lake over `days` UTC days from `start` (default: ending on the newest date
    with silver rows). `now` (epoch seconds) is the clock freshness is measured against."""
    from daedalus.build import last_test_results, load_failed
    from daedalus.errors import ConfigError, StorageError
    from daedalus.lake import open_lake
    from daedalus.serve.catalog import open_catalog

    if days < 1:
        raise ConfigError(f"--days: {days} is not a positive number of days")
    if isinstance(start, str):
        try:
            start = dt.date.fromisoformat(start)
        except ValueError:
            raise ConfigError(f"--start: '{start}' is not a date (YYYY-MM-DD)") from None
    now = time.time() if now is None else now
    max_age = config.status.max_age_seconds if max_age_seconds is None else max_age_seconds
    lake = open_lake(config)
    health = Health(
        generated_at=_iso(dt.datetime.fromtimestamp(now, dt.UTC)),
        start="",
        days=days,
        hours=[],
        max_age_seconds=max_age,
        tests=last_test_results(lake),
        failed_tests=load_failed(lake),
    )
    try:
        health.builds = _builds(config)
        con = open_catalog(config)
    except StorageError as e:
        t0 = dt.datetime.combine(start or dt.datetime.now(dt.UTC).date(), dt.time(), dt.UTC)
        health.start, health.note = t0.date().isoformat(), str(e)
        health.hours = [_iso(t0 + dt.timedelta(hours=h)) for h in range(24 * days)]
        return health
    try:
        views = _views(con)
        t0, t1 = _window(con, views, start, days)
        health.start = t0.date().isoformat()
        hours = [t0 + dt.timedelta(hours=h) for h in range(24 * days)]
        health.hours = [_iso(h) for h in hours]
        rows = _rows_per_hour(con, views, t0, t1)
        bronze = _rows_per_hour(con, views, t0, t1, "bronze")
        last = _last_rows(con, views)
        events = _events(con, views, t0, t1)
        rejects = _rejects(con, views, t0, t1)
        health.charts = _charts(con, views, t0, t1)
    finally:
        con.close()
    keys = sorted({k[:3] for k in rows} | {k[:3] for k in last} | {k[:3] for k in rejects})
    index = {h: i for i, h in enumerate(hours)}
    for ex, sym, ch in keys:
        cells = [
            Cell(hour=_iso(h), rows=rows.get((ex, sym, ch, h), 0), bronze=bronze.get((ex, sym, ch, h), 0))
            for h in hours
        ]
        for (rex, rsym, rch, h), n in rejects.items():
            if (rex, rsym, rch) == (ex, sym, ch) and h in index:
                cells[index[h]].rejected += n
        s = Series(ex, sym, ch, cells)
        newest = last.get((ex, sym, ch))
        if newest is not None:
            s.last_ts = _iso(newest)
            s.age_seconds = round(now - newest.timestamp(), 3)
            s.stale = s.age_seconds > max_age
        health.series.append(s)
    for e in events:
        hour = dt.datetime.fromisoformat(e["hour"].replace("Z", "+00:00"))
        for s in _marks(e, health.series):
            c = s.cells[index[hour]]
            c.events.append(e["id"])
            e["series"].append(s.key)
            if e["loss"]:
                c.losses += 1
                c.lost += int(e["count"] or 0)
            else:
                c.breaks += 1
                c.healed += e["healed"]
    for s in health.series:
        _classify(s)
    health.events = events
    return health
