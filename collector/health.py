"""The collector's health file: one JSON document, rewritten atomically every few seconds.

Per stream (`source/channel/exchange/symbol`): seconds since the last message, received / written /
dropped / quarantined, gaps and reconnects in the last hour; overall: queue depth, bytes written,
upload backlog. `daedalus status` reads it (`read_health` + `format_health`), so a Pi's operator can
check the collector without attaching to it. Atomic = temp file + fsync + rename, so a reader never
sees half a document.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from daedalus.errors import StorageError

DEFAULT_HEALTH_FILE = "_state/collector_health.json"
STALE_AFTER_SECONDS = 30.0  # a health file older than this means the collector is not running


def health_path(root: str | Path, health_file: str | None = None) -> Path:
    return Path(health_file) if health_file else Path(root) / DEFAULT_HEALTH_FILE


def build_health(queue_stats: dict, sink_stats: dict, extra: dict | None = None) -> dict:
    """Merge the queue's (received, dropped, last message) and the sink's (written, quarantined,
    gaps/reconnects) per-stream counters into one document."""
    streams: dict[str, dict[str, Any]] = {}
    for name, q in queue_stats.get("streams", {}).items():
        streams[name] = {
            "seconds_since_last_message": q["seconds_since_last_message"],
            "received": q["received"],
            "dropped": q["dropped"],
            "written": 0,
            "quarantined": 0,
            "gaps_last_hour": 0,
            "reconnects_last_hour": 0,
        }
    for name, s in sink_stats.get("streams", {}).items():
        entry = streams.setdefault(
            name,
            {"seconds_since_last_message": None, "received": 0, "dropped": 0},
        )
        entry.update(s)
    _spread_connection_events(streams)
    channels = sink_stats.get("channels", {})
    return {
        "updated_at": time.time(),
        "pid": os.getpid(),
        "queue_depth": queue_stats.get("depth", 0),
        "queue_maxsize": queue_stats.get("maxsize"),
        "received": queue_stats.get("received", 0),
        "dropped": queue_stats.get("dropped", 0),
        "bytes_written": sum(c.get("bytes", 0) for c in channels.values()),
        "segments_closed": sum(c.get("segments", 0) for c in channels.values()),
        "upload_backlog": sink_stats.get("upload_backlog", 0),
        "upload_error": sink_stats.get("upload_error"),
        "repairs": sink_stats.get("repairs", 0),
        "disk_full": sink_stats.get("disk_full"),
        "channels": channels,
        "streams": dict(sorted(streams.items())),
        **(extra or {}),
    }


def _spread_connection_events(streams: dict[str, dict[str, Any]]) -> None:
    """A disconnect of a whole connection is an events row without channel or symbol (stream
    `source/-/exchange/-`): it interrupts every stream of that source and exchange, so each of them
    counts it (`status` showed `reconn/h 0` while `events` held 13 disconnects)."""
    wide = []
    for name, entry in streams.items():
        source, channel, exchange, symbol = (name.split("/", 3) + ["-"] * 4)[:4]
        if channel == "-" or symbol == "-":
            wide.append((source, channel, exchange, symbol, entry))
    for name, entry in streams.items():
        source, channel, exchange, symbol = (name.split("/", 3) + ["-"] * 4)[:4]
        if channel == "-" or symbol == "-" or channel == "events":
            continue
        for w_source, w_channel, w_exchange, w_symbol, w in wide:
            if (
                (w_source, w_exchange) == (source, exchange)
                and w_channel in ("-", channel)
                and w_symbol in ("-", symbol)
            ):
                for key in ("reconnects_last_hour", "gaps_last_hour"):
                    entry[key] = entry.get(key, 0) + w.get(key, 0)


def write_health(path: str | Path, doc: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=False, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


async def run_health_writer(
    path: str | Path,
    queue: Any,
    sink: Any,
    stop: asyncio.Event,
    interval: float = 2.0,
    extra: Any = None,
) -> None:
    """Rewrite the health file every `interval` seconds until `stop`, and once more at the end.

    `extra` is an optional callable returning more top-level keys (e.g. the collectors' own stats)."""
    while True:
        try:
            write_health(path, build_health(queue.stats(), sink.stats(), extra() if extra else None))
        except OSError:
            # A full disk must not stop the collector: the next write (space permitting) catches up;
            # the half-written temp file goes so it does not hold the last free blocks.
            Path(path).with_name(f".{Path(path).name}.{os.getpid()}.tmp").unlink(missing_ok=True)
        if stop.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


def read_health(path: str | Path) -> dict:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise StorageError(
            f"{path}: no collector health file; is `daedalus collect` running with this config?"
        ) from None
    except (OSError, ValueError) as e:
        raise StorageError(f"{path}: unreadable collector health file ({e})") from None


def is_stale(doc: dict, now: float | None = None) -> bool:
    """True when the collector has not rewritten its health file for STALE_AFTER_SECONDS."""
    now = time.time() if now is None else now
    return now - float(doc.get("updated_at", 0)) > STALE_AFTER_SECONDS


def format_health(doc: dict, now: float | None = None) -> str:
    """Human-readable summary for `daedalus status`."""
    now = time.time() if now is None else now
    age = now - float(doc.get("updated_at", 0))
    state = f"NOT UPDATED for {age:.0f}s (collector stopped?)" if is_stale(doc, now) else "running"
    lines = [
        f"collector: {state} (pid {doc.get('pid')}, health written {age:.1f}s ago)",
        f"queue depth {doc.get('queue_depth')}/{doc.get('queue_maxsize')}  received {doc.get('received')}  "
        f"dropped {doc.get('dropped')}  bytes written {doc.get('bytes_written')}  "
        f"segments closed {doc.get('segments_closed')}  upload backlog {doc.get('upload_backlog')}",
    ]
    if doc.get("upload_error"):
        lines.append(f"last upload error: {doc['upload_error']}")
    header = (
        f"{'stream':<44} {'last msg':>9} {'received':>9} {'written':>9} {'dropped':>8} "
        f"{'quar':>5} {'gaps/h':>6} {'reconn/h':>8}"
    )
    lines.append(header)
    for name, s in doc.get("streams", {}).items():
        last = s.get("seconds_since_last_message")
        last_txt = "-" if last is None else f"{last + max(0.0, age):.1f}s"
        lines.append(
            f"{name:<44} {last_txt:>9} {s.get('received', 0):>9} {s.get('written', 0):>9} "
            f"{s.get('dropped', 0):>8} {s.get('quarantined', 0):>5} {s.get('gaps_last_hour', 0):>6} "
            f"{s.get('reconnects_last_hour', 0):>8}"
        )
    return "\n".join(lines)
