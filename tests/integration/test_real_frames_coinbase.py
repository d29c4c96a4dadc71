"""Coinbase Advanced Trade: our fake's frames against Coinbase's documented example messages
(https://docs.cdp.coinbase.com/advanced-trade/docs/ws-channels: `l2_data`, `market_trades`, `ticker`,
`heartbeats`), field by field: envelope keys, event keys, level/trade/ticker keys, values as strings,
`side` spelled `bid`/`offer`. No licensed recorded Advanced Trade stream was found (cryptofeed's
Coinbase sample data is the retired Pro feed), so the documented examples are the reference
(tests/reference/coinbase_docs.py); the native client's parsers read them too
(tests/unit/test_parsers_coinbase.py).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from daedalus.devkit.simulator.coinbase import FakeCoinbase, _Peer
from daedalus.devkit.simulator.market import SimulatedMarket

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds the reference package
from reference.coinbase_docs import DOC_HEARTBEAT, DOC_L2, DOC_TICKER, DOC_TRADES  # noqa: E402


class _RecordingWS:
    closed = False

    def __init__(self) -> None:
        self.frames: list[dict] = []

    async def send_str(self, text: str) -> None:
        self.frames.append(json.loads(text))


def _fake_frames() -> list[dict]:
    market = SimulatedMarket({"BTC/USD": 60_000.0}, seed=4)
    server = FakeCoinbase(market, heartbeat_interval=0.01)
    ws = _RecordingWS()
    peer = _Peer(ws, None)  # type: ignore[arg-type]
    channels = ("level2", "market_trades", "ticker", "heartbeats")
    peer.channels = {c: {"BTC-USD"} for c in channels}
    server.peers.append(peer)

    async def run() -> None:
        for ch in ("level2", "market_trades", "ticker"):
            await server._snapshots(peer, ch, ["BTC-USD"])
        for _ in range(40):
            for ev in market.step():
                await server.publish(ev)
        hb = asyncio.ensure_future(server._heartbeats())
        await asyncio.sleep(0.05)
        hb.cancel()

    asyncio.run(run())
    return ws.frames


def _shape(frame: dict) -> tuple[Any, ...]:
    event = frame["events"][0]
    inner: set[str] = set()
    for key in ("updates", "trades", "tickers"):
        for item in event.get(key, []):
            inner |= set(item)
    return (frozenset(frame), frozenset(event), frozenset(inner))


def test_fake_frames_have_the_documented_fields() -> None:
    frames = _fake_frames()
    by_channel: dict[str, list[dict]] = {}
    for f in frames:
        by_channel.setdefault(f["channel"], []).append(f)
    for doc in (DOC_L2, DOC_TRADES, DOC_TICKER, DOC_HEARTBEAT):
        got = by_channel.get(doc["channel"])
        assert got, f"the fake sent no {doc['channel']}"
        want = _shape(doc)
        for f in got:
            if f["events"][0].get("trades") == []:
                continue  # an empty market_trades snapshot (no trade yet) has no trade to compare
            assert _shape(f) == want, (doc["channel"], _shape(f), want)
    # snapshot first, then updates, per channel with data; `sequence_num` one counter over all
    for ch in ("l2_data", "market_trades", "ticker"):
        types = [f["events"][0]["type"] for f in by_channel[ch]]
        assert types[0] == "snapshot" and set(types[1:]) == {"update"}, (ch, types[:3])
    assert [f["sequence_num"] for f in frames] == list(range(len(frames)))
    # every documented value is a string; sides as documented
    for f in by_channel["l2_data"]:
        for u in f["events"][0]["updates"]:
            assert u["side"] in ("bid", "offer") and all(isinstance(v, str) for v in u.values())
    for f in by_channel["market_trades"]:
        for t in f["events"][0]["trades"]:
            assert t["side"] in ("BUY", "SELL") and all(isinstance(v, str) for v in t.values())
    for f in by_channel["ticker"]:
        assert all(isinstance(v, str) for v in f["events"][0]["tickers"][0].values())
    assert all(isinstance(f["events"][0]["heartbeat_counter"], str) for f in by_channel["heartbeats"])
