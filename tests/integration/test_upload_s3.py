"""Upload of ready segments to S3, verified by size/ETag, against moto_server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from daedalus import fsio
from daedalus.collector.queue import BoundedQueue, Record
from daedalus.collector.sink import BronzeSink
from daedalus.collector.upload import S3Uploader, UploadQueue
from daedalus.config import IngestionConfig, S3Config
from daedalus.errors import StorageError
from daedalus.fsio import expected_etag, make_s3_client

pytestmark = pytest.mark.s3
T0 = 1_723_075_200_000_000_000


def sample_row(channel: str, i: int) -> dict:
    assert channel == "trades"
    return {
        "collected_at": T0 // 10**6 + i,
        "capture_ts": T0 + i,
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "conn_id": "c",
        "seq": i,
        "timestamp": T0 + i,
        "trade_id": str(i),
        "side": "buy",
        "price": 100.0 + i,
        "amount": 0.5,
        "cost": None,
        "info_json": None,
    }


@pytest.fixture
def s3(moto_server):
    moto_server.reset()
    client = make_s3_client(moto_server.endpoint, use_ssl=False, url_style="path")
    client.create_bucket(Bucket="lake")
    return moto_server, client


def body(client, key: str) -> bytes:
    return client.get_object(Bucket="lake", Key=key)["Body"].read()


def run_sink(root: Path, n: int, s3cfg: S3Config, delete_after_upload: bool) -> BronzeSink:
    async def scenario() -> BronzeSink:
        q = BoundedQueue(10_000, 1.0)
        cfg = IngestionConfig(batch_size=100, segment_max_mb=0.01, delete_after_upload=delete_after_upload)
        sink = BronzeSink(root, cfg, s3_root="s3://lake/prod", s3=s3cfg)
        stop = asyncio.Event()
        task = asyncio.create_task(sink.run(q, stop))
        for i in range(n):
            await q.put(Record("ccxt", "trades", sample_row("trades", i)))
        await asyncio.sleep(0.3)
        stop.set()
        await task
        return sink

    return asyncio.run(scenario())


def test_sink_uploads_every_closed_segment_and_verifies_before_deleting(tmp_path, s3) -> None:
    server, client = s3
    s3cfg = S3Config(endpoint=server.endpoint, use_ssl=False, url_style="path")
    sink = run_sink(tmp_path, 2000, s3cfg, delete_after_upload=True)
    stats = sink.stats()
    assert stats["upload_backlog"] == 0 and stats["upload_error"] is None
    listed = client.list_objects_v2(Bucket="lake", Prefix="prod/raw/ready/ccxt/trades/")["Contents"]
    assert len(listed) >= 2 and stats["uploaded"] == len(listed)
    assert sum(pq.read_metadata(_download(client, o["Key"], tmp_path)).num_rows for o in listed) == 2000
    # verified copies let the local ones go
    assert not list((tmp_path / "raw" / "ready" / "ccxt" / "trades").glob("segment_*"))


def _download(client, key: str, tmp_path: Path) -> Path:
    dst = tmp_path / "dl" / Path(key).name
    dst.parent.mkdir(exist_ok=True)
    dst.write_bytes(body(client, key))
    return dst


def test_keep_local_copies_and_skip_already_uploaded_on_restart(tmp_path, s3) -> None:
    server, client = s3
    s3cfg = S3Config(endpoint=server.endpoint, use_ssl=False, url_style="path")
    run_sink(tmp_path, 300, s3cfg, delete_after_upload=False)
    local = sorted((tmp_path / "raw" / "ready" / "ccxt" / "trades").glob("segment_*"))
    assert local
    for p in local:
        key = f"prod/raw/ready/ccxt/trades/{p.name}"
        assert body(client, key) == p.read_bytes()
        head = client.head_object(Bucket="lake", Key=key)
        assert head["ETag"].strip('"') == hashlib.md5(p.read_bytes()).hexdigest()
    # A restart offers every ready segment again; verified objects are not re-sent.
    sink = run_sink(tmp_path, 0, s3cfg, delete_after_upload=False)
    results = {r.path.name: r for r in sink.uploads.results}
    assert all(results[p.name].skipped for p in local)


def test_changed_local_file_is_resent_and_multipart_etag_matches(tmp_path, s3, monkeypatch) -> None:
    _, client = s3
    uploader = S3Uploader("s3://lake/x", tmp_path, client, max_attempts=2, backoff_initial=0.01)
    f = tmp_path / "raw" / "ready" / "ccxt" / "trades" / "segment_a.parquet"
    f.parent.mkdir(parents=True)
    f.write_bytes(b"a" * 1000)
    first = uploader.upload(f)
    assert not first.skipped and first.key == "x/raw/ready/ccxt/trades/segment_a.parquet"
    f.write_bytes(b"b" * 1000)  # same size, different content: the ETag tells them apart
    second = uploader.upload(f)
    assert not second.skipped and body(client, second.key) == b"b" * 1000
    assert uploader.upload(f).skipped
    # Multipart: 5 MiB parts (S3's minimum), 11 MiB file → 3 parts, ETag "<md5 of md5s>-3".
    monkeypatch.setattr(fsio, "PART_SIZE", 5 * 1024 * 1024)
    big = f.with_name("segment_big.parquet")
    big.write_bytes(os.urandom(11 * 1024 * 1024))
    result = uploader.upload(big)
    assert result.etag.endswith("-3") and result.etag == expected_etag(big)
    assert client.head_object(Bucket="lake", Key=result.key)["ContentLength"] == 11 * 1024 * 1024


def test_failed_uploads_stay_in_backlog_and_local_until_they_succeed(tmp_path, s3) -> None:
    _, client = s3
    uploader = S3Uploader(
        "s3://missing-bucket/p",
        tmp_path,
        client,
        delete_after_upload=True,
        max_attempts=2,
        backoff_initial=0.01,
    )
    files = []
    for i in range(3):
        f = tmp_path / "raw" / "ready" / "ccxt" / "trades" / f"segment_{i}.parquet"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(bytes([i]) * 100)
        files.append(f)
    with pytest.raises(StorageError, match="missing-bucket.*failed after 2 attempts"):
        uploader.upload(files[0])

    async def scenario() -> UploadQueue:
        uq = UploadQueue(uploader, retry_after=0.05)
        for f in files:
            uq.offer(f)
        stop = asyncio.Event()
        task = asyncio.create_task(uq.run(stop))
        await asyncio.sleep(0.5)
        assert uq.backlog == 3 and uq.failures >= 1 and "missing-bucket" in (uq.last_error or "")
        assert uq.backlog_by_stream() == {"ccxt/trades": 3}
        assert all(f.exists() for f in files)  # never deleted before a verified copy exists
        client.create_bucket(Bucket="missing-bucket")
        for _ in range(100):
            if uq.backlog == 0:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await task
        return uq

    uq = asyncio.run(scenario())
    assert uq.backlog == 0 and uq.uploaded == 3
    assert not any(f.exists() for f in files)
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="missing-bucket")["Contents"])
    assert keys == [f"p/raw/ready/ccxt/trades/segment_{i}.parquet" for i in range(3)]
