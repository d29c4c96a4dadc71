"""A full disk stalls the sink; it never kills the collector or loses a batch unrecorded (issue 17).

What happens on ENOSPC (or EDQUOT) while a batch is written:
- the open segment is abandoned as if the process had crashed (its Parquet footer cannot be written);
  its journal holds every batch flushed before, and it is repaired (repair.py) once space returns;
- the batch is put back at the head of its buffer and retried with capped exponential backoff;
- meanwhile the sink stops draining the queue, so memory stays bounded by the queue and the
  collectors keep their sockets: past the backpressure timeout the queue drops records and counts
  them per stream as `overflow` events, written (with their counts) when space returns;
- the stall is in the health file while it lasts, and an `error` events row with its duration,
  retries and held rows is written when writing resumes.
A batch retried after its rows already reached the journal may land twice; silver deduplicates.
"""

from __future__ import annotations

import errno
import time
from dataclasses import dataclass

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
MAX_BACKOFF_SECONDS = 30.0


def is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        return True
    # pyarrow re-raises some write errors as OSError without errno, keeping the C library's text
    return isinstance(exc, OSError) and (
        "No space left on device" in str(exc) or "Disk quota exceeded" in str(exc)
    )


@dataclass
class Stall:
    """Backoff state of a sink that cannot write."""

    first_delay: float = 0.5
    since: float | None = None  # wall time of the first failure of this stall
    next_try: float = 0.0  # monotonic
    retries: int = 0
    delay: float = 0.0
    stalls: int = 0  # stalls since start (for the health file)
    last_error: str = ""

    @property
    def active(self) -> bool:
        return self.since is not None

    def hit(self, exc: BaseException) -> None:
        if self.since is None:
            self.since = time.time()
            self.stalls += 1
            self.delay = self.first_delay
        else:
            self.retries += 1
            self.delay = min(self.delay * 2, MAX_BACKOFF_SECONDS)
        self.next_try = time.monotonic() + self.delay
        self.last_error = f"{type(exc).__name__}: {exc}"[:300]

    def wait_seconds(self) -> float:
        return max(0.0, self.next_try - time.monotonic())

    def clear(self) -> tuple[float, float, int]:
        """End the stall: (since, seconds, retries)."""
        since = self.since or time.time()
        out = (since, time.time() - since, self.retries)
        self.since, self.retries, self.delay = None, 0, 0.0
        return out

    def stats(self, held_rows: int) -> dict:
        return {
            "stalled": self.active,
            "since": self.since,
            "retries": self.retries,
            "held_rows": held_rows,
            "next_retry_in": round(self.wait_seconds(), 3) if self.active else None,
            "stalls": self.stalls,
            "last_error": self.last_error or None,
        }
