"""S3 faults against moto_server on 127.0.0.1: bad credentials end in one clear error (moto with
authentication on), and the endpoint going away mid-build leaves nothing half-visible and the next
build completes (a loopback TCP proxy in front of moto is stopped and started again)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import duckdb
import pytest
from s3_helpers import make_lakehouse

from daedalus.build import api
from daedalus.devkit.soak.s3 import TcpProxy  # the soak's outage proxy, shared
from daedalus.errors import BuildError, StorageError
from daedalus.fsio import make_s3_client
from daedalus.land.lander import land_any

pytestmark = pytest.mark.s3


# -- bad credentials ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def auth_moto(tmp_path_factory):
    """A second moto_server with IAM authentication on: only a key created through IAM is accepted."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("moto_server")
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}  # user, key, policy: then auth is on
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
            break
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, "moto_server did not start"
            time.sleep(0.1)
    iam = boto3.client(
        "iam",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="bootstrap",
        aws_secret_access_key="bootstrap",
    )
    iam.create_user(UserName="daedalus")
    key = iam.create_access_key(UserName="daedalus")["AccessKey"]
    iam.put_user_policy(
        UserName="daedalus",
        PolicyName="s3",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        ),
    )
    good = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
    client = boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=good["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=good["AWS_SECRET_ACCESS_KEY"],
    )
    client.create_bucket(Bucket="authlake")

    class Server:
        endpoint = f"127.0.0.1:{port}"

    yield Server(), client, good
    proc.terminate()
    proc.wait(timeout=10)


@pytest.mark.slow
def _error_lines(proc) -> list[str]:
    """stderr without the lake-root announcement every lake-reading command makes first."""
    return [ln for ln in proc.stderr.splitlines() if not ln.startswith("lake: ")]


def test_bad_credentials_are_one_clear_error(tmp_path: Path, auth_moto) -> None:
    server, client, good = auth_moto
    h = make_lakehouse(tmp_path, server, client=client)
    h.add_trades("2024-08-08", "0001", n=20)
    base = {"AWS_SESSION_TOKEN": "", **good}
    bad_key = {**base, "AWS_ACCESS_KEY_ID": "AKIANOTAKEY000000000"}
    bad_secret = {**base, "AWS_SECRET_ACCESS_KEY": "wrong-secret"}

    # land: the bucket is asked first (segments the collector uploaded), so nothing moves locally
    out = h.cli("land", env=bad_key)
    assert out.returncode == 5
    err = _error_lines(out)
    assert len(err) == 1 and err[0].startswith("error: "), out.stderr
    assert "InvalidAccessKeyId" in out.stderr and "check AWS_ACCESS_KEY_ID" in out.stderr
    assert len(list((h.spool / "raw" / "ready").rglob("segment_*.parquet"))) == 1
    assert not (h.spool / "bronze").exists()
    out = h.cli("land", env=base)
    assert out.returncode == 0, out.stderr
    assert not list((h.spool / "bronze").rglob("*.parquet"))

    for env, code in ((bad_key, "InvalidAccessKeyId"), (bad_secret, "SignatureDoesNotMatch")):
        out = h.cli("build", env=env)
        assert out.returncode == 5, out.stderr
        err = _error_lines(out)
        assert len(err) == 1 and "Traceback" not in out.stderr, out.stderr
        assert err[0].startswith(f"error: s3://{h.bucket}/lake/") and code in out.stderr
    assert "Contents" not in client.list_objects_v2(Bucket=h.bucket, Prefix="lake/silver/")

    out = h.cli("build", env=base)
    assert out.returncode == 0, out.stderr
    q = h.cli("query", "SELECT count(*) AS n FROM silver.toy_trades", "--format", "csv", env=base)
    assert q.stdout.split() == ["n", "20"]


# -- the endpoint goes away mid-build --------------------------------------------------------------


def _gold_via_manifest(client, bucket: str) -> tuple[int, int]:
    """(rows the S3 manifest claims for gold.toy_bars, rows its files really hold)."""
    m = json.loads(client.get_object(Bucket=bucket, Key="lake/_state/manifest.json")["Body"].read())
    parts = m["models"]["toy_bars"]["partitions"].values()
    claimed = sum(p["rows"] for p in parts)
    import io

    import pyarrow.parquet as pq

    real = 0
    for p in parts:
        for f in p["files"]:
            body = client.get_object(Bucket=bucket, Key=f"lake/{f[0]}")["Body"].read()
            real += pq.ParquetFile(io.BytesIO(body)).metadata.num_rows
    return claimed, real


