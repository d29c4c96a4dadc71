"""One unit of work, whatever runs it: build one partition, then record what it wrote.

`build_partition` compiles a planned partition, applies the model's DuckDB settings, writes it
(staged) through its materialization and describes the file; it returns a `PartitionResult` (plain,
picklable: a Dask worker sends it to the driver). `record_partition` puts a result into the manifest
(staged until the model is published), the inventory and the build's statistics. The local loop
(execute.py) and the distributed executors (distributed.py) both call exactly these two.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from daedalus.build.materializations import MATERIALIZATIONS, PartPlan
from daedalus.build.parts import InputPart
from daedalus.build.planner import partition_fingerprint
from daedalus.lake.manifest import PartitionState

if TYPE_CHECKING:
    from daedalus.build.datatests import TestResult
    from daedalus.build.outcome import BuildTracker
    from daedalus.build.session import Session
    from daedalus.lake import FileInfo


@dataclass
class ModelStats:
    model: str
    relation: str
    materialized: str
    partitions: int = 0
    rows: int = 0
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0


@dataclass
class BuildResult:
    plan: list[PartPlan] = field(default_factory=list)
    stats: dict[str, ModelStats] = field(default_factory=dict)
    tests: list[TestResult] = field(default_factory=list)
    peak_rss: int = 0
    seconds: float = 0.0
    dry_run: bool = False
    dropped: list[tuple[str, str]] = field(default_factory=list)  # obsolete partitions removed
    tracker: BuildTracker | None = None  # per-model PASS/WARN/ERROR/SKIP
    notes: list[str] = field(default_factory=list)  # e.g. damaged bronze files repaired first
    docs_refreshed: bool = False  # nothing rebuilt, but the catalog's docs (comments) changed

    @property
    def rebuilt(self) -> list[tuple[str, str]]:
        return [(p.model, p.pid) for p in self.plan]


@dataclass
class PartitionResult:
    """What building one partition produced: what the manifest records of it."""

    model: str
    pid: str
    keys: dict[str, str]
    files: list[FileInfo]
    rows: int
    bytes: int
    fingerprint: str
    inputs: dict[str, str]
    parts: dict[str, str]  # the fingerprint's named parts (planner.py)
    seconds: float
    columns: list[list[str]]  # [] when not described


def build_partition(s: Session, model_name: str, part: PartPlan, describe: bool = True) -> PartitionResult:
    """Compile, write (staged) and describe one planned partition."""
    model = s.project.models[model_name]
    t0 = time.monotonic()
    sql = s.compile_model_sql(model, part)
    fp, inputs, parts = partition_fingerprint(s, model, part)
    old = s.apply_settings(model)  # per-model DuckDB settings (threads=1: the same float sums anywhere)
    try:
        written = MATERIALIZATIONS[model.materialized].write(s.ctx, model, part, sql)
    finally:
        s.restore_settings(old)
    columns = s.describe(written.files[0]) if describe and written.files else []
    return PartitionResult(
        model.name,
        part.pid,
        dict(part.keys),
        list(written.files),
        written.rows,
        written.bytes,
        fp,
        inputs,
        parts,
        time.monotonic() - t0,
        columns,
    )


def record_partition(s: Session, r: PartitionResult, stats: dict[str, ModelStats]) -> ModelStats:
    """Record a built partition in the manifest (staged while its model is), the inventory (later
    partitions read it) and the model's statistics; returns those statistics."""
    model = s.project.models[r.model]
    state = PartitionState(
        keys=dict(r.keys),
        files=list(r.files),
        fingerprint=r.fingerprint,
        rows=r.rows,
        bytes=r.bytes,
        inputs=dict(r.inputs),
        built_at=time.time(),
        seconds=r.seconds,
        parts=dict(r.parts),
    )
    s.manifest.replace_partition(model.name, r.pid, state, model.materialized, model.layer)
    st = stats.setdefault(model.name, ModelStats(model.name, model.relation, model.materialized))
    ms = s.manifest.models[model.name]
    if r.columns and (not ms.columns or st.partitions == 0):
        ms.columns = r.columns  # the first partition of a build: the schema may have changed
    rel = f"model:{model.name}"
    ip = s.inventory.parts(rel).get(r.pid)
    if ip is None:
        s.inventory.put(InputPart(rel, r.pid, dict(r.keys), list(r.files)), keep_order=True)
    else:  # planned: later partitions' plans hold this very object
        ip.files, ip.planned = list(r.files), False
    st.partitions += 1
    st.rows += r.rows
    st.files += len(r.files)
    st.bytes += r.bytes
    st.seconds += r.seconds
    return st
