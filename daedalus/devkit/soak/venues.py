"""One soak collection cycle in a child process (`python -m daedalus.devkit.soak.venues ARGS`), so the
soak can kill -9 a real collector: the fake venues of `daedalus demo` on one simulated market, the
real collectors, and one venue fault injected a third of the way in. It writes a JSON report: the
fault (kind, venue, symbol, wall time), each venue's true book at the end (the fakes know their
books: the market stops, the collectors drain, then the books are read), the simulated clock, and
this process's peak RSS and open fds.

Venue faults: disconnect (the server aborts its sockets), dropped_frames (sequence numbers skipped:
Binance U/u, OKX seqId, Bybit u, Coinbase sequence_num), checksum (OKX, Kraken CRC32 wrong),
stale_feed (the server keeps the sockets and sends nothing), rest_429 / rest_error / rest_timeout
(Binance's REST depth answers 429 + Retry-After, 500, or slower than the client's timeout, right
after a dropped diff makes the client ask for one), clock_step (the venues' clock jumps 90 s ahead),
disk_full (the filesystem of raw/ full for 3 s: the soak mounts a small tmpfs there when it may).
`speed` runs the simulated clock faster than the wall clock: exchange time = start + speed × wall time
elapsed (each step at least 20 ms × speed later than the one before).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from daedalus.collector.clock import receive_ns
from daedalus.devkit.simulator.binance import FakeBinance, binance_id
from daedalus.devkit.simulator.coinbase import FakeCoinbase
from daedalus.devkit.simulator.wsfake import publish_step

VENUE_FAULTS = (
    "disconnect",
    "dropped_frames",
    "checksum",
    "stale_feed",
    "rest_429",
    "rest_error",
    "rest_timeout",
    "clock_step",
    "disk_full",
    "host_clock_step",
)
# which fake venues each fault can hit (the others have no such wire feature)
FAULT_VENUES = {
    "disconnect": ("binance", "okx", "bybit", "kraken", "coinbase"),
    "dropped_frames": ("binance", "okx", "bybit", "coinbase"),
    "checksum": ("okx", "kraken"),
    "stale_feed": ("binance", "okx", "bybit", "kraken", "coinbase"),
    "rest_429": ("binance",),
    "rest_error": ("binance",),
    "rest_timeout": ("binance",),
    "clock_step": ("all",),
    "disk_full": ("all",),
    "host_clock_step": ("all",),
}
DISK_FULL_SECONDS = 3.0  # how long the raw folder's filesystem stays full
STALE_AFTER_SECONDS = 3.0  # the soak's ingestion.stale_after_seconds: a stale feed is found quickly
REST_TIMEOUT_MS = 2_000  # ccxt's timeout for Binance here: a slow answer is a timeout, not a wait
CLOCK_STEP_MS = 90_000
# host_clock_step: this process's wall clock (CLOCK_REALTIME, under libfaketime: soak/clock.py) steps
# forward, then back to the true time HOST_CLOCK_BACK_AFTER_S later (an NTP correction of both kinds)
HOST_CLOCK_STEP_S = 120
HOST_CLOCK_BACK_AFTER_S = 2.0
# a step past ccxt's ping-pong keepalive ends its sockets (sessions end, `disconnect` events, the
# books resync): the cycle runs this much longer so the books are served again before the market stops
HOST_CLOCK_RECOVERY_S = 8.0
BOOK_LEVELS = 10  # the top levels per side compared with the served book
DRAIN_SECONDS = 1.5  # after the market stops: what was sent reaches the collectors
DRAIN_MAX_SECONDS = 20.0  # ...and longer while records still arrive (a slow, loaded collector)


class FaultyBinance(FakeBinance):
    """Binance whose REST depth can fail: `rest_faults` holds what the next requests get."""

    def __init__(self) -> None:
        super().__init__()
        self.rest_faults: list[str] = []

    async def depth_handler(self, request: web.Request) -> web.Response:
        if self.rest_faults:
            kind = self.rest_faults.pop(0)
            if kind == "timeout":
                await asyncio.sleep(REST_TIMEOUT_MS / 1000 + 1.5)
            else:
                return web.json_response(
                    {"code": -1001, "msg": "Internal error; unable to process your request."}, status=500
                )
        return await super().depth_handler(request)


def soak_collect_config(root: Path, seconds: float) -> Any:
    from daedalus.devkit.demo import demo_config

    config = demo_config(root, seconds)
    config.ingestion.stale_after_seconds = STALE_AFTER_SECONDS
    return config


def true_books(fakes: dict[str, Any], market: Any) -> dict[str, dict[str, dict[str, list]]]:
    """Each venue's book now, top BOOK_LEVELS per side: [[price, size], ...]."""
    out: dict[str, dict[str, dict[str, list]]] = {}
    for venue, fake in fakes.items():
        for symbol in market.books:
            if venue == "binance":
                sb = fake.books[binance_id(symbol)]
                bids = sorted(((float(p), float(q)) for p, q in sb.bids.items()), reverse=True)
                asks = sorted((float(p), float(q)) for p, q in sb.asks.items())
            elif venue == "coinbase":
                book = market.books[symbol]
                bids, asks = book.top("bid", BOOK_LEVELS), book.top("ask", BOOK_LEVELS)
            else:
                book = fake.books[symbol]
                bids, asks = book.top("bid", BOOK_LEVELS), book.top("ask", BOOK_LEVELS)
            out.setdefault(venue, {})[symbol] = {
                "bids": [list(x) for x in bids[:BOOK_LEVELS]],
                "asks": [list(x) for x in asks[:BOOK_LEVELS]],
            }
    return out


