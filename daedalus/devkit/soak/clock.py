"""The `host_clock_step` fault: the collection child's wall clock steps, its monotonic clock does not
(as an NTP step does), through libfaketime (issue 24).

The child runs with LD_PRELOAD=libfaketimeMT and FAKETIME_TIMESTAMP_FILE (re-read every second:
FAKETIME_CACHE_DURATION=1; FAKETIME_NO_CACHE=1 would read it on every clock call, slowing the
collector several-fold) holding an offset such as `+120s`; FAKETIME_DONT_FAKE_MONOTONIC=1 leaves
CLOCK_MONOTONIC alone, which asyncio's timers use. libfaketime 0.9.10 with that setting makes
`time.sleep` fail with EINVAL (its clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) path converts
the deadline wrongly), so the child's `time.sleep` waits in `select` instead (`patch_sleep`): a flaw
of the interposer, not of what is measured.
"""

from __future__ import annotations

import glob
import os
import select
import time
from pathlib import Path

CLOCK_FILE_ENV = "FAKETIME_TIMESTAMP_FILE"


def libfaketime() -> str | None:
    """The multi-threaded libfaketime here, or None (Debian: `apt-get install libfaketime`)."""
    for pattern in ("/usr/lib/*/faketime/libfaketimeMT.so.1", "/usr/local/lib/faketime/libfaketimeMT.so.1"):
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def faketime_env(lib: str, clock_file: Path) -> dict[str, str]:
    """The environment of a child whose wall clock follows `clock_file` (an offset, `+0` at first)."""
    clock_file.write_text("+0\n")
    return {
        "LD_PRELOAD": lib,
        CLOCK_FILE_ENV: str(clock_file),
        # re-read every second, not on every call: FAKETIME_NO_CACHE=1 stalled the child's event loop
        # (its feeds fell to a tenth of their rate and went stale with no clock step at all)
        "FAKETIME_CACHE_DURATION": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "DONT_FAKE_MONOTONIC": "1",  # the older spelling
    }


def step_host_clock(offset_s: int) -> None:
    """Set this process's wall-clock offset from the true time (the child calls it on itself)."""
    path = Path(os.environ[CLOCK_FILE_ENV])
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{offset_s:+d}s\n")
    os.replace(tmp, path)


def patch_sleep() -> None:
    """`time.sleep` through `select` (see the module doc), only under libfaketime."""
    if CLOCK_FILE_ENV not in os.environ:
        return

    def sleep(seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            select.select([], [], [], left)

    time.sleep = sleep
