"""Measurement helpers of `daedalus bench`: peak RSS of a process tree, timers, worker processes, JSON.

Peak memory is sampled from outside: a thread polls the RSS of a process and all its descendants
(psutil) and keeps the largest sum seen. Sampling can miss a spike shorter than the interval, so a
worker also reports its own `ru_maxrss` (exact for that one process) and the figure used is the larger
of the two. Every measured build runs in a fresh worker process, so one scenario's allocations
(numba, Arrow buffers, DuckDB caches) never inflate the next one's peak.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

RESULT_MARK = "DAEDALUS-BENCH-RESULT "
"""Prefix of the one stdout line a worker writes its JSON result on (anything else is ignored)."""


def tree_rss(proc: psutil.Process, include_root: bool = True) -> int:
    """RSS in bytes of `proc` and every descendant alive right now (processes gone mid-walk count 0)."""
    return tree_memory(proc, include_root)[0]


def tree_memory(proc: psutil.Process, include_root: bool = True) -> tuple[int, int]:
    """(RSS, private) in bytes of `proc` and its descendants alive right now. Private = RSS less its
    file-backed and shared pages (Linux: RssAnon): the memory the process itself allocated. The rest of
    RSS is mostly the code of the shared libraries (DuckDB, numba's LLVM, Arrow: ~150–250 MB), clean
    pages the kernel can drop and read back, whose resident share follows the page cache, not the build
    (the same build measured ~100 MB apart in two fresh venvs). Elsewhere private = RSS."""
    members = [proc] if include_root else []
    with contextlib.suppress(psutil.Error):
        members += proc.children(recursive=True)
    rss = private = 0
    for p in members:
        try:
            m = p.memory_info()
        except psutil.Error:
            continue
        rss += m.rss
        private += m.rss - getattr(m, "shared", 0)
    return rss, private


def dir_bytes(path: str | Path) -> int:
    """Total size of the regular files under `path` (0 when it does not exist); symlinks not followed."""
    total = 0
    for base, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(base, name))
            except FileNotFoundError:  # removed while we walk (a build replacing files)
                continue
            if not os.path.islink(os.path.join(base, name)):
                total += st.st_size
    return total


class PeakRSS:
    """Largest RSS of a process tree seen while active: `with PeakRSS(pid) as m: ...; m.peak`.

    Also keeps the largest size seen of `watch_dir` (e.g. DuckDB's spill directory), sampled every
    `dir_every` samples because walking a directory costs more than reading RSS.
    """

    def __init__(
        self,
        pid: int | None = None,
        interval: float = 0.02,
        include_root: bool = True,
        watch_dir: str | Path | None = None,
        dir_every: int = 10,
    ) -> None:
        self.proc = psutil.Process(pid if pid is not None else os.getpid())
        self.interval = interval
        self.include_root = include_root
        self.watch_dir = Path(watch_dir) if watch_dir is not None else None
        self.dir_every = max(1, dir_every)
        self.peak = 0
        self.peak_private = 0
        self.peak_dir_bytes = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> int:
        rss, private = tree_memory(self.proc, self.include_root)
        self.peak = max(self.peak, rss)
        self.peak_private = max(self.peak_private, private)
        if self.watch_dir is not None and self.samples % self.dir_every == 0:
            self.peak_dir_bytes = max(self.peak_dir_bytes, dir_bytes(self.watch_dir))
        self.samples += 1
        return rss

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def start(self) -> PeakRSS:
        self.sample()
        self._thread = threading.Thread(target=self._run, name="peak-rss", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> int:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.proc.is_running():  # one last look: the block may have allocated since the last sample
            with contextlib.suppress(psutil.Error):
                self.sample()
        return self.peak

    def __enter__(self) -> PeakRSS:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class Timer:
    """Wall time of a block: `with Timer() as t: ...; t.seconds`. The clock is injectable for tests."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.start = 0.0
        self.seconds = 0.0

    def __enter__(self) -> Timer:
        self.start = self.clock()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.seconds = self.clock() - self.start


def median(values: Iterable[float]) -> float:
    vals = [v for v in values if v == v]  # NaN-free
    return statistics.median(vals) if vals else float("nan")


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is not positive."""
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def self_max_rss() -> int:
    """Peak RSS of this process in bytes.

    On Linux this is VmHWM, the high-water mark of the current address space: ru_maxrss survives
    fork + exec, so a worker started from a large parent (a test runner at 1 GB) would report the
    parent's size. Elsewhere ru_maxrss (KiB on Linux, bytes on macOS).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


@dataclass
class WorkerRun:
    """What one worker process did: its JSON result (or error), wall time and memory."""

    returncode: int
    wall_seconds: float
    peak_rss: int
    peak_dir_bytes: int = 0
    result: dict[str, Any] = field(default_factory=dict)
    stderr_tail: str = ""
    peak_private: int = 0
    """Largest private memory (RSS less file-backed pages) sampled: see `tree_memory`."""

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.result.get("error")

    @property
    def error(self) -> str | None:
        if self.ok:
            return None
        if self.result.get("error"):
            return str(self.result["error"])
        lines = [ln for ln in self.stderr_tail.splitlines() if ln.strip()]
        return f"exit {self.returncode}: {lines[-1] if lines else 'no output'}"


def parse_result(stdout: str) -> dict[str, Any]:
    """The JSON a worker printed after RESULT_MARK (the last such line); {} when there is none."""
    found: dict[str, Any] = {}
    for line in stdout.splitlines():
        if line.startswith(RESULT_MARK):
            found = json.loads(line[len(RESULT_MARK) :])
    return found


def emit_result(doc: dict[str, Any]) -> None:
    """Worker side of parse_result."""
    sys.stdout.write(RESULT_MARK + json.dumps(doc, default=str) + "\n")
    sys.stdout.flush()


def python_flags() -> list[str]:
    """Interpreter flags of every process the bench starts: `-P` keeps the working directory off
    sys.path (a `daedalus/` folder there would shadow the installed package)."""
    return ["-P"]


def run_worker(
    args: list[str],
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    watch_dir: str | Path | None = None,
    interval: float = 0.05,
) -> WorkerRun:
    """Run `python -P <args>` in a fresh process, sampling the peak RSS of its process tree.

    `-P`: the working directory is not put on sys.path, so `-m daedalus...` imports the installed
    package even when run from a folder holding a `daedalus/` directory (a checkout's parent, a
    scratch copy), which would otherwise shadow it. The figure is max(sampled tree peak, the worker's
    own ru_maxrss if it reports `max_rss`).
    """
    full_env = {**os.environ, **(env or {})}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, *python_flags(), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
    )
    sampler = PeakRSS(proc.pid, interval=interval, watch_dir=watch_dir)
    with contextlib.suppress(psutil.NoSuchProcess):  # exited before the first sample
        sampler.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        err += f"\ntimed out after {timeout} s"
    finally:
        sampler.stop()
    wall = time.perf_counter() - t0
    result = parse_result(out)
    peak = max(sampler.peak, int(result.get("max_rss", 0) or 0))
    return WorkerRun(
        proc.returncode if proc.returncode is not None else -1,
        wall,
        peak,
        sampler.peak_dir_bytes,
        result,
        err[-4000:],
        sampler.peak_private,
    )


def write_json(path: str | Path, doc: dict[str, Any]) -> None:
    """Write `doc` as indented JSON atomically (temp file + rename)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    os.replace(tmp, p)


MB = 1024 * 1024


def mb(n_bytes: float | None) -> float | None:
    return None if n_bytes is None else n_bytes / MB


FLOOR_SCANS = 7
"""Timed floor scans per worker (after one untimed warm-up): a single 0.1–0.4 s scan moves by 2x with
a neighbour's load, and every ratio of the run divides by it, so it is the median of several."""


def spread(times: list[float]) -> dict[str, float] | None:
    """Median, min, max and (max - min) / median of a list of timed scans, None when empty."""
    vals = [t for t in times if t == t]
    if not vals:
        return None
    mid = statistics.median(vals)
    return {
        "median": mid,
        "min": min(vals),
        "max": max(vals),
        "spread": (max(vals) - min(vals)) / mid if mid > 0 else float("nan"),
        "scans": len(vals),
    }
