"""What the lake holds for a build: the partitions of every source and model, and which a model reads.

Sources are listed from the lake (bronze is written by the collector, not recorded in the manifest);
models come from the manifest. Registries are cached per relation; executors update them as they
write, and `forget` makes the next look-up read the manifest again (after a publish or a failure).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from daedalus.build.materializations import MATERIALIZATIONS
from daedalus.build.parts import InputPart, PartRegistry, RowGroupSpan
from daedalus.errors import BuildError
from daedalus.lake.manifest import files_fingerprint
from daedalus.paths import hive_keys
from daedalus.sqltext import read_parquet_sql, sql_str

if TYPE_CHECKING:
    import duckdb

    from daedalus.build.materializations import PartPlan
    from daedalus.build.project import Model, Project
    from daedalus.lake import FileInfo, Lake
    from daedalus.lake.manifest import Manifest


def _int_or_none(v: str | None) -> int | None:
    try:
        return int(v) if v is not None else None
    except ValueError:
        return None


class Inventory:
    """The partitions of sources and models over one lake and manifest (a `materializations.Inputs`)."""

    def __init__(
        self,
        project: Project,
        lake: Lake,
        manifest: Manifest,
        con: Callable[[], duckdb.DuckDBPyConnection],
        start: str | None = None,
        end: str | None = None,
    ) -> None:
        self.project, self.lake, self.manifest, self.con = project, lake, manifest, con
        self.start, self.end = start, end
        self.registries: dict[str, PartRegistry] = {}
        self.leaves: dict[str, list[str]] = {}
        self.spans: dict[str, tuple[str, list[RowGroupSpan]]] = {}

    def relation_keys(self, rel: str) -> list[str]:
        kind, name = rel.split(":", 1)
        if kind == "source":
            return list(self.project.sources[name].partition_by)
        m = self.project.models[name]
        return MATERIALIZATIONS[m.materialized].relation_keys(m)

    def leaf_relations(self, model: Model) -> list[str]:
        """The file-backed relations a model reads, looking through the models a ref() inlines."""
        if model.name in self.leaves:
            return self.leaves[model.name]
        out: list[str] = [f"source:{name}" for _, name in model.sources]
        for r in model.refs:
            up = self.project.models[r]
            if MATERIALIZATIONS[up.materialized].inlines:
                out.extend(self.leaf_relations(up))
            else:
                out.append(f"model:{r}")
        out = list(dict.fromkeys(out))
        self.leaves[model.name] = out
        return out

    def _read(self, ip: InputPart, sql: str, what: str) -> list[tuple]:
        """Rows of a query over an input partition's files; a failure is one error naming them."""
        import duckdb

        try:
            return self.con().execute(sql).fetchall()
        except duckdb.Error as e:
            from daedalus.duck import storage_error

            storage = storage_error(None, str(e), f"{self.lake.url(ip.files[0].path)}: {ip.id}")
            if storage is not None:
                raise storage from None
            raise BuildError(
                f"{self.lake.url(ip.files[0].path)}: cannot read {what} of {ip.id}: {str(e).splitlines()[0]}"
            ) from None

    def source_relations(self, model: Model) -> list[str]:
        """Every source a model's rows come from, through all the models it refs (inlined or not)."""
        out: list[str] = [f"source:{name}" for _, name in model.sources]
        for r in model.refs:
            out.extend(self.source_relations(self.project.models[r]))
        return list(dict.fromkeys(out))

    def row_group_spans(self, ip: InputPart) -> list[RowGroupSpan]:
        """The row groups of a source partition's files, from their footers alone (no data read):
        compressed bytes, receive-time range and symbol range. Cached by the files' fingerprint."""
        if ip.planned or not ip.files:
            return []
        fp = files_fingerprint(ip.files)
        cached = self.spans.get(ip.id)
        if cached is not None and cached[0] == fp:
            return cached[1]

        def stat(col: str, which: str) -> str:
            return f"max(CASE WHEN path_in_schema = '{col}' THEN stats_{which}_value END)"

        sql = (
            "SELECT sum(total_compressed_size), "
            f"{stat('collected_at', 'min')}, {stat('collected_at', 'max')}, "
            f"{stat('symbol', 'min')}, {stat('symbol', 'max')} "
            f"FROM parquet_metadata([{', '.join(sql_str(self.lake.url(f.path)) for f in ip.files)}]) "
            "GROUP BY file_name, row_group_id ORDER BY ALL"
        )
        rows = self._read(ip, sql, "the Parquet footers")
        spans = [
            RowGroupSpan(int(b or 0), _int_or_none(lo), _int_or_none(hi), slo, shi)
            for b, lo, hi, slo, shi in rows
        ]
        self.spans[ip.id] = (fp, spans)
        return spans

    def parts(self, rel: str) -> PartRegistry:
        if rel in self.registries:
            return self.registries[rel]
        kind, name = rel.split(":", 1)
        found: dict[str, InputPart] = {}
        if kind == "source":
            src = self.project.sources[name]
            prefix = src.lake_prefix + "/"
            groups: dict[str, list[FileInfo]] = {}
            for f in self.lake.list(src.lake_prefix):
                if not f.path.endswith(".parquet"):
                    continue
                pid = f.path[len(prefix) :].rsplit("/", 1)[0] if "/" in f.path[len(prefix) :] else ""
                groups.setdefault(pid, []).append(f)
            for pid, files in sorted(groups.items()):
                keys = hive_keys(pid)
                if keys is None:
                    continue
                found[pid] = InputPart(rel, pid, keys, files)
        else:
            ms = self.manifest.models.get(name)
            if ms is not None:
                for pid, ps in sorted(ms.partitions.items()):
                    found[pid] = InputPart(rel, pid, dict(ps.keys), list(ps.files))
        registry = PartRegistry(found)
        self.registries[rel] = registry
        return registry

    def put(self, ip: InputPart, keep_order: bool = False) -> None:
        """Record a written partition. `keep_order`: re-sort the registry by partition id, the order a
        fresh session loads (files are listed in that order in the SQL, and so in its fingerprint)."""
        registry = self.parts(ip.relation)
        registry[ip.pid] = ip
        if keep_order:
            self.registries[ip.relation] = PartRegistry(sorted(registry.items()))

    def forget(self, rel: str) -> None:
        """Read the relation's partitions again at the next look-up (from the manifest)."""
        self.registries.pop(rel, None)

    def in_range(self, date: str | None) -> bool:
        if date is None:
            return True
        if self.start and date < self.start:
            return False
        return not (self.end and date > self.end)

    def all_files(self, rel: str) -> list[FileInfo]:
        """Every current file of a relation, in partition order."""
        return [f for ip in sorted(self.parts(rel).values(), key=lambda ip: ip.pid) for f in ip.files]

    def previous_part(self, model: Model, part: PartPlan) -> InputPart | None:
        """The latest partition of the same series before this one's date (carry_state)."""
        series = part.series()
        best: InputPart | None = None
        for ip in self.parts(f"model:{model.name}").values():
            if tuple((k, v) for k, v in ip.keys.items() if k != "date") != series:
                continue
            d = ip.keys.get("date", "")
            if d < part.keys["date"] and (best is None or d > best.keys["date"]):
                best = ip
        return best

    def discover(self, rel: str, ip: InputPart, missing: list[str]) -> list[dict[str, str]]:
        """Values of partition keys an input lacks in its path (symbol in bronze), from its files."""
        if ip.planned or not ip.files:
            return []
        fp = files_fingerprint(ip.files)
        cache_key = f"{ip.id}|{','.join(missing)}"
        cached = self.manifest.discovery.get(cache_key)
        if cached and cached.get("fp") == fp:
            return [dict(v) for v in cached["values"]]
        hive = rel.startswith("source:")
        cols = ", ".join(
            f"strftime(CAST(\"{k}\" AS DATE), '%Y-%m-%d')" if k == "date" else f'CAST("{k}" AS VARCHAR)'
            for k in missing
        )
        where = " AND ".join(f'"{k}" IS NOT NULL' for k in missing)
        sql = (
            f"SELECT DISTINCT {cols} "
            f"FROM {read_parquet_sql([self.lake.url(f.path) for f in ip.files], hive)} "
            f"WHERE {where} ORDER BY ALL"
        )
        rows = self._read(ip, sql, f"partition keys {missing}")
        values = [dict(zip(missing, (str(v) for v in row), strict=True)) for row in rows]
        self.manifest.discovery[cache_key] = {"fp": fp, "values": values}
        return values