def fill_disk(folder: Path, seconds: float) -> None:
    """Fill the filesystem of `folder` (the soak mounts a tmpfs on raw/ when it can) and free it
    `seconds` later: the collector's writes fail with ENOSPC meanwhile."""
    filler = folder / ".soak-disk-filler"
    st = os.statvfs(folder)
    with open(filler, "wb") as f:
        with contextlib.suppress(OSError):  # what it got stays allocated
            os.posix_fallocate(f.fileno(), 0, st.f_bavail * st.f_frsize)
        try:  # the last blocks (fallocate leaves a margin on some filesystems)
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    asyncio.get_running_loop().call_later(seconds, lambda: filler.unlink(missing_ok=True))


async def inject(
    kind: str, venue: str, symbol: str, fakes: dict[str, Any], clock: dict[str, int], raw_dir: Path
) -> None:
    fake = fakes.get(venue)
    if kind == "disconnect":
        await fake.drop_connections()
    elif kind == "dropped_frames":
        if venue == "binance":
            fake.skip_depth(binance_id(symbol), 3)
        elif venue == "coinbase":
            fake.skip_sequence(3)
        else:
            fake.skip_book_updates(symbol, 3)
    elif kind == "checksum":
        fake.corrupt_checksum(symbol)
    elif kind == "stale_feed":
        for peer in fake.peers:  # open sockets, nothing sent (a dead NAT, a stuck venue)
            peer.muted = True
    elif kind in ("rest_429", "rest_error", "rest_timeout"):
        if kind == "rest_429":
            fake.rate_limit_rest(1, 1.0)
        else:
            fake.rest_faults += ["error" if kind == "rest_error" else "timeout"]
        fake.skip_depth(binance_id(symbol), 1)  # the client resyncs: it needs a REST snapshot now
    elif kind == "clock_step":
        clock["offset_ms"] += CLOCK_STEP_MS
    elif kind == "disk_full":
        fill_disk(raw_dir, DISK_FULL_SECONDS)
    elif kind == "host_clock_step":
        from daedalus.devkit.soak.clock import step_host_clock

        step_host_clock(HOST_CLOCK_STEP_S)
        asyncio.get_running_loop().call_later(HOST_CLOCK_BACK_AFTER_S, step_host_clock, 0)
    else:
        raise ValueError(f"unknown venue fault {kind}")


async def _subscribed(fakes: dict[str, Any], n_symbols: int, collector: asyncio.Future) -> None:
    """Until every venue has the books of every symbol subscribed (at most 60 s)."""

    def books(fake: Any) -> int:
        if isinstance(fake, FakeBinance):  # streams
            return len({s for p in fake.peers for s in p.streams if "@depth" in s})
        if isinstance(fake, FakeCoinbase):  # channel -> products
            return len({x for p in fake.peers for x in p.channels.get("level2", ())})
        return len({t for p in fake.peers for t in p.topics if "book" in t.lower()})

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not collector.done():
        if all(books(f) >= n_symbols for f in fakes.values()):
            return
        await asyncio.sleep(0.1)


async def _drained(emitters: list[Any], collector: asyncio.Future) -> None:
    """After the market stopped: DRAIN_SECONDS, then until the collectors received nothing new for
    DRAIN_SECONDS (at most DRAIN_MAX_SECONDS): a loaded collector still working through its sockets'
    backlog would otherwise serve a book older than the fake's last."""

    def received() -> int:
        return sum(e.totals()["received"] for e in emitters)

    deadline = time.monotonic() + DRAIN_MAX_SECONDS
    last = received()
    while time.monotonic() < deadline and not collector.done():
        await asyncio.sleep(DRAIN_SECONDS)
        now = received()
        if now == last:
            return
        last = now


