"""A build's process has DuckDB's jemalloc return freed pages outright, not mark them MADV_FREE first
(daedalus/fsio.py tune_duckdb_allocator): such pages stay in RSS until the kernel is short of memory.
Fresh interpreters: jemalloc reads its configuration once, when DuckDB is loaded."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import ctypes, glob, os, sys
if sys.argv[1] == "tuned":
    from daedalus.fsio import tune_duckdb_allocator

    tune_duckdb_allocator()
import duckdb

so = glob.glob(os.path.join(os.path.dirname(duckdb.__file__), "..", "_duckdb*.so"))
lib = ctypes.CDLL(so[0]) if so else None
if lib is None or not hasattr(lib, "duckdb_je_mallctl"):
    print("none")
    sys.exit(0)
duckdb.sql("SELECT 1").fetchall()
value, size = ctypes.c_ssize_t(0), ctypes.c_size_t(8)
rc = lib.duckdb_je_mallctl(b"opt.muzzy_decay_ms", ctypes.byref(value), ctypes.byref(size), None, ctypes.c_size_t(0))
print(value.value if rc == 0 else "none")
"""


def _muzzy_decay(mode: str, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k != "DUCKDB_JE_MALLOC_CONF"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=60, env={**base, **env}
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def test_freed_pages_go_straight_back() -> None:
    plain = _muzzy_decay("plain")
    if plain == "none":
        pytest.skip("this DuckDB has no jemalloc (not Linux)")
    assert plain != "0"  # DuckDB's own default keeps MADV_FREE pages for a while
    assert _muzzy_decay("tuned") == "0"


def test_a_setting_made_in_the_environment_is_kept() -> None:
    if _muzzy_decay("plain") == "none":
        pytest.skip("this DuckDB has no jemalloc (not Linux)")
    assert _muzzy_decay("tuned", DUCKDB_JE_MALLOC_CONF="muzzy_decay_ms:500") == "500"


def test_the_cli_tunes_it_before_duckdb_loads(tmp_path: object) -> None:
    """`daedalus` (any verb but collect) sets it before anything imports DuckDB."""
    code = (
        "import os, sys\n"
        "from daedalus.cli.app import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
        "print(os.environ.get('DUCKDB_JE_MALLOC_CONF'), 'duckdb' in sys.modules)\n"
    )
    base = {k: v for k, v in os.environ.items() if k != "DUCKDB_JE_MALLOC_CONF"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=base)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "muzzy_decay_ms:0 False"
