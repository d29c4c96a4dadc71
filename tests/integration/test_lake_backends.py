"""The conformance suite every Lake backend passes: the local one, S3 (moto_server on 127.0.0.1) and a
toy backend defined here, which proves that a backend is one class plus one `LAKE_KINDS` entry
(docs/contracts.md): the toy keeps its files in a local folder under its own `dir://` scheme, and
the build, DuckDB's reads and the raw-segment rule reach it through `open_lake` alone."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from daedalus.config import Config
from daedalus.errors import ConfigError, StorageError
from daedalus.fsio import make_s3_client
from daedalus.lake import LAKE_KINDS, FileInfo, LocalLake, open_lake
from daedalus.lake.s3 import S3Lake


class DirLake:
    """The toy backend: `dir:///some/folder`, files as plain files, DuckDB reads them by path, every
    COPY is checked against the Parquet footer (as an object store would), locks are O_EXCL files."""

    def __init__(self, root: str, config: Config | None = None) -> None:
        self.root = root
        self._base = Path(root.removeprefix("dir://"))

    def url(self, rel: str) -> str:
        return str(self._base / rel)

    def list(self, prefix: str) -> list[FileInfo]:
        base = self._base / prefix
        found = (
            [p for p in base.rglob("*") if p.is_file() and not p.name.startswith(".")]
            if base.is_dir()
            else []
        )
        return sorted(self.stat(p.relative_to(self._base).as_posix()) for p in found)

    def stat(self, rel: str) -> FileInfo | None:
        p = self._base / rel
        return FileInfo(rel, p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else None

    def exists(self, rel: str) -> bool:
        return (self._base / rel).is_file()

    def read_bytes(self, rel: str) -> bytes | None:
        p = self._base / rel
        return p.read_bytes() if p.is_file() else None

    def write_atomic(self, rel: str, data: bytes) -> None:
        tmp = self._base / f"{rel}.{uuid.uuid4().hex}.part"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, self._base / rel)

    def put_file(self, local_path: str | Path, rel: str) -> None:
        (self._base / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(local_path, self._base / rel)

    def delete(self, rels: list[str]) -> None:
        for rel in rels:
            with contextlib.suppress(FileNotFoundError):
                (self._base / rel).unlink()

    def rename(self, src: str, dst: str) -> None:
        (self._base / dst).parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._base / src, self._base / dst)

    def prepare_dir(self, rel: str) -> None:
        (self._base / rel).mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        path = self._base / "_state" / f"{name}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            raise StorageError(f"{path}: another build holds the lock") from None
        os.close(fd)
        try:
            yield
        finally:
            path.unlink()

    def verify_write(self, rel: str, rows: int) -> FileInfo | None:
        info = self.stat(rel)
        if info is not None and pq.ParquetFile(self._base / rel).metadata.num_rows != rows:
            raise StorageError(f"{self.url(rel)}: COPY reported {rows} rows but the file holds another count")
        return info

    configured = 0  # DuckDB connections prepared by any DirLake (the build's must pass through here)

    def configure_connection(self, con: Any) -> None:
        DirLake.configured += 1
        for statement in self.connection_sql():
            con.execute(statement)

    def connection_sql(self) -> list[str]:
        return ["SET TimeZone = 'UTC'"]

    def raw_segments_root(self, local_root: str | None) -> Path:
        from daedalus.fsio import raw_segments_root

        return raw_segments_root(self.root, local_root)


@pytest.fixture
def dir_scheme() -> Iterator[None]:
    """The toy's one registration, removed after the test."""
    LAKE_KINDS["dir"] = DirLake
    try:
        yield
    finally:
        del LAKE_KINDS["dir"]


BACKENDS = ["local", "s3", "dir"]


def _config(root: str, moto=None, local_root: str | None = None) -> Config:
    doc: dict[str, Any] = {"storage": {"root": root}, "ingestion": {"local_root": local_root}}
    if moto is not None:
        doc["s3"] = {"endpoint": moto.endpoint, "url_style": "path", "use_ssl": False}
    return Config.model_validate(doc)


@pytest.fixture(params=BACKENDS)
def lake_config(request, tmp_path: Path) -> Config:
    """A Config whose storage.root names a fresh lake of each backend."""
    if request.param == "local":
        return _config(str(tmp_path / "lake"))
    if request.param == "dir":
        request.getfixturevalue("dir_scheme")
        return _config(f"dir://{tmp_path / 'lake'}")
    moto = request.getfixturevalue("moto_server")
    bucket = f"lake-{uuid.uuid4().hex[:10]}"
    make_s3_client(moto.endpoint, use_ssl=False, url_style="path").create_bucket(Bucket=bucket)
    return _config(f"s3://{bucket}/lake", moto)


@pytest.fixture
def lake(lake_config: Config):
    return open_lake(lake_config)


def test_open_lake_picks_the_registered_class(lake_config: Config, lake) -> None:
    scheme = lake_config.storage.root.split("://")[0] if "://" in lake_config.storage.root else "file"
    assert type(lake) is {"file": LocalLake, "s3": S3Lake, "dir": DirLake}[scheme]