async def collect_cycle(
    root: Path, seconds: float, seed: int, fault: str, start_ms: int, speed: float, out: Path
) -> dict:
    from daedalus.collector.pipeline import run_collect
    from daedalus.devkit.demo import DEMO_SYMBOLS, STEP_MS
    from daedalus.devkit.simulator.binance import spot_market
    from daedalus.devkit.simulator.bybit import FakeBybit
    from daedalus.devkit.simulator.kraken import FakeKraken
    from daedalus.devkit.simulator.market import SimulatedMarket
    from daedalus.devkit.simulator.okx import FakeOkx

    rng = random.Random(seed)
    config = soak_collect_config(root, seconds)
    market = SimulatedMarket(DEMO_SYMBOLS, seed=seed, start_ms=start_ms, step_ms=round(STEP_MS * speed))
    binance = await FaultyBinance().start()
    binance.load_market(market)
    coinbase = await FakeCoinbase(market).start()
    venues = {"okx": FakeOkx(), "bybit": FakeBybit(), "kraken": FakeKraken()}
    for fake in venues.values():
        fake.record = False
        await fake.start()
        fake.load_market(market)
    fakes = {"binance": binance, **venues, "coinbase": coinbase}
    config = config.model_copy(deep=True)
    config.ingestion.exchange_options = {
        **config.ingestion.exchange_options,
        "binance": {**binance.exchange_options(), "params": {"timeout": REST_TIMEOUT_MS}},
    }
    configure = {"binance": lambda ex: ex.set_markets([spot_market(s) for s in DEMO_SYMBOLS])}
    for name, fake in venues.items():
        configure[name] = lambda ex, fake=fake: fake.configure(ex, list(DEMO_SYMBOLS), market)
    report: dict[str, Any] = {"fault": None}
    if fault != "none":
        venue = rng.choice(FAULT_VENUES[fault])
        report["fault"] = {"kind": fault, "venue": venue, "symbol": rng.choice(list(DEMO_SYMBOLS))}
    stop, market_stop = asyncio.Event(), asyncio.Event()
    fault_at = float("inf")  # set once the collectors are subscribed

    # the venues' clock: `speed` × the wall clock since the start, whatever the step rate (a loaded
    # machine steps slower), plus the clock steps injected
    clock = {"offset_ms": 0}
    wall0 = time.monotonic()

    async def feed() -> None:
        while not market_stop.is_set():
            target = start_ms + int((time.monotonic() - wall0) * speed * 1000) + clock["offset_ms"]
            market.now_ms = max(market.now_ms, target - market.step_ms)
            if report["fault"] and "at_ms" not in report["fault"] and time.monotonic() >= fault_at:
                f = report["fault"]
                f["at_ms"] = receive_ns() // 1_000_000  # on the collector's clock: the checks read capture_ts
                await inject(f["kind"], f["venue"], f["symbol"], fakes, clock, root / "raw")
            await publish_step(market, binance, venues.values(), coinbase)
            await asyncio.sleep(STEP_MS / 1000)

    emitters: list[Any] = []
    collector = asyncio.ensure_future(
        run_collect(config, stop, configure=configure, coinbase_url=coinbase.url, on_started=emitters.append)
    )
    feeder = asyncio.ensure_future(feed())
    try:
        await _subscribed(fakes, len(DEMO_SYMBOLS), collector)
        fault_at = time.monotonic() + seconds / 3  # a fault before the subscriptions would hit nothing
        await asyncio.sleep(seconds + (HOST_CLOCK_RECOVERY_S if fault == "host_clock_step" else 0.0))
        market_stop.set()
        await feeder
        await _drained(emitters, collector)
        report["end_ms"] = receive_ns() // 1_000_000
        report["books"] = true_books(fakes, market)
        report["sim_end_ms"] = market.now_ms
        stop.set()
        report["collect"] = await collector
    finally:
        for fake in fakes.values():
            await fake.stop()
    import resource

    report["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report["fds"] = len(os.listdir("/proc/self/fd"))
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, default=str))
    os.replace(tmp, out)
    return report


def main(argv: list[str]) -> None:
    from daedalus.devkit.soak.clock import patch_sleep

    a = json.loads(argv[0])
    patch_sleep()
    asyncio.run(
        collect_cycle(
            Path(a["root"]), a["seconds"], a["seed"], a["fault"], a["start_ms"], a["speed"], Path(a["out"])
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
