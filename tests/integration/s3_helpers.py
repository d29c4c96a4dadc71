"""Helpers of the S3 / watch / sync / fault tests: a toy project over an S3 (moto) or local lake,
raw segments in a spool, and the CLI in a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from toy import FIXTURE, trade_rows

from daedalus.collector.schemas import SCHEMAS
from daedalus.config import Config, load_config

REPO = Path(__file__).resolve().parents[2]


def write_segment(
    spool: Path,
    rows: list[dict],
    name: str,
    channel: str = "trades",
    source: str = "ccxt",
    schema: pa.Schema | None = None,
) -> Path:
    """A closed raw segment in `spool/raw/ready/{source}/{channel}/segment_{name}.parquet`."""
    d = spool / "raw" / "ready" / source / channel
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"segment_{name}.parquet"
    table = pa.Table.from_pylist(rows, schema=schema or SCHEMAS[channel])
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


@dataclass
class Lakehouse:
    """A toy project with its config file; `root` is the lake (local path or s3 URL), `spool` the raw spool."""

    dir: Path
    project: Path
    config_path: Path
    root: str
    spool: Path
    bucket: str | None = None

    def config(self, **overrides) -> Config:
        return load_config(self.config_path, overrides)

    def cli(
        self, *args: str, env: dict | None = None, timeout: float = 300, input: str | None = None
    ) -> subprocess.CompletedProcess:  # noqa: A002 - subprocess's name
        cmd = [
            sys.executable,
            "-c",
            "from daedalus.cli.app import main; main()",
            "--config",
            str(self.config_path),
            *args,
        ]
        full = {**os.environ, "DAEDALUS_NO_UDFS": "1", **(env or {})}
        return subprocess.run(
            cmd, capture_output=True, text=True, env=full, timeout=timeout, cwd=self.dir, input=input
        )

    def popen(self, *args: str, env: dict | None = None, **kw) -> subprocess.Popen:
        cmd = [
            sys.executable,
            "-c",
            "from daedalus.cli.app import main; main()",
            "--config",
            str(self.config_path),
            *args,
        ]
        full = {**os.environ, "DAEDALUS_NO_UDFS": "1", **(env or {})}
        return subprocess.Popen(cmd, env=full, cwd=self.dir, **kw)

    def add_trades(
        self,
        day: str,
        name: str,
        n: int = 30,
        start_id: int = 0,
        exchange: str = "binance",
        symbol: str = "BTC/USDT",
    ) -> Path:
        return write_segment(self.spool, trade_rows(exchange, symbol, day, n=n, start_id=start_id), name)


def make_lakehouse(tmp: Path, moto=None, extra: str = "", client=None) -> Lakehouse:
    """The toy project over a fresh bucket on `moto` (or a local lake when moto is None)."""
    project = tmp / "project"
    shutil.copytree(FIXTURE, project)
    spool = tmp / "spool"
    spool.mkdir()
    bucket = None
    if moto is not None:
        bucket = f"lake-{uuid.uuid4().hex[:10]}"
        client.create_bucket(Bucket=bucket)
        root = f"s3://{bucket}/lake"
        s3 = f"s3:\n  endpoint: {moto.endpoint}\n  url_style: path\n  use_ssl: false\n"
        local_root = f"  local_root: {spool}\n"
    else:
        root = str(spool)  # a local lake: the collector's spool is the lake itself
        s3 = ""
        local_root = ""
    cfg = tmp / "config.yaml"
    cfg.write_text(
        f"project_dir: {project}\n"
        f"storage:\n  root: {root}\n  retain_replaced_minutes: 0\n"
        + (f"ingestion:\n{local_root}" if local_root else "")
        + f"duckdb:\n  threads: 2\n  memory_limit: 1GB\n  temp_directory: {tmp / 'spill'}\n"
        + s3
        + extra
    )
    return Lakehouse(tmp, project, cfg, root, spool, bucket)
