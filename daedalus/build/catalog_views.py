"""The catalog's views, computed by the build (which has the compiler) as plain data; the serve side
(daedalus/serve/catalog.py) only writes them into the catalog file.

Views glob each model's folder, relative to the lake root for a local lake (the reasons are in
daedalus/serve/catalog_paths.py); an input with no files yet is an empty typed relation, since DuckDB
fails a glob that matches nothing. A model whose ref() inlines (a view) is rendered with the same
globs; partitions whose data tests failed are left out (outcome.catalog_filter).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from daedalus.build.materializations import kind
from daedalus.build.outcome import catalog_filter, failed_keys
from daedalus.build.resolvers import CatalogResolver
from daedalus.lake import LocalLake
from daedalus.serve.catalog import CatalogSpec, CatalogView, catalog_holds, catalog_path, write_catalog
from daedalus.serve.catalog_paths import RELATIVE_ROOT, pattern_sql
from daedalus.sqltext import empty_relation_sql, sql_str

if TYPE_CHECKING:
    from daedalus.build.resolvers import Renderer
    from daedalus.build.session import Session


class GlobResolver(CatalogResolver):
    """ref()/source() of inlined models in the catalog: the same globs as the other views."""

    def relation(self, rel: str) -> str:
        return glob_relation(self.r, rel)


def _glob(r: Renderer, prefix: str, depth: int) -> str:
    """The SQL of the pattern of every partition file under `prefix`, `depth` partition folders deep
    (local: relative to wherever the lake is when read, catalog_paths.pattern_sql)."""
    rel = prefix + "/*" * depth + "/*.parquet"
    if isinstance(r.lake, LocalLake):
        return pattern_sql(rel)
    return sql_str(r.lake.url(rel))


def glob_relation(r: Renderer, rel: str) -> str:
    """A catalog relation over every file of a source or model (glob), or an empty typed relation
    while there is none."""
    kind_, name = rel.split(":", 1)
    if not any(ip.files for ip in r.inventory.parts(rel).values()):  # (planned, unbuilt partitions have none)
        if kind_ == "source":
            return empty_relation_sql(r.source_columns(name))
        return r.empty_model_relation(r.project.models[name], None)
    if kind_ == "source":
        src = r.project.sources[name]
        pattern = _glob(r, src.lake_prefix, len(src.partition_by))
        return f"read_parquet({pattern}, hive_partitioning=true, union_by_name=true)"
    model = r.project.models[name]
    pattern = _glob(r, model.lake_prefix, len(r.inventory.relation_keys(rel)))
    return f"read_parquet({pattern}, hive_partitioning=false, union_by_name=true)"


def catalog_spec(s: Session) -> CatalogSpec:
    """The catalog of the session's project over what its manifest holds."""
    r = s.renderer
    local = isinstance(s.lake, LocalLake)
    project = s.project
    schemas = (
        {"bronze"}
        | {m.layer for m in project.models.values()}
        | {src.source_name for src in project.sources.values()}
    )
    views: list[CatalogView] = []
    for src in sorted(project.sources.values(), key=lambda x: x.name):
        views.append(
            CatalogView(
                src.source_name,
                src.name,
                f"SELECT * FROM {glob_relation(r, f'source:{src.name}')}",
                src.docs.description,
                _column_comments(src.docs),
            )
        )
    failed = failed_keys(s.lake, s.manifest)  # partitions whose data tests failed: left out
    for name in s.dag.order:
        m = project.models[name]
        if kind(m).inlines:
            body = s.compiler.render_model(m, GlobResolver(r), None)
        else:
            body = f"SELECT * FROM {glob_relation(r, f'model:{name}')}" + catalog_filter(failed.get(name, []))
        views.append(CatalogView(m.layer, m.name, body, m.docs.description, _column_comments(m.docs)))
    root = RELATIVE_ROOT if local else s.config.storage.root.rstrip("/")
    return CatalogSpec(sorted(schemas), views, root, remote=not local)


def _column_comments(docs: object) -> dict[str, str]:
    cols = getattr(docs, "columns", {}) or {}
    return {c.name: c.description for c in cols.values() if c.description}


def refresh_catalog(s: Session, force: bool = False) -> float:
    """Rewrite the catalog from the session's manifest; returns when (for Session.purge_deletions)."""
    t = time.time()
    write_catalog(s.config, catalog_spec(s), force=force)
    return t


def refresh_stale_docs(s: Session) -> bool:
    """After a build that wrote nothing: rewrite the catalog when what it would hold changed without
    a partition changing (a model's or column's description, a comment in a view's SQL): the
    docs-only change of docs/contracts.md. True when it did."""
    spec = catalog_spec(s)
    if catalog_holds(s.config, spec):
        return False
    path = catalog_path(s.config)
    before = _identity(path)
    write_catalog(s.config, spec)  # the same statements keep the live file (an older sidecar)
    return _identity(path) != before


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns
