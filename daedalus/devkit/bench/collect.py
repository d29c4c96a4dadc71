"""`daedalus bench collect`: the collector flat out against the fake Binance, for a fixed message count.

The fake exchange runs in a child process (its own core), publishing the simulated market's depth
diffs as fast as TCP lets it; the collector (real ccxt.pro client → queue → Parquet sink) runs in
this process, so the figures are the collector's: order-book messages/s, receive→written latency
(capture_ts to the moment the batch holding the row was written and flushed), peak RSS, and
received = written + dropped.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import resource
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daedalus.devkit.bench.measure import self_max_rss

BENCH_SYMBOLS = {"BTC/USDT": 60_000.0, "ETH/USDT": 3_000.0, "SOL/USDT": 150.0}


@dataclass
class BenchResult:
    messages: int
    measured: int  # order-book messages received between the start and end marks
    seconds: float
    received: int
    written: int
    dropped: int
    p50_ms: float
    p99_ms: float
    peak_rss_mb: float
    cpu_seconds: float = 0.0  # this process's user+sys CPU time over the run (the collector's core)
    queue_peak_mb: float = 0.0  # the queue's peak estimated bytes (bounded by ingestion.queue_max_mb)
    queue_max_mb: float = 0.0
    channels: tuple[str, ...] = ("orderbook",)

    @property
    def rate(self) -> float:
        return self.measured / self.seconds if self.seconds > 0 else 0.0

    @property
    def written_rate(self) -> float:
        return (self.measured - self.dropped) / self.seconds if self.seconds > 0 else 0.0

    def format(self) -> str:
        unaccounted = self.received - self.written - self.dropped
        return (
            f"order-book messages: {self.measured} received in {self.seconds:.2f}s = {self.rate:,.0f} msg/s"
            f" (written {self.written_rate:,.0f} msg/s; the run ends when every message is written or"
            f" counted as dropped)\n"
            "per CPU-second of the collector process: "
            f"{self.measured / self.cpu_seconds if self.cpu_seconds else 0:,.0f} msg/s"
            f" ({self.cpu_seconds:.2f} s CPU; the wall rate depends on what else shares the cores)\n"
            f"receive→written latency: p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms\n"
            f"peak RSS (collector process): {self.peak_rss_mb:.0f} MB; "
            f"queue peak {self.queue_peak_mb:.0f} of "
            f"{self.queue_max_mb:.0f} MB\n"
            f"received {self.received} = written {self.written} + dropped {self.dropped}"
            f" (unaccounted: {unaccounted})"
        )


# venue -> (fake server class path, its order-book topic for a symbol)
BENCH_VENUES = {
    "binance": (
        "daedalus.devkit.simulator.binance:FakeBinance",
        lambda s: f"{s.replace('/', '').lower()}@depth@100ms",
    ),
    "okx": ("daedalus.devkit.simulator.okx:FakeOkx", lambda s: f"books:{s.replace('/', '-')}"),
    "bybit": ("daedalus.devkit.simulator.bybit:FakeBybit", lambda s: f"orderbook.50.{s.replace('/', '')}"),
    "kraken": ("daedalus.devkit.simulator.kraken:FakeKraken", lambda s: f"book:{s}"),
}


def _fake_class(venue: str) -> type:
    import importlib

    module, name = BENCH_VENUES[venue][0].split(":")
    return getattr(importlib.import_module(module), name)


def _serve(port_q: Any, go: Any, messages: int, rate: float | None = None, venue: str = "binance") -> None:
    """Child process: a fake exchange + simulated market; publish `messages` depth diffs once told to,
    flat out or at `rate` messages/s."""
    from daedalus.devkit.simulator.market import SimulatedMarket

    async def main() -> None:
        market = SimulatedMarket(BENCH_SYMBOLS, seed=1)
        server = await _fake_class(venue)().start()
        server.record = False
        server.load_market(market)
        port_q.put(server.port)
        await server.wait_subscribed([BENCH_VENUES[venue][1](s) for s in BENCH_SYMBOLS], 60)
        while not go.is_set():
            await asyncio.sleep(0.01)
        sent = 0
        t0 = time.monotonic()
        while sent < messages:
            for ev in market.step():
                # depth diffs only: an order-book benchmark (a venue fake says False for a diff that
                # changed nothing inside its subscribed depth: no frame went out)
                if hasattr(ev, "first_id") and await server.publish_market_event(ev, market) is not False:
                    sent += 1
            if rate:
                ahead = sent / rate - (time.monotonic() - t0)
                if ahead > 0.002:
                    await asyncio.sleep(ahead)
            elif sent % 64 < 3:
                await asyncio.sleep(0)
        await asyncio.sleep(3600)  # keep sockets open until the parent kills us

    asyncio.run(main())


def collect_channels(channels: tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    """The channels of a collector benchmark, checked (None = the collector's default); a book channel
    must be one of them: the messages are counted on it (`book_channel`)."""
    from typing import get_args

    from daedalus.config import IngestionConfig

    allowed = get_args(get_args(IngestionConfig.model_fields["channels"].annotation)[0])
    chosen = tuple(IngestionConfig().channels) if channels is None else tuple(channels)
    bad = [c for c in chosen if c not in allowed]
    if bad or not ({"orderbook", "book_updates"} & set(chosen)):
        raise ValueError(
            f"channels {', '.join(chosen) or '(none)'}: each one of {', '.join(allowed)}, "
            "orderbook or book_updates among them"
        )
    return chosen


def book_channel(channels: tuple[str, ...]) -> tuple[str, int]:
    """The channel the book messages are counted on, and the rows each symbol's first load makes
    there (an orderbook row; or a book_updates snapshot and the checkpoint after it)."""
    return ("orderbook", 1) if "orderbook" in channels else ("book_updates", 2)


def bench_collect(
    messages: int = 100_000,
    root: str | Path | None = None,
    queue_maxsize: int | None = 2_000,
    rate: float | None = None,
    venue: str = "binance",
    config_path: str | Path | None = None,
    channels: tuple[str, ...] | None = None,
) -> BenchResult:
    """Run the benchmark; `rate` paces the exchange (msg/s) to measure latency below saturation;
    `venue` picks the fake exchange (binance, okx, bybit, kraken) and the real ccxt.pro client for it.
    `config_path`: a profile (e.g. config/pi.yaml) for the ingestion settings; `queue_maxsize`
    None keeps the profile's queue bounds. `channels`: the channels collected, None = the profile's
    `ingestion.channels` (the collector's default without a profile); the messages are counted on
    `orderbook` if collected, else on `book_updates` (one delta row per message)."""
    from daedalus.collector.pipeline import run_collect
    from daedalus.collector.sink import BronzeSink
    from daedalus.config import load_config

    if channels is None:  # the profile's (or the default) ingestion.channels
        channels = collect_channels(load_config(config_path, {}, environ={}).ingestion.channels)
    channels = collect_channels(channels)
    book, load_rows = book_channel(channels)
    latencies: list[int] = []

    class TimedSink(BronzeSink):
        def flushed(self, stream: tuple[str, str], rows: list[Any]) -> None:
            if stream[1] == book:
                now = time.time_ns()
                latencies.extend(now - row["capture_ts"] for row in rows)

    ctx = mp.get_context("spawn")
    port_q, go = ctx.Queue(), ctx.Event()
    child = ctx.Process(target=_serve, args=(port_q, go, messages, rate, venue), daemon=True)
    child.start()
    tmp = tempfile.TemporaryDirectory(prefix="daedalus-bench-") if root is None else None
    lake = Path(root) if root is not None else Path(tmp.name)  # type: ignore[union-attr]
    try:
        port = port_q.get(timeout=60)
        overrides: dict[str, Any] = {
            "storage.root": str(lake),
            "ingestion.exchanges": [venue],
            "ingestion.symbols": list(BENCH_SYMBOLS),
            "ingestion.channels": list(channels),
            "ingestion.stale_after_seconds": 30.0,
            "ingestion.local_root": None,
        }
        if queue_maxsize is not None:
            overrides["ingestion.queue_maxsize"] = queue_maxsize
        config = load_config(config_path, overrides, environ={})
        probe = _fake_class(venue)(port=port)
        marks: dict[str, float] = {}

        async def main() -> dict:
            stop = asyncio.Event()

            def started(emitter: Any) -> None:
                async def watch() -> None:
                    def got() -> int:
                        c = emitter.counters.get(("ccxt", book))
                        return c.received if c else 0

                    while got() < load_rows * len(BENCH_SYMBOLS):  # the three loads (REST or WebSocket)
                        await asyncio.sleep(0.01)
                    marks["start"], marks["base"] = time.monotonic(), got()
                    marks["cpu0"] = _cpu()
                    go.set()
                    deadline = time.monotonic() + 600

                    # the end: every message of the run received AND written (sustained throughput,
                    # writer included, not just how fast the socket can be read)
                    def accounted() -> int:
                        c = emitter.counters.get(("ccxt", book))
                        return len(latencies) + (c.dropped if c else 0)

                    while accounted() < marks["base"] + messages and time.monotonic() < deadline:
                        await asyncio.sleep(0.005)
                    marks["end"], marks["count"] = time.monotonic(), got() - marks["base"]
                    marks["cpu1"] = _cpu()
                    stop.set()

                asyncio.ensure_future(watch())

            return await run_collect(
                config,
                stop,
                configure={venue: lambda ex: probe.configure(ex, list(BENCH_SYMBOLS))},
                on_started=started,
                sink_factory=TimedSink,
            )

        summary = asyncio.run(main())
    finally:
        child.kill()
        child.join(5)
        if tmp is not None:
            tmp.cleanup()
    stream = summary["per_stream"].get(f"ccxt/{book}", {})
    received = stream.get("received", 0)
    dropped = stream.get("dropped", 0)
    written = summary["written"].get(f"ccxt/{book}", 0)
    latencies.sort()

    def pct(p: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(p * len(latencies)))] / 1e6 if latencies else float("nan")
        )

    return BenchResult(
        messages=messages,
        measured=int(marks.get("count", 0)),
        seconds=marks.get("end", 0) - marks.get("start", 0),
        received=received,
        written=written,
        dropped=dropped,
        p50_ms=pct(0.50),
        p99_ms=pct(0.99),
        peak_rss_mb=self_max_rss() / 2**20,
        cpu_seconds=marks.get("cpu1", 0) - marks.get("cpu0", 0),
        queue_peak_mb=summary["queue"].get("peak_bytes", 0) / 2**20,
        queue_max_mb=summary["queue"].get("max_bytes", 0) / 2**20,
        channels=channels,
    )


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
