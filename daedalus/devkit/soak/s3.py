"""The soak's S3 lake (`--s3`): moto_server on 127.0.0.1 behind a loopback TCP proxy, and the
`s3_outage` fault (issue 24).

Moto's in-memory server forgets every object when it restarts, so an outage is modelled as the
network going away, not the server: the proxy between the lake's S3 endpoint and moto stops (its
listening socket closed, every open connection reset: new connections are refused) for
`OUTAGE_SECONDS` while a build runs, and a second build is started inside the outage; then the proxy
listens again. Reads and writes are real: DuckDB httpfs and boto3 talk to moto through the proxy.

The soak's checks read bronze from a local mirror of the bucket's `bronze/` (`mirror_bronze`), so
the same checks (quarantine events, duplicates, the clean rebuild) serve both lakes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

OUTAGE_SECONDS = 4.0  # how long the endpoint stays unreachable
BUCKET = "soak"
PREFIX = "lake"
# dummy credentials moto accepts (never real ones): set only when the environment has none
MOTO_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def moto_command() -> list[str] | None:
    """How to start moto_server here, or None when moto (with its server extra) is not installed."""
    exe = Path(sys.executable).with_name("moto_server")
    if exe.exists():
        return [str(exe)]
    if shutil.which("moto_server"):
        return [str(shutil.which("moto_server"))]
    if importlib.util.find_spec("moto") and importlib.util.find_spec("flask"):
        return [sys.executable, "-m", "moto.server"]
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TcpProxy:
    """A loopback TCP forwarder that can be stopped (connections refused and reset) and started again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = _free_port()
        self.listener: socket.socket | None = None
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()

    def start(self) -> None:
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port))
        ls.listen(64)
        self.listener = ls
        threading.Thread(target=self._accept, args=(ls,), daemon=True).start()

    def stop(self) -> None:
        ls, self.listener = self.listener, None
        if ls is not None:
            with contextlib.suppress(OSError):
                ls.shutdown(socket.SHUT_RDWR)
            ls.close()
        with self.lock:
            for c in self.conns:
                with contextlib.suppress(OSError):
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")  # RST
                    c.shutdown(socket.SHUT_RDWR)
                c.close()
            self.conns.clear()

    def _accept(self, ls: socket.socket) -> None:
        while True:
            try:
                client, _ = ls.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                if self.listener is not ls:  # stopped meanwhile
                    client.close()
                    upstream.close()
                    return
                self.conns += [client, upstream]
            done = threading.Semaphore(0)  # both directions over: the pair is closed (fds stay flat)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b, done), daemon=True).start()
            threading.Thread(target=self._reap, args=(client, upstream, done), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket, done: threading.Semaphore) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                b.shutdown(socket.SHUT_WR)
            done.release()

    def _reap(self, client: socket.socket, upstream: socket.socket, done: threading.Semaphore) -> None:
        done.acquire()
        done.acquire()
        with self.lock:
            for s in (client, upstream):
                if s in self.conns:
                    self.conns.remove(s)
                s.close()


class SoakS3:
    """moto_server on a free loopback port, a bucket, and the proxy the lake's endpoint points at."""

    def __init__(self, command: list[str]) -> None:
        for k, v in MOTO_ENV.items():
            os.environ.setdefault(k, v)
        port = _free_port()
        self.proc = subprocess.Popen(
            [*command, "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.proc.kill()
                    raise RuntimeError(f"moto_server did not start on 127.0.0.1:{port}") from None
                time.sleep(0.2)
        self.proxy = TcpProxy(("127.0.0.1", port))
        self.proxy.start()
        from daedalus.fsio import make_s3_client

        self.direct = make_s3_client(
            f"127.0.0.1:{port}", use_ssl=False, url_style="path"
        )  # not via the proxy
        self.direct.create_bucket(Bucket=BUCKET)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.proxy.port}"

    @property
    def root(self) -> str:
        return f"s3://{BUCKET}/{PREFIX}"

    def settings(self, spool: Path) -> dict[str, Any]:
        """The config keys of the S3 lake: the collector's spool stays local (`ingestion.local_root`)."""
        return {
            "storage": {"root": self.root},
            "ingestion": {"local_root": str(spool)},
            "s3": {"endpoint": self.endpoint, "url_style": "path", "use_ssl": False, "region": "us-east-1"},
        }

    def listing(self, under: str) -> dict[str, str]:
        """key → ETag of every object under `lake/<under>` (read directly from moto)."""
        out: dict[str, str] = {}
        for page in self.direct.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix=f"{PREFIX}/{under}"
        ):
            out.update({o["Key"]: o["ETag"] for o in page.get("Contents", [])})
        return out

    def mirror_bronze(self, dest: Path) -> Path:
        """Make `dest/bronze` equal the bucket's bronze (changed objects downloaded, gone ones removed)."""
        remote = self.listing("bronze/")
        seen = set()
        for key, etag in remote.items():
            rel = key[len(PREFIX) + 1 :]
            seen.add(rel)
            target = dest / rel
            stamp = target.with_name(f".{target.name}.etag")
            if target.exists() and stamp.exists() and stamp.read_text() == etag:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            self.direct.download_file(BUCKET, key, str(target))
            stamp.write_text(etag)
        base = dest / "bronze"
        if base.is_dir():
            for p in base.rglob("*.parquet"):
                if p.relative_to(dest).as_posix() not in seen:
                    p.unlink()
                    p.with_name(f".{p.name}.etag").unlink(missing_ok=True)
        return dest

    def close(self) -> None:
        self.proxy.stop()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def outage(s3: SoakS3, start_build: Any, wait_build: Any, rng: Any) -> dict[str, Any]:
    """The endpoint goes away while a build runs, a second build starts inside the outage, then the
    endpoint comes back. `start_build()` → a process, `wait_build(proc)` → (exit code, stderr).
    Returns both builds' outcomes, the bronze listing before and after, and when the endpoint came back."""
    before = s3.listing("bronze/")
    first = start_build()
    time.sleep(rng.uniform(0.5, 2.5))  # imports, the manifest, the first partitions: then the cut
    s3.proxy.stop()
    cut = time.monotonic()
    during = wait_build(first)
    second = wait_build(start_build())  # a build started while the endpoint is unreachable
    time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - cut)))
    s3.proxy.start()
    return {
        "cut_build": during,
        "build_in_outage": second,
        "bronze_before": before,
        "bronze_after": s3.listing("bronze/"),
        "outage_s": time.monotonic() - cut,
        "reopened": time.monotonic(),
    }
