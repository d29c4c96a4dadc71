"""Shared pytest fixtures. Keep each fixture small and additive: several parts of the suite use them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass(frozen=True)
class MotoServer:
    """An S3-compatible moto_server on loopback: `endpoint` is host:port, `url` the http URL."""

    host: str
    port: int

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def reset(self) -> None:
        """Forget every bucket and object (moto's reset API)."""
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/moto-api/reset", method="POST"), timeout=5)


MOTO_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """Start `moto_server` on 127.0.0.1 on a free port for the session; dummy AWS credentials are set
    in the environment while it runs (never real ones). Call `.reset()` for a clean state per test."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("moto_server")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "moto.server"]
    proc = subprocess.Popen(
        [*cmd, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    server = MotoServer("127.0.0.1", port)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{server.url}/moto-api/", timeout=1)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"moto_server did not start on 127.0.0.1:{port}")
            time.sleep(0.1)
    saved = {k: os.environ.get(k) for k in MOTO_ENV}
    os.environ.update(MOTO_ENV)
    try:
        yield server
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session", autouse=True)
def _lake_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Per-lake local state (the catalog of an S3 lake) in a temp folder, not the user's home; the
    CLI subprocesses inherit it."""
    old = os.environ.get("DAEDALUS_STATE_DIR")
    os.environ["DAEDALUS_STATE_DIR"] = str(tmp_path_factory.mktemp("daedalus_state"))
    yield
    if old is None:
        os.environ.pop("DAEDALUS_STATE_DIR", None)
    else:
        os.environ["DAEDALUS_STATE_DIR"] = old


@pytest.fixture(scope="session")
def updates_lake_config(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Half an hour of one synthetic book from `book_updates` and its config at 1 h slices: a lake the
    compile-only tests share (they read it, never build it)."""
    from daedalus.config import load_config
    from daedalus.devkit.synth import generate

    root = tmp_path_factory.mktemp("updates_lake")
    generate(root / "lake", symbols=["BTC/USDT"], days=1, hours=0.5, book_updates=True)
    overrides = {
        "storage.root": str(root / "lake"),
        "duckdb.temp_directory": str(root / "t"),
        "etl.slice_hours": 1,
    }
    return load_config(None, overrides=overrides)
