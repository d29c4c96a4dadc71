"""A build's process keeps glibc's mmap threshold fixed (daedalus/fsio.py fix_malloc_thresholds): a
large block (≥ 1 MiB) freed goes back to the system, and the next one is mapped again rather than carved from
the heap, where what it leaves free would stay resident. Fresh interpreters: the threshold is
per process, and this test process's has moved already."""

from __future__ import annotations

import ctypes
import platform
import subprocess
import sys

import pytest

PROBE = """
import ctypes, sys

class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == "fixed":
    from daedalus.fsio import fix_malloc_thresholds

    fix_malloc_thresholds()
mapped = libc.mallinfo2().hblks
libc.free(libc.malloc(2 << 20))  # glibc raises its threshold past 2 MiB here, unless it is fixed
block = libc.malloc(2 << 20)
print(libc.mallinfo2().hblks - mapped)
"""


def _mapped_after_a_free(mode: str, **env: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=60, env={**env}
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return int(out.stdout.strip())


glibc = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc" or not hasattr(ctypes.CDLL(None), "mallinfo2"),
    reason="glibc ≥ 2.33 (mallinfo2)",
)


@glibc
def test_a_freed_large_block_does_not_move_the_threshold() -> None:
    assert _mapped_after_a_free("plain") == 0  # glibc's own behaviour: the second block is from the heap
    assert _mapped_after_a_free("fixed") == 1


@glibc
def test_a_threshold_set_in_the_environment_is_kept() -> None:
    assert _mapped_after_a_free("fixed", MALLOC_MMAP_THRESHOLD_=str(4 << 20)) == 0
