"""`daedalus demo`: the whole pipeline on loopback, no network, no credentials.

1. Start fakes of Binance (WebSocket + REST), OKX v5, Bybit v5 spot, Kraken v2 and Coinbase Advanced
   Trade on 127.0.0.1, all publishing one deterministic simulated market (several symbols).
2. Run the real collectors (the real ccxt.pro client, the native Coinbase client) for `seconds`.
3. `land` raw segments into bronze, `build` silver and gold, refresh the catalog.
4. Query the catalog and print a summary: rows per layer, a few gold features, where things are.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEMO_SYMBOLS = {"BTC/USDT": 60_000.0, "ETH/USDT": 3_000.0, "SOL/USDT": 150.0}
# the ccxt.pro exchanges the demo collects from, each against its own fake server
DEMO_EXCHANGES = ("binance", "okx", "bybit", "kraken")
STEP_MS = 20
DEMO_VPIN_BUCKET_VOLUME = 0.5


@dataclass
class DemoResult:
    root: str
    catalog: str | None
    collect: dict
    land: str = ""
    rows: dict[str, int] = field(default_factory=dict)
    features: list[str] = field(default_factory=list)
    build_error: str | None = None
    # model -> exchange -> rows, for every bronze/silver/gold model with an `exchange` column
    by_exchange: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0


def demo_build_settings() -> dict[str, Any]:
    """The settings the demo builds with besides the root, nested as in a YAML file: `daedalus.yaml`
    beside the demo lake carries them, so `build` after the demo finds everything up to date.
    VPIN buckets are sized to the simulated flow (about 15 base units a second per symbol): the
    default `auto` needs a first hour of trades, which a demo of a minute never has."""
    return {"etl": {"symbols": {s: {"vpin_bucket_volume": DEMO_VPIN_BUCKET_VOLUME} for s in DEMO_SYMBOLS}}}


def demo_config(root: str | Path, seconds: float) -> Any:
    """The demo's config: both sources, every channel, the demo symbols, quick flushes."""
    from daedalus.config import load_config

    if not (seconds > 0 and seconds != float("inf")):  # NaN fails both: a demo of nan s ran 104 s
        from daedalus.errors import ConfigError

        raise ConfigError(f"--seconds: {seconds} is not a finite positive number of seconds (e.g. 30)")
    products = [s.replace("/", "-") for s in DEMO_SYMBOLS]
    return load_config(
        None,
        {
            "storage.root": str(Path(root).resolve()),
            "ingestion.sources": ["ccxt", "coinbase"],
            "ingestion.exchanges": list(DEMO_EXCHANGES),
            "ingestion.symbols": list(DEMO_SYMBOLS),
            "ingestion.channels": ["ticker", "trades", "orderbook", "book_updates"],
            "ingestion.flush_interval_seconds": min(5.0, max(0.5, seconds / 10)),
            "ingestion.stale_after_seconds": 10.0,
            "ingestion.coinbase": {"products": products, "channels": ["level2", "market_trades", "ticker"]},
            "etl.symbols": demo_build_settings()["etl"]["symbols"],
        },
    )


