"""Wiring: collectors → Emitter → BoundedQueue → BronzeSink, plus the health file.

`run_collect(config, stop)` is what `daedalus collect`, `daedalus demo` and the benchmark run. Bad
configuration (unknown exchange, symbol or channel) fails in `build_collectors`, before a socket is
opened or a segment written. Shutdown order matters for "nothing lost": collectors stop first, the
emitter drains its staging buffer into the queue, and only then is the sink told to drain the queue
and close every segment into raw/ready/.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daedalus.collector.clock import resume_receive_clock
from daedalus.collector.clockwatch import exchanges_of, watch_clock
from daedalus.collector.connection import Emitter
from daedalus.collector.queue import BoundedQueue
from daedalus.errors import ConfigError
from daedalus.fsio import raw_segments_root, root_scheme


def local_root(config: Any) -> Path:
    """Where raw segments are written (daedalus.fsio.raw_segments_root decides, for `land` too)."""
    return raw_segments_root(config.storage.root, config.ingestion.local_root)


def build_collectors(
    config: Any,
    emitter: Emitter,
    configure: dict[str, Callable[[Any], None]] | None = None,
    coinbase_url: str | None = None,
) -> list[Any]:
    """One collector per ccxt exchange and one for Coinbase, per `ingestion.sources`.

    `configure` maps an exchange id to a callable applied to its ccxt client (the fake exchange uses
    it to set urls and markets); `coinbase_url` overrides the Coinbase endpoint.
    """
    ing = config.ingestion
    collectors: list[Any] = []
    if "ccxt" in ing.sources:
        from daedalus.collector.ccxt_collector import CcxtCollector
        from daedalus.collector.venues import ccxt_exchange_class

        for ex in ing.exchanges:
            ccxt_exchange_class(ex)  # unknown exchange → ExchangeError before anything starts
            collectors.append(
                CcxtCollector(
                    ex, ing.symbols, ing.channels, ing, emitter, configure=(configure or {}).get(ex)
                )
            )
    if "coinbase" in ing.sources:
        from daedalus.collector.coinbase import CoinbaseCollector

        collectors.append(CoinbaseCollector(ing.coinbase, ing, emitter, url=coinbase_url))
    if not collectors:
        raise ConfigError("ingestion.sources: nothing to collect (allowed: ccxt, coinbase)")
    return collectors


async def run_collect(
    config: Any,
    stop: asyncio.Event,
    duration: float | None = None,
    *,
    configure: dict[str, Callable[[Any], None]] | None = None,
    coinbase_url: str | None = None,
    on_started: Callable[[Emitter], Any] | None = None,
    sink_factory: Callable[..., Any] | None = None,
) -> dict:
    """Collect until `stop` is set (or `duration` seconds pass). Returns counts for a summary.

    Raises ConfigError/ExchangeError for bad configuration before anything is written.
    """
    from daedalus.fsio import skip_pyarrow_pandas_probe

    skip_pyarrow_pandas_probe()  # the collector process never needs pandas: ~50 MB less RSS

    ing = config.ingestion
    root = local_root(config)
    resume_receive_clock(root)  # after a step back the last process's clock ran ahead: stay after it
    queue = BoundedQueue(
        ing.queue_maxsize, ing.backpressure_timeout_seconds, max_bytes=int(ing.queue_max_mb * 2**20)
    )
    # staging only bridges ccxt's synchronous callback to the queue: a few seconds of messages
    emitter = Emitter(queue, staging_limit=min(ing.queue_maxsize, 10_000))
    collectors = build_collectors(config, emitter, configure, coinbase_url)
    try:
        for c in collectors:
            prepare = getattr(c, "prepare", None)
            if prepare is not None:
                await prepare()
    except BaseException:
        for c in collectors:
            close = getattr(c, "close", None)
            if close is not None:
                await close()
        raise
    # What is alive once the collectors are prepared (ccxt's exchange definitions and markets, ~240k
    # objects for one exchange) lives as long as they do; frozen, the cyclic GC stops walking it on
    # every full pass: ~10 % of the collector's CPU in `daedalus bench collect` (unfrozen at the end).
    gc.collect()
    gc.freeze()
    try:
        return await _run_prepared(
            config, stop, duration, collectors, emitter, queue, root, on_started, sink_factory
        )
    finally:
        gc.unfreeze()


async def _run_prepared(
    config: Any,
    stop: asyncio.Event,
    duration: float | None,
    collectors: list[Any],
    emitter: Emitter,
    queue: BoundedQueue,
    root: Path,
    on_started: Callable[[Emitter], Any] | None,
    sink_factory: Callable[..., Any] | None,
) -> dict:
    from daedalus.collector.sink import BronzeSink

    ing = config.ingestion
    on_s3 = root_scheme(config.storage.root) == "s3"  # the uploader speaks S3 only
    s3_root = config.storage.root if (ing.upload_to_s3 and on_s3) else None
    make_sink = sink_factory or BronzeSink  # the benchmark passes a subclass that times flushes
    sink = make_sink(root, ing, s3_root=s3_root, s3=config.s3) if s3_root else make_sink(root, ing)

    collect_stop = asyncio.Event()
    sink_stop = asyncio.Event()
    health_stop = asyncio.Event()  # set after the sink closed its segments: the last health write sees them
    started = time.monotonic()
    sink_task = asyncio.ensure_future(sink.run(queue, sink_stop))
    pump_task = asyncio.ensure_future(emitter.pump(collect_stop))
    collector_tasks = [asyncio.ensure_future(c.run(collect_stop)) for c in collectors]
    # a step of the host's clock shifts every capture_ts after it: recorded in events (clockwatch.py)
    clock_task = asyncio.ensure_future(
        watch_clock(emitter, exchanges_of(collectors), collect_stop, raw_root=root)
    )
    health_task = None
    try:
        from daedalus.collector.health import health_path, run_health_writer

        path = health_path(root, ing.health_file)
        health_task = asyncio.ensure_future(
            run_health_writer(path, queue, sink, health_stop, extra=lambda: {"collector": emitter.totals()})
        )
    except ImportError:  # pragma: no cover - health.py is optional
        path = None
    if on_started is not None:
        on_started(emitter)  # tests and the benchmark watch the counters

    waiters = [asyncio.ensure_future(stop.wait())]
    if duration is not None:
        waiters.append(asyncio.ensure_future(asyncio.sleep(duration)))
    error: BaseException | None = None
    try:
        done, _ = await asyncio.wait(
            [*waiters, *collector_tasks, sink_task], return_when=asyncio.FIRST_COMPLETED
        )
        for t in done:
            if t in collector_tasks or t is sink_task:
                error = t.exception() if not t.cancelled() else None
                if error is not None:
                    break
    finally:
        for w in waiters:
            w.cancel()
        collect_stop.set()
        results = await asyncio.gather(*collector_tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await clock_task
        await pump_task
        await emitter.flush()
        sink_stop.set()
        with contextlib.suppress(Exception):
            await sink_task
        health_stop.set()
        if health_task is not None:
            with contextlib.suppress(Exception):
                await health_task
    if error is None:
        error = next(
            (
                r
                for r in results
                if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)
            ),
            None,
        )
    if error is not None:
        raise error
    qstats = queue.stats()
    sstats = sink.stats()
    return {
        "seconds": time.monotonic() - started,
        "root": str(root),
        "health_file": str(path) if path else None,
        "collector": emitter.totals(),
        "per_stream": {f"{s}/{c}": vars(v) for (s, c), v in emitter.counters.items()},
        "queue": {
            k: qstats[k] for k in ("received", "dropped", "overflow_events", "peak_bytes", "max_bytes")
        },
        "written": {k: v["written"] for k, v in sstats.get("channels", {}).items()},
    }
