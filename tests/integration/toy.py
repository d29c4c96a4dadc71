"""The toy project of the build tests: a copy in a tmp dir, its config, and a bronze writer."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from daedalus.collector.schemas import SCHEMAS
from daedalus.config import Config, load_config

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "toy_project"
UTC = dt.UTC


def trade_rows(
    exchange: str,
    symbol: str,
    day: str,
    n: int = 30,
    start_id: int = 0,
    price: float = 100.0,
    minutes: int = 10,
) -> list[dict]:
    """n trades spread over the first `minutes` minutes of `day` and the last minutes of the day."""
    base = dt.datetime.fromisoformat(day).replace(tzinfo=UTC)
    rows = []
    for i in range(n):
        # half early in the day, half in the last minutes (so the next day's lookback sees them)
        offset = (
            dt.timedelta(seconds=(i * 60 * minutes) // n)
            if i % 2 == 0
            else dt.timedelta(days=1) - dt.timedelta(seconds=1 + (i * 60 * minutes) // n)
        )
        ts = base + offset
        rows.append(
            {
                "collected_at": int(ts.timestamp() * 1000) + 5,
                "capture_ts": ts + dt.timedelta(milliseconds=5),
                "exchange": exchange,
                "symbol": symbol,
                "conn_id": "c1",
                "seq": start_id + i,
                "timestamp": ts,
                "trade_id": f"{symbol}-{day}-{start_id + i}",
                "side": "buy" if i % 3 else "sell",
                "price": price + (i % 7),
                "amount": 0.5 + (i % 4),
                "cost": (price + (i % 7)) * (0.5 + (i % 4)),
                "info_json": "{}",
            }
        )
    return rows


@dataclass
class Toy:
    dir: Path
    root: Path
    project: Path
    config_path: Path

    def config(self, **overrides) -> Config:
        return load_config(self.config_path, overrides)

    def write_bronze(self, exchange: str, day: str, rows: list[dict], name: str = "seg-0001") -> Path:
        d = self.root / "bronze" / "trades" / f"exchange={exchange}" / f"date={day}"
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{name}.parquet"
        table = pa.Table.from_pylist(rows, schema=SCHEMAS["trades"])
        pq.write_table(table, path)
        return path

    def manifest(self) -> dict:
        return json.loads((self.root / "_state" / "manifest.json").read_text())

    def built_at(self) -> dict[tuple[str, str], float]:
        m = self.manifest()
        return {
            (name, pid): p["built_at"]
            for name, ms in m["models"].items()
            for pid, p in ms["partitions"].items()
        }

    @staticmethod
    def cli_prefix() -> list[str]:
        return [sys.executable, "-c", "from daedalus.cli.app import main; main()"]

    def cli(self, *args: str, env: dict | None = None, check: bool = False, timeout: float = 300):
        cmd = [*self.cli_prefix(), "--config", str(self.config_path), *args]
        full_env = {**os.environ, **(env or {})}
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=full_env, timeout=timeout, cwd=self.dir
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{cmd} exited {proc.returncode}\nstdout:{proc.stdout}\nstderr:{proc.stderr}"
            )
        return proc


def make_toy(tmp: Path, retain_minutes: float = 0.0) -> Toy:
    project = tmp / "project"
    shutil.copytree(FIXTURE, project)
    root = tmp / "lake"
    root.mkdir()
    cfg = tmp / "config.yaml"
    cfg.write_text(
        f"project_dir: {project}\n"
        f"storage:\n  root: {root}\n  retain_replaced_minutes: {retain_minutes}\n"
        f"duckdb:\n  threads: 2\n  memory_limit: 1GB\n  temp_directory: {tmp / 'spill'}\n"
    )
    return Toy(tmp, root, project, cfg)