async def collect_demo(config: Any, seconds: float, seed: int = 7) -> dict:
    """Run the fake exchanges on one simulated market and the real collectors for `seconds`."""
    from daedalus.collector.pipeline import run_collect
    from daedalus.devkit.simulator.binance import FakeBinance, spot_market
    from daedalus.devkit.simulator.bybit import FakeBybit
    from daedalus.devkit.simulator.coinbase import FakeCoinbase
    from daedalus.devkit.simulator.kraken import FakeKraken
    from daedalus.devkit.simulator.market import SimulatedMarket
    from daedalus.devkit.simulator.okx import FakeOkx
    from daedalus.devkit.simulator.wsfake import publish_step

    # start the simulated clock at "now" so bronze dates and capture times agree
    market = SimulatedMarket(DEMO_SYMBOLS, seed=seed, start_ms=int(time.time() * 1000), step_ms=STEP_MS)
    binance = await FakeBinance().start()
    coinbase = await FakeCoinbase(market).start()
    binance.load_market(market)
    venues = {"okx": FakeOkx(), "bybit": FakeBybit(), "kraken": FakeKraken()}
    for fake in venues.values():
        fake.record = False  # the demo runs for minutes if asked: keep no copy of what was sent
        await fake.start()
        fake.load_market(market)
    # every venue's endpoints come from config, as a user's testnet would; only the markets (which
    # the fakes do not serve) from a hook
    config = config.model_copy(deep=True)
    config.ingestion.exchange_options = {
        **config.ingestion.exchange_options,
        "binance": binance.exchange_options(),
        **{name: fake.exchange_options() for name, fake in venues.items()},
    }
    configure = {"binance": lambda ex: ex.set_markets([spot_market(s) for s in DEMO_SYMBOLS])}
    for name, fake in venues.items():
        configure[name] = lambda ex, fake=fake: fake.set_markets(ex, list(DEMO_SYMBOLS), market)
    stop = asyncio.Event()
    market_stop = asyncio.Event()

    async def feed() -> None:
        # one step every STEP_MS ≈ 150 book updates/s across three symbols on each exchange; the
        # simulated clock advances as fast as the wall clock
        while not market_stop.is_set():
            await publish_step(market, binance, venues.values(), coinbase)
            await asyncio.sleep(STEP_MS / 1000)

    feeder = asyncio.ensure_future(feed())
    try:
        return await run_collect(
            config, stop, duration=seconds, configure=configure, coinbase_url=coinbase.url
        )
    finally:
        market_stop.set()
        await feeder
        await binance.stop()
        await coinbase.stop()
        for fake in venues.values():
            await fake.stop()


def _count_rows(config: Any) -> tuple[dict[str, int], list[str], str | None]:
    """Rows per layer/model from the catalog, and a few gold features to show."""
    from daedalus.serve.catalog import catalog_path, open_catalog

    con = open_catalog(config)
    try:
        views = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema IN ('bronze','silver','gold') ORDER BY 1, 2"
        ).fetchall()
        rows: dict[str, int] = {}
        for schema, name in views:
            try:
                rows[f"{schema}.{name}"] = con.execute(
                    f'SELECT count(*) FROM "{schema}"."{name}"'
                ).fetchone()[0]
            except Exception as e:  # noqa: BLE001 - a view that cannot be read is shown, not fatal
                rows[f"{schema}.{name}"] = -1
                rows[f"{schema}.{name} error: {str(e).splitlines()[0][:80]}"] = -1
        features: list[str] = []
        for schema, name in views:
            if schema != "gold" or rows.get(f"gold.{name}", 0) <= 0:
                continue
            # numeric feature columns only, and no TIMESTAMPTZ fetched into Python (that needs pytz)
            described = con.execute(f'DESCRIBE "gold"."{name}"').fetchall()
            numeric = [
                c for c, t, *_ in described if t in ("DOUBLE", "FLOAT", "DECIMAL") or t.startswith("DECIMAL")
            ]
            order = "ts" if any(c == "ts" for c, *_ in described) else "ALL"
            if not numeric:
                continue
            quoted = [f'"{c}"' for c in numeric[:5]]
            not_null = " AND ".join(f"{q} IS NOT NULL" for q in quoted[:2])
            got = con.execute(
                f'SELECT exchange, symbol, {", ".join(quoted)} FROM "gold"."{name}" '
                f"WHERE {not_null} ORDER BY {order} DESC LIMIT 1"
            ).fetchone()
            if got is None:
                continue
            values = dict(zip(["exchange", "symbol", *numeric[:5]], got, strict=True))
            shown = {k: v for k, v in values.items() if isinstance(v, float) and v == v}
            picked = ", ".join(f"{k}={v:.6g}" for k, v in shown.items())
            features.append(f"gold.{name} ({values.get('exchange')}, {values.get('symbol')}): {picked}")
        return rows, features, catalog_path(config)
    finally:
        con.close()


