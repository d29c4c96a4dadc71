"""What `daedalus collect` shows while it runs (it printed nothing until it stopped).

On a terminal: a live table, one line per stream — msgs/s, received, written, dropped, gaps and
reconnects in the last hour — redrawn every couple of seconds. Otherwise (systemd, a pipe): one log
line every `interval` seconds with the totals. Both read the health file the collector rewrites
every 2 s, so they show exactly what `daedalus status` shows and cost the collector nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from pathlib import Path
from typing import Any


def _read(path: Path) -> dict | None:
    from daedalus.collector.health import read_health
    from daedalus.errors import StorageError

    try:
        return read_health(path)
    except StorageError:
        return None  # not written yet (collectors still starting) or mid-replace


def rates(prev: dict | None, doc: dict) -> dict[str, float]:
    """msgs/s per stream between two health documents (0 for the first)."""
    if prev is None:
        return {}
    dt = float(doc.get("updated_at", 0)) - float(prev.get("updated_at", 0))
    if dt <= 0:
        return {}
    before = prev.get("streams", {})
    return {
        name: max(0.0, (s.get("received", 0) - before.get(name, {}).get("received", 0)) / dt)
        for name, s in doc.get("streams", {}).items()
    }


def stream_rows(prev: dict | None, doc: dict) -> list[tuple[str, str, str, str, str, str, str]]:
    """(stream, msgs/s, received, written, dropped, gaps/h, reconn/h) per stream."""
    r = rates(prev, doc)
    return [
        (
            name,
            f"{r.get(name, 0.0):.1f}",
            str(s.get("received", 0)),
            str(s.get("written", 0)),
            str(s.get("dropped", 0)),
            str(s.get("gaps_last_hour", 0)),
            str(s.get("reconnects_last_hour", 0)),
        )
        for name, s in doc.get("streams", {}).items()
    ]


def log_line(prev: dict | None, doc: dict) -> str:
    """One line with the totals over every stream, for logs."""
    streams = doc.get("streams", {}).values()
    total_rate = sum(rates(prev, doc).values())
    return (
        f"collect: {len(doc.get('streams', {}))} streams, {total_rate:.1f} msgs/s, "
        f"received {doc.get('received', 0)}, written {sum(s.get('written', 0) for s in streams)}, "
        f"dropped {doc.get('dropped', 0)}, gaps/h {sum(s.get('gaps_last_hour', 0) for s in streams)}, "
        f"reconnects/h {sum(s.get('reconnects_last_hour', 0) for s in streams)}, "
        f"queue {doc.get('queue_depth', 0)}/{doc.get('queue_maxsize')}"
    )


def _table(prev: dict | None, doc: dict) -> Any:
    from rich.table import Table

    table = Table(
        title=f"collecting (health {time.time() - float(doc.get('updated_at', 0)):.0f}s old) — Ctrl-C stops"
    )
    for col in ("stream", "msgs/s", "received", "written", "dropped", "gaps/h", "reconn/h"):
        table.add_column(col, justify="left" if col == "stream" else "right")
    for row in stream_rows(prev, doc):
        table.add_row(*row)
    return table


async def show_progress(
    path: Path, stop: asyncio.Event, tty: bool | None = None, interval: float = 60.0
) -> None:
    """Until `stop`: a live table on a TTY, else a log line on stderr every `interval` seconds."""
    tty = sys.stderr.isatty() if tty is None else tty
    prev: dict | None = None
    if not tty:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            doc = _read(path)
            if doc is not None:
                print(log_line(prev, doc), file=sys.stderr, flush=True)
                prev = doc
        return
    from rich.console import Console
    from rich.live import Live

    with Live(console=Console(stderr=True), auto_refresh=False, transient=False) as live:
        while not stop.is_set():
            doc = _read(path)
            if doc is not None and (prev is None or doc.get("updated_at") != prev.get("updated_at")):
                live.update(_table(prev, doc), refresh=True)
                prev = doc
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2.0)
