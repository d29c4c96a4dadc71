"""The `events` rows the sink writes about itself: records it quarantined, a full disk it waited out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from daedalus.collector.clock import receive_ns


def quarantine_event_rows(
    source: str,
    channel: str,
    by_stream: dict[tuple[str | None, str | None], list[Any]],
    next_seq: Callable[[], int],
) -> list[dict]:
    """One `quarantine` row per (exchange, symbol) whose records of one batch were rejected."""
    now = receive_ns()
    return [
        {
            "collected_at": now // 1_000_000,
            "capture_ts": now,
            "exchange": exchange or source,
            "symbol": symbol,
            "conn_id": "sink",
            "seq": next_seq(),
            "event_type": "quarantine",
            "channel": channel,
            "close_code": None,
            "count": len(rejs),
            "interval_start": None,
            "interval_end": None,
            "detail": f"{len(rejs)} {channel} records quarantined in raw/ready/{source}/quarantine/; "
            f"first error: {rejs[0].error}"[:2000],
        }
        for (exchange, symbol), rejs in by_stream.items()
    ]


def stall_event_row(
    exchange: str, since: float, now_ns: int, retries: int, seconds: float, last_error: Any, seq: int
) -> dict:
    """The `error` row of one exchange whose batches a full disk held (written once space is back)."""
    return {
        "collected_at": now_ns // 1_000_000,
        "capture_ts": now_ns,
        "exchange": exchange,
        "symbol": None,
        "conn_id": "sink",
        "seq": seq,
        "event_type": "error",
        "channel": None,
        "close_code": None,
        "count": retries + 1,
        "interval_start": int(since * 1e9),
        "interval_end": now_ns,
        "detail": f"disk full: writes stalled for {seconds:.1f}s, {retries + 1} attempts; the held "
        f"batches are written, records the queue dropped meanwhile are in overflow events; "
        f"last error {last_error}",
    }
