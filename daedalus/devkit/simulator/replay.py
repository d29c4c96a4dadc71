"""The real Binance capture (tests/data/binance-spot-btcusdt-20240808.jsonl.gz), loaded for replay.

Each line is `<local receive ns> <JSON>`: combined-stream messages (`{"stream":..., "data":...}`) in
arrival order, plus one REST depth snapshot (`{"lastUpdateId":..., "bids":..., "asks":...}`) that the
diff stream is synced to. The fake Binance server replays the stream messages in their original order
at speed ×N (the gaps between receive times divided by N; speed 0 = as fast as possible) and answers
REST depth requests from a book that starts at this snapshot.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Capture:
    messages: list[tuple[int, str, dict]]  # (receive ns, stream name, payload) in arrival order
    snapshot: dict  # {"lastUpdateId", "bids", "asks"}
    symbol_id: str  # e.g. BTCUSDT

    def trades(self) -> list[dict]:
        return [p for _, s, p in self.messages if s.endswith("@trade")]

    def book_tickers(self) -> list[dict]:
        return [p for _, s, p in self.messages if s.endswith("@bookTicker")]

    def depth_updates(self) -> list[dict]:
        return [p for _, s, p in self.messages if "@depth" in s]


def load_capture(path: str | Path, limit: int | None = None) -> Capture:
    """Read a capture file; `limit` keeps only the first N stream messages (for quick tests)."""
    messages: list[tuple[int, str, dict]] = []
    snapshot: dict | None = None
    symbol_id = ""
    with gzip.open(path, "rt") as fh:
        for line in fh:
            recv, _, body = line.partition(" ")
            msg = json.loads(body)
            if "lastUpdateId" in msg:
                snapshot = msg
                continue
            stream = msg["stream"]
            messages.append((int(recv), stream, msg["data"]))
            symbol_id = symbol_id or msg["data"].get("s", "")
            if limit is not None and len(messages) >= limit:
                break
    if snapshot is None:
        raise ValueError(f"{path}: no REST depth snapshot line (lastUpdateId) in the capture")
    return Capture(messages, snapshot, symbol_id)


def paced(capture: Capture, speed: float) -> list[tuple[float, str, dict]]:
    """Messages with the delay (seconds, already divided by `speed`) to wait before sending each."""
    out: list[tuple[float, str, dict]] = []
    prev: int | None = None
    for recv, stream, payload in capture.messages:
        delay = 0.0 if prev is None or speed <= 0 else max(0, recv - prev) / 1e9 / speed
        out.append((delay, stream, payload))
        prev = recv
    return out