@pytest.mark.slow
def test_endpoint_stopped_mid_build_then_next_build_completes(
    tmp_path: Path, moto_server, monkeypatch
) -> None:
    monkeypatch.setenv("DAEDALUS_NO_UDFS", "1")
    direct = make_s3_client(moto_server.endpoint, use_ssl=False, url_style="path")
    proxy = TcpProxy(("127.0.0.1", moto_server.port))
    proxy.start()

    class ViaProxy:
        endpoint = f"127.0.0.1:{proxy.port}"

    h = make_lakehouse(tmp_path / "s3", ViaProxy(), client=direct)
    local = make_lakehouse(tmp_path / "local")
    days = ["2024-08-06", "2024-08-07", "2024-08-08"]
    for lake in (h, local):
        for i, d in enumerate(days):
            lake.add_trades(d, f"{i:04d}", n=30, start_id=i * 100)
    cfg = h.config()
    land_any(cfg)
    api.build(cfg, udfs=False)
    claimed_before, _ = _gold_via_manifest(direct, h.bucket)
    for lake in (h, local):
        for i, d in enumerate(days):
            lake.add_trades(d, f"{i:04d}x", n=10, start_id=5000 + i * 100)
    land_any(cfg)

    real_copy = api.Session.execute_copy
    calls = {"n": 0}

    def copy_then_cut(self, model, part, sql):  # the endpoint disappears after the 2nd partition
        rows = real_copy(self, model, part, sql)
        calls["n"] += 1
        if calls["n"] == 2:
            proxy.stop()
        return rows

    monkeypatch.setattr(api.Session, "execute_copy", copy_then_cut)
    with pytest.raises((BuildError, StorageError)) as err:
        api.build(cfg, udfs=False)
    assert str(err.value).count("\n") == 0
    assert "127.0.0.1" in str(err.value) or "s3://" in str(err.value)
    monkeypatch.setattr(api.Session, "execute_copy", real_copy)

    # nothing half-visible: the manifest on S3 names only complete files, and its rows are theirs
    claimed, real = _gold_via_manifest(direct, h.bucket)
    assert claimed == real == claimed_before  # gold was not reached: still the old partitions

    proxy.start()
    done = api.build(cfg, udfs=False)
    assert done.rebuilt  # the interrupted work is finished
    land_any(local.config())
    api.build(local.config(), udfs=False)
    claimed, real = _gold_via_manifest(direct, h.bucket)
    local_manifest = json.loads((Path(local.root) / "_state/manifest.json").read_text())
    assert (
        claimed == real == sum(p["rows"] for p in local_manifest["models"]["toy_bars"]["partitions"].values())
    )
    con = api.connect(cfg, udfs=False)
    plain = duckdb.connect()
    plain.execute("SET TimeZone = 'UTC'")
    q = "SELECT * FROM read_parquet({}, hive_partitioning=false) ORDER BY ALL"
    for model in ("silver/toy_trades", "gold/toy_bars"):
        s3_files = [
            f"s3://{h.bucket}/{o['Key']}"
            for o in direct.list_objects_v2(Bucket=h.bucket, Prefix=f"lake/{model}/")["Contents"]
        ]
        local_files = [str(p) for p in Path(local.root).glob(f"{model}/**/*.parquet")]
        # no orphan of the interrupted build survives: a glob of the prefix equals the local build
        assert (
            con.execute(q.format(s3_files))
            .to_arrow_table()
            .equals(plain.execute(q.format(local_files)).to_arrow_table())
        ), model
    proxy.stop()


@pytest.mark.slow
def test_endpoint_gone_before_a_copy_is_a_storage_error(tmp_path: Path, moto_server, monkeypatch) -> None:
    """DuckDB's own read failing on the unreachable endpoint (not boto3's) is the storage's fault:
    exit 5 (StorageError), one line naming the model and the cause, not a model error (exit 4)."""
    monkeypatch.setenv("DAEDALUS_NO_UDFS", "1")
    direct = make_s3_client(moto_server.endpoint, use_ssl=False, url_style="path")
    proxy = TcpProxy(("127.0.0.1", moto_server.port))
    proxy.start()

    class ViaProxy:
        endpoint = f"127.0.0.1:{proxy.port}"

    h = make_lakehouse(tmp_path / "s3", ViaProxy(), client=direct)
    for i, d in enumerate(["2024-08-06", "2024-08-07"]):
        h.add_trades(d, f"{i:04d}", n=30, start_id=i * 100)
    cfg = h.config()
    land_any(cfg)
    real_copy = api.Session.execute_copy

    def cut_then_copy(self, model, part, sql):  # the endpoint disappears right before DuckDB reads
        proxy.stop()
        return real_copy(self, model, part, sql)

    monkeypatch.setattr(api.Session, "execute_copy", cut_then_copy)
    with pytest.raises(StorageError) as err:
        api.build(cfg, udfs=False)
    msg = str(err.value)
    assert err.value.exit_code == 5 and "\n" not in msg
    assert "storage unreachable" in msg and "toy_trades" in msg, msg
    monkeypatch.setattr(api.Session, "execute_copy", real_copy)
    proxy.start()
    assert api.build(cfg, udfs=False).rebuilt  # and the next build, the endpoint back, completes
    proxy.stop()