def run_demo(root: str | Path, seconds: float = 60.0) -> DemoResult:
    """Collect from the simulated market, land, build, query. Nothing leaves 127.0.0.1."""
    started = time.monotonic()
    config = demo_config(root, seconds)
    summary = asyncio.run(collect_demo(config, seconds))
    result = DemoResult(root=str(Path(root).resolve()), catalog=None, collect=summary)

    from daedalus.land.landing import land

    result.land = land(config).summary()
    try:
        from daedalus.build import build

        build(config)
        result.rows, result.features, result.catalog = _count_rows(config)
        result.by_exchange = _rows_by_exchange(config)
    except Exception as e:  # noqa: BLE001 - the demo reports how far it got
        from daedalus.errors import DaedalusError

        if not isinstance(e, DaedalusError):
            raise
        result.build_error = str(e)
    result.seconds = time.monotonic() - started
    return result


def _rows_by_exchange(config: Any) -> dict[str, dict[str, int]]:
    from daedalus.serve.catalog import each_view

    def rows_by_exchange(con: Any, schema: str, name: str) -> dict[str, int] | None:
        try:
            sql = f'SELECT exchange, count(*) FROM "{schema}"."{name}" GROUP BY 1 ORDER BY 1'
            got = con.execute(sql).fetchall()
        except Exception:  # noqa: BLE001 - a view that cannot be read is shown by _count_rows
            return None
        return {str(ex): n for ex, n in got}

    views = (
        "SELECT table_schema, table_name FROM information_schema.columns WHERE column_name = 'exchange' "
        "AND table_schema IN ('bronze','silver','gold') ORDER BY 1, 2"
    )
    return each_view(config, views, rows_by_exchange)


def shell_hint(root: str, catalog: str) -> str:
    """A DuckDB CLI command that opens the catalog from any folder: the venv's `duckdb` (a system one
    may be another version); the views find the lake's files from the catalog's folder by themselves
    (daedalus/serve/catalog_paths.py)."""
    import shlex

    from daedalus.serve.catalog import duckdb_cli_path

    return f"{shlex.quote(duckdb_cli_path())} -readonly {shlex.quote(catalog)}"


def format_demo(r: DemoResult) -> str:
    c = r.collect
    lines = [
        (
            f"Daedalus demo — {r.seconds:.0f}s, everything on 127.0.0.1 "
            "(fake Binance, OKX, Bybit, Kraken, Coinbase; simulated market)"
        ),
        f"collected: {c['collector']['received']} messages, {c['collector']['dropped']} dropped; "
        + ", ".join(f"{k} {v}" for k, v in sorted(c["written"].items()) if v)
        + " rows written",
        f"landed:    {r.land}",
    ]
    if r.build_error:
        lines.append(f"build:     failed: {r.build_error}")
    if r.rows:
        lines.append("rows per layer:")
        lines += [f"  {k:<28} {v:>10}" for k, v in r.rows.items()]
    if r.by_exchange:
        lines.append("exchanges per layer:")
        for layer in ("bronze", "silver", "gold"):
            seen = sorted({ex for m, per in r.by_exchange.items() if m.startswith(layer + ".") for ex in per})
            lines.append(f"  {layer:<8} {', '.join(seen)}")
    if r.features:
        lines.append("a few gold features (latest row):")
        lines += [f"  {f}" for f in r.features]
    lines += [
        f"lake:      {r.root}",
        f"catalog:   {r.catalog or '(not built)'}",
        f"shell:     {shell_hint(r.root, r.catalog)}" if r.catalog else "shell:     (build first)",
        f'           or: daedalus --root {r.root} shell   |   daedalus --root {r.root} query "SELECT ..."',
    ]
    return "\n".join(lines)
