"""A build process allocates pyarrow's buffers with malloc (daedalus/fsio.py `use_system_arrow_pool`:
mimalloc kept what each model freed, ~100 MB more peak RSS at the Pi profile); a pool the user chose
stays, and the collector keeps pyarrow's default."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import sys
from daedalus.cli import app
sys.argv = ["daedalus", *sys.argv[1:]]
try:
    app.main()
except SystemExit:
    pass
import pyarrow
print("POOL", pyarrow.default_memory_pool().backend_name)
"""


def _pool(args: list[str], env: dict[str, str] | None = None) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env={**environ, **(env or {})}
    ).stdout
    return [line.split()[1] for line in out.splitlines() if line.startswith("POOL")][0]


def test_a_build_command_allocates_with_malloc() -> None:
    assert _pool(["build", "--help"]) == "system"


def test_the_users_pool_is_kept() -> None:
    import pyarrow

    if "jemalloc" not in pyarrow.supported_memory_backends():
        pytest.skip("this pyarrow has no jemalloc")
    assert _pool(["build", "--help"], {"ARROW_DEFAULT_MEMORY_POOL": "jemalloc"}) == "jemalloc"


def test_the_collector_keeps_pyarrows_default() -> None:
    environ = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    plain = subprocess.run(
        [sys.executable, "-c", "import pyarrow; print(pyarrow.default_memory_pool().backend_name)"],
        capture_output=True,
        text=True,
        env=environ,
    ).stdout.strip()
    assert plain != "system"  # mimalloc or jemalloc in pyarrow's wheels: else this test shows nothing
    assert _pool(["collect", "--help"]) == plain
