"""Issue 24: `daedalus shell` on an S3 lake leaves no key id, secret or token on disk, after a normal
exit, SIGTERM, SIGHUP or kill -9, and its duckdb child dies with it. Real moto_server, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import psutil
import pytest
from s3_helpers import make_lakehouse

from daedalus.fsio import make_s3_client

pytestmark = [pytest.mark.s3, pytest.mark.slow]
SECRET = f"never-on-disk-{uuid.uuid4().hex}"  # made here: no file of the repo holds it


def _files_holding(folder: Path, needle: bytes) -> list[Path]:
    out = []
    for p in folder.rglob("*"):
        try:
            if p.is_file() and needle in p.read_bytes():
                out.append(p)
        except OSError:
            continue
    return out


@pytest.fixture(scope="module")
def s3_lake(tmp_path_factory, moto_server):
    tmp = tmp_path_factory.mktemp("shell")
    client = make_s3_client(moto_server.endpoint, use_ssl=False, url_style="path")
    h = make_lakehouse(tmp, moto_server, client=client)
    h.add_trades("2024-08-08", "0001", n=20)
    for verb in ("land", "build"):
        out = h.cli(verb)
        assert out.returncode == 0, out.stderr
    return h


def _duckdb_child(proc: subprocess.Popen, timeout: float = 60) -> psutil.Process:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = [k for k in psutil.Process(proc.pid).children(recursive=True) if "duckdb" in k.name()]
        if kids:
            return kids[0]
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.05)
    raise AssertionError("the duckdb CLI did not start")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL])
def test_shell_leaves_no_secret_and_no_child_after_a_signal(s3_lake, sig, tmp_path) -> None:
    env = {"AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": SECRET + "-token"}
    proc = s3_lake.popen(
        "shell",
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        # SIGHUP as a terminal's shell has it: a test run under `nohup` hands its children SIGHUP
        # ignored, and a shell that ignores the hangup rightly stays
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL),
    )
    try:
        child = _duckdb_child(proc)
        time.sleep(0.5)  # the CLI has read its init SQL (secret created)
        assert not _files_holding(s3_lake.dir, SECRET.encode())  # the config's temp_directory is in it
        os.kill(proc.pid, sig)
        proc.wait(timeout=30)
        psutil.wait_procs([child], timeout=10)
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, "duckdb outlived the shell"
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stdin:
            proc.stdin.close()
    assert not _files_holding(s3_lake.dir, SECRET.encode())


def test_shell_queries_s3_and_a_stale_init_file_of_a_dead_shell_is_removed(s3_lake) -> None:
    spill = Path(s3_lake.config().duckdb.temp_directory)
    spill.mkdir(parents=True, exist_ok=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = spill / f"shell_init-{dead.pid}-deadbeef.sql"  # what an older version left after kill -9
    stale.write_text(f"CREATE SECRET (TYPE s3, SECRET '{SECRET}');\n")
    out = s3_lake.cli("shell", input="SELECT count(*) AS n FROM silver.toy_trades;\n")
    assert out.returncode == 0, out.stderr
    assert "20" in out.stdout
    assert not stale.exists()