def test_list_stat_read_write_delete(lake) -> None:
    assert lake.list("bronze") == []
    assert lake.stat("bronze/a.parquet") is None and lake.read_bytes("bronze/a.parquet") is None
    lake.write_atomic("bronze/t/date=2024-01-01/a.parquet", b"abc")
    lake.write_atomic("bronze/t/date=2024-01-02/b.parquet", b"de")
    lake.write_atomic("bronze/t/date=2024-01-02/b.parquet", b"fgh")  # replaced, not appended
    files = lake.list("bronze/t")
    assert [(f.path, f.size) for f in files] == [
        ("bronze/t/date=2024-01-01/a.parquet", 3),
        ("bronze/t/date=2024-01-02/b.parquet", 3),
    ]
    assert lake.stat(files[0].path) == files[0]
    assert lake.exists(files[1].path) and lake.read_bytes(files[1].path) == b"fgh"
    lake.rename(files[1].path, "bronze/t/date=2024-01-03/c.parquet")
    assert [f.path for f in lake.list("bronze")] == [files[0].path, "bronze/t/date=2024-01-03/c.parquet"]
    lake.delete([files[0].path, "missing/file.parquet"])  # a file already gone is no error
    assert [f.path for f in lake.list("bronze")] == ["bronze/t/date=2024-01-03/c.parquet"]


def test_put_file_moves_a_local_file_in(lake, tmp_path: Path) -> None:
    src = tmp_path / "catalog.duckdb"
    src.write_bytes(b"x" * 10)
    lake.put_file(src, "catalog/catalog.duckdb")
    assert lake.read_bytes("catalog/catalog.duckdb") == b"x" * 10


def test_lock_is_exclusive(lake_config: Config, lake) -> None:
    with lake.lock("build"), pytest.raises(StorageError), open_lake(lake_config).lock("build"):
        pass
    with open_lake(lake_config).lock("build"):  # released
        pass


def test_duckdb_writes_through_the_hook_and_verify_write_checks_it(lake) -> None:
    con = duckdb.connect()
    lake.configure_connection(con)  # S3: httpfs + secret; without it the COPY below cannot reach moto
    rel = "gold/x/part-1.parquet"
    lake.prepare_dir("gold/x")
    rows = con.execute(
        f"COPY (SELECT range AS i FROM range(7)) TO '{lake.url(rel)}' (FORMAT parquet)"
    ).fetchone()[0]
    assert rows == 7
    info = lake.verify_write(rel, rows)
    assert info is not None and info.path == rel and info.size > 0
    assert con.execute(f"SELECT sum(i) FROM read_parquet('{lake.url(rel)}')").fetchone()[0] == 21
    if not isinstance(lake, LocalLake):  # backends that check footers catch a wrong count
        with pytest.raises(StorageError, match="COPY reported 8 rows"):
            lake.verify_write(rel, 8)
    try:
        missing = lake.verify_write("gold/x/lost.parquet", 3)
    except StorageError as e:  # S3 names the lost write
        assert "does not exist" in str(e)
    else:
        assert missing is None
    assert all(isinstance(s, str) and s for s in lake.connection_sql())


def test_raw_segments_live_locally(lake_config: Config, lake, tmp_path: Path) -> None:
    from daedalus.collector.pipeline import local_root

    root = lake_config.storage.root
    if isinstance(lake, LocalLake):
        assert lake.raw_segments_root(None) == Path(root)
        assert local_root(lake_config) == Path(root)  # the collector asks the same rule
        return
    with pytest.raises(ConfigError, match="ingestion.local_root: required"):
        lake.raw_segments_root(None)
    with pytest.raises(ConfigError, match="ingestion.local_root: required"):
        local_root(lake_config)
    spool = tmp_path / "spool"
    assert lake.raw_segments_root(str(spool)) == spool
    assert (
        local_root(lake_config.model_copy(update={"ingestion": _config(root, None, str(spool)).ingestion}))
        == spool
    )


def test_a_build_on_the_toy_backend_equals_the_local_one(tmp_path: Path, dir_scheme) -> None:
    """Build, data tests and catalog reach the toy lake through open_lake alone: same rows as local."""
    from s3_helpers import make_lakehouse

    from daedalus.build import api
    from daedalus.land.lander import land_any
    from daedalus.serve.catalog import open_catalog

    built = {}
    for kind in ("local", "dir"):
        h = make_lakehouse(tmp_path / kind)
        for i, day in enumerate(["2024-08-07", "2024-08-08"]):
            h.add_trades(day, f"{i:04d}", n=40, start_id=i * 100)
        land_any(h.config())  # raw segments land locally (the spool is the lake folder)
        root = str(h.spool) if kind == "local" else f"dir://{h.spool}"
        cfg = h.config(**{"storage.root": root})
        assert type(open_lake(cfg)) is (LocalLake if kind == "local" else DirLake)
        before = DirLake.configured
        result = api.build(cfg, udfs=False)
        assert (DirLake.configured > before) is (kind == "dir")  # the build's connections used the hook
        assert result.rebuilt and [t.name for t in result.tests if not t.passed] == []
        con = open_catalog(cfg)
        built[kind] = (
            sorted(result.rebuilt),
            con.execute("SELECT count(*), sum(volume)::DOUBLE FROM gold.toy_bars").fetchone(),
        )
        con.close()
    assert built["dir"] == built["local"] and built["dir"][1][0] > 0
