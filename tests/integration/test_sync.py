"""`daedalus sync push|pull` against moto_server on 127.0.0.1: verified by ETag/MD5, resumable after a
kill, filters by layer and date, never deletes a source before its copy is verified."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from s3_helpers import make_lakehouse

from daedalus.errors import StorageError
from daedalus.fsio import make_s3_client
from daedalus.lake.sync import etag_matches, sync

pytestmark = pytest.mark.s3
DAYS = ["2024-08-06", "2024-08-07", "2024-08-08"]


@pytest.fixture
def client(moto_server):
    return make_s3_client(moto_server.endpoint, use_ssl=False, url_style="path")


def _objects(client, bucket: str, prefix: str = "") -> dict[str, str]:
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out.update({o["Key"]: o["ETag"].strip('"') for o in page.get("Contents", [])})
    return out


def _md5(p: Path) -> str:
    return hashlib.md5(p.read_bytes()).hexdigest()


def _local_lake(tmp: Path, moto, client, bucket: str):
    """A built local toy lake, and an s3 section in its config so sync can reach moto."""
    h = make_lakehouse(tmp, extra=f"s3:\n  endpoint: {moto.endpoint}\n  url_style: path\n  use_ssl: false\n")
    for i, day in enumerate(DAYS):
        h.add_trades(day, f"{i:04d}", n=30, start_id=i * 100)
    assert h.cli("land").returncode == 0
    assert h.cli("build").returncode == 0, h.cli("build").stderr
    client.create_bucket(Bucket=bucket)
    return h


def _lake_files(root: Path, layers=("bronze", "silver", "gold")) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): _md5(p) for layer in layers for p in (root / layer).rglob("*.parquet")
    }


@pytest.mark.slow
def test_push_verified_then_idempotent_then_pull(tmp_path: Path, moto_server, client, monkeypatch) -> None:
    monkeypatch.setenv("DAEDALUS_NO_UDFS", "1")
    h = _local_lake(tmp_path / "a", moto_server, client, "sync-a")
    remote = "s3://sync-a/mirror"
    files = _lake_files(Path(h.root))
    assert len(files) == 3 + 3 + 3  # bronze, silver, gold: one file per day each

    rep = sync(h.config(), "push", remote=remote)
    assert sorted(rep.copied) == sorted(files) and rep.skipped == []
    objs = _objects(client, "sync-a", "mirror/")
    assert {
        k.removeprefix("mirror/"): v for k, v in objs.items() if k.endswith(".parquet")
    } == files  # ETag = MD5
    assert "mirror/_state/manifest.json" in objs

    again = sync(h.config(), "push", remote=remote)
    assert again.copied == [] and sorted(again.skipped) == sorted(files)

    # pull into an empty local root: identical files, the manifest, and a working catalog
    fresh = tmp_path / "pulled"
    out = h.cli("sync", "pull", "--remote", remote, "--local", str(fresh))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("pull: 9 copied")
    assert _lake_files(fresh) == files
    assert json.loads((fresh / "_state/manifest.json").read_text())["models"].keys() == {
        "toy_trades",
        "toy_bars",
    }
    assert not list(fresh.rglob("*.tmp"))
    pulled_again = sync(h.config(), "pull", remote=remote, local=str(fresh))
    assert pulled_again.copied == [] and len(pulled_again.skipped) == 9


@pytest.mark.slow
def test_layer_and_since_filters(tmp_path: Path, moto_server, client) -> None:
    h = _local_lake(tmp_path, moto_server, client, "sync-b")
    rep = sync(h.config(), "push", layers=["gold"], since="2024-08-07", remote="s3://sync-b/x")
    assert sorted(rep.copied) == [
        f"gold/toy_bars/exchange=binance/symbol=BTC%2FUSDT/date={d}/" + Path(_one(h, d)).name
        for d in DAYS[1:]
    ]
    with pytest.raises(Exception, match="--layer: unknown layer 'platinum'"):
        sync(h.config(), "push", layers=["platinum"], remote="s3://sync-b/x")


def _one(h, day: str) -> str:
    return next(str(p) for p in Path(h.root).glob(f"gold/toy_bars/**/date={day}/*.parquet"))


@pytest.mark.slow
def test_interrupted_push_resumes_without_resending(tmp_path: Path, moto_server, client) -> None:
    h = _local_lake(tmp_path, moto_server, client, "sync-c")
    files = _lake_files(Path(h.root))
    killed = h.cli(
        "sync", "push", "--remote", "s3://sync-c/m", "--workers", "1", env={"DAEDALUS_TEST_SYNC_KILL": "4"}
    )
    assert killed.returncode == -9  # SIGKILL after the 4th verified copy
    done_before = {k.removeprefix("m/") for k in _objects(client, "sync-c", "m/") if k.endswith(".parquet")}
    assert len(done_before) == 4
    assert "m/_state/manifest.json" not in _objects(client, "sync-c", "m/")  # the manifest goes last
    out = h.cli("sync", "push", "--remote", "s3://sync-c/m")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"push: {len(files) - 4} copied") and "4 already verified" in out.stdout
    objs = _objects(client, "sync-c", "m/")
    assert {k.removeprefix("m/"): v for k, v in objs.items() if k.endswith(".parquet")} == files


@pytest.mark.slow
def test_move_never_deletes_a_source_whose_copy_failed(tmp_path: Path, moto_server, client) -> None:
    h = _local_lake(tmp_path, moto_server, client, "sync-d")
    bronze = _lake_files(Path(h.root), ("bronze",))
    with pytest.raises(StorageError, match="NoSuchBucket"):
        sync(h.config(), "push", layers=["bronze"], remote="s3://no-such-bucket/x", move=True)
    assert _lake_files(Path(h.root), ("bronze",)) == bronze  # every source still there
    rep = sync(h.config(), "push", layers=["bronze"], remote="s3://sync-d/x", move=True)
    assert sorted(rep.deleted_sources) == sorted(bronze)
    assert _lake_files(Path(h.root), ("bronze",)) == {}
    assert {k.removeprefix("x/"): v for k, v in _objects(client, "sync-d", "x/").items()} == bronze


def test_etag_matches_single_and_multipart(tmp_path: Path) -> None:
    p = tmp_path / "f.bin"
    data = bytes(range(256)) * 40_000  # ~10 MB
    p.write_bytes(data)
    assert etag_matches(p, hashlib.md5(data).hexdigest(), len(data))
    part = 8 * 1024 * 1024
    digests = [hashlib.md5(data[i : i + part]).digest() for i in range(0, len(data), part)]
    multipart = f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"
    assert etag_matches(p, multipart, len(data))
    assert not etag_matches(
        p, multipart.replace(multipart[0], "0" if multipart[0] != "0" else "1", 1), len(data)
    )
    assert not etag_matches(p, hashlib.md5(data).hexdigest(), len(data) + 1)
