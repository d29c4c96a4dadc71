"""Each S3 lake has its own local catalog, and a catalog answers only for its own root (issue 17,
case 1): two lakes used with one temp_directory no longer overwrite each other's catalog."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from s3_helpers import make_lakehouse

from daedalus.build import api
from daedalus.errors import StorageError
from daedalus.fsio import make_s3_client
from daedalus.land.lander import land_any
from daedalus.serve.catalog import catalog_path, catalog_root, open_catalog

pytestmark = [pytest.mark.s3, pytest.mark.slow]


def count(cfg) -> int:
    con = open_catalog(cfg)
    try:
        return con.execute("SELECT count(*) FROM silver.toy_trades").fetchone()[0]
    finally:
        con.close()


def test_two_s3_lakes_keep_their_own_catalogs(tmp_path: Path, moto_server) -> None:
    client = make_s3_client(moto_server.endpoint, use_ssl=False, url_style="path")
    shared = str(tmp_path / "one_temp_dir")  # what both lakes used to share the catalog through
    cfgs = []
    for name, n in (("l1", 40), ("l2", 10)):
        h = make_lakehouse(tmp_path / name, moto_server, client=client)
        h.add_trades("2024-08-08", "0001", n=n)
        cfg = h.config(**{"duckdb.temp_directory": shared})
        land_any(cfg)
        api.build(cfg, udfs=False)
        cfgs.append(cfg)
    l1, l2 = cfgs
    assert catalog_path(l1) != catalog_path(l2)
    assert catalog_root(catalog_path(l1)) == l1.storage.root
    assert (count(l1), count(l2)) == (40, 10)

    # A catalog found at a lake's path that belongs to another root is refused, and a build —
    # with nothing to rebuild — rewrites it instead of calling it up to date.
    shutil.copy(catalog_path(l1), catalog_path(l2))
    with pytest.raises(
        StorageError, match=f"belongs to the lake {l1.storage.root}, not to storage.root {l2.storage.root}"
    ):
        count(l2)
    again = api.build(l2, udfs=False)
    assert again.rebuilt == []
    assert catalog_root(catalog_path(l2)) == l2.storage.root and count(l2) == 10
