"""The build manifest: `_state/manifest.json`, the single source of truth of what the lake holds.

Per model and partition it records the exact output files, rows, bytes, the fingerprint of what the
partition was built from (input files + sizes + mtimes, the compiled SQL, data-affecting config)
and the input partitions it read with their own fingerprints. Readers (`ref()`, the catalog) use
these file lists; the catalog and engines outside Daedalus glob the model folders, which hold one
file per partition (daedalus/build/publish.py).

Files a partition no longer uses go to `pending_deletions`; the build moves them out of the model
folders (to `_trash/`) right after the manifest without them is saved, and deletes the trash once
`storage.retain_replaced_minutes` has passed. The manifest is written atomically (temp file + fsync +
rename).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from daedalus.errors import StorageError
from daedalus.lake import FileInfo, Lake
from daedalus.paths import partition_id

MANIFEST = "_state/manifest.json"
VERSION = 1


def fingerprint(obj: Any) -> str:
    """A stable short hash of a JSON-able object."""
    data = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(data).hexdigest()[:32]


STAGED = re.compile(r"(?:^|(?<=/))_staging/\d+-[0-9a-f]+/")  # a build's staging batch (build/publish.py)


def unstaged(path: str) -> str:
    """The published path of a staged file (other paths unchanged)."""
    return STAGED.sub("", path, count=1)


def files_fingerprint(files: list[FileInfo]) -> str:
    # a staged file and its published copy are the same input
    return fingerprint([[unstaged(f.path), f.size, f.mtime] for f in files])


@dataclass
class PartitionState:
    keys: dict[str, str]
    files: list[FileInfo]
    fingerprint: str
    rows: int = 0
    bytes: int = 0
    inputs: dict[str, str] = field(default_factory=dict)  # input partition id → its files' fingerprint
    built_at: float = 0.0
    seconds: float = 0.0
    # The fingerprint's named parts (sql, config, inputs, previous → a short hash each), so a plan can
    # say which one changed; {} in manifests written before they were recorded.
    parts: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "keys": self.keys,
            "files": [f.as_list() for f in self.files],
            "fingerprint": self.fingerprint,
            "rows": self.rows,
            "bytes": self.bytes,
            "inputs": self.inputs,
            "built_at": self.built_at,
            "seconds": round(self.seconds, 4),
            **({"parts": self.parts} if self.parts else {}),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PartitionState:
        return cls(
            keys=dict(d["keys"]),
            files=[FileInfo(*f) for f in d.get("files", [])],
            fingerprint=d.get("fingerprint", ""),
            rows=int(d.get("rows", 0)),
            bytes=int(d.get("bytes", 0)),
            inputs=dict(d.get("inputs", {})),
            built_at=float(d.get("built_at", 0.0)),
            seconds=float(d.get("seconds", 0.0)),
            parts=dict(d.get("parts", {})),
        )


@dataclass
class ModelState:
    materialized: str
    layer: str
    partitions: dict[str, PartitionState] = field(default_factory=dict)
    columns: list[list[str]] = field(default_factory=list)  # [[name, duckdb type], ...] of the output
    last_build: dict[str, Any] = field(default_factory=dict)

    def files(self) -> list[FileInfo]:
        out: list[FileInfo] = []
        for pid in sorted(self.partitions):
            out.extend(self.partitions[pid].files)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "materialized": self.materialized,
            "layer": self.layer,
            "columns": self.columns,
            "last_build": self.last_build,
            "partitions": {pid: p.to_json() for pid, p in sorted(self.partitions.items())},
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ModelState:
        return cls(
            materialized=d.get("materialized", "partitioned"),
            layer=d.get("layer", ""),
            columns=[list(c) for c in d.get("columns", [])],
            last_build=dict(d.get("last_build", {})),
            # Ids come from the stored keys: a lake written when `/` was spelled `-` gets today's
            # (injective) ids, its files stay where they are (daedalus/paths.py).
            partitions=_rekeyed(
                {pid: PartitionState.from_json(p) for pid, p in d.get("partitions", {}).items()}
            ),
        )


def _rekeyed(parts: dict[str, PartitionState]) -> dict[str, PartitionState]:
    out = {pid: p for pid, p in parts.items() if not p.keys or not pid or partition_id(p.keys) == pid}
    for pid, p in parts.items():
        if pid not in out:
            out.setdefault(partition_id(p.keys), p)  # the current id wins over an old spelling
    return out


class Manifest:
    """The in-memory manifest; `save()` writes it atomically."""

    def __init__(self, lake: Lake, data: dict[str, Any] | None = None) -> None:
        self.lake = lake
        data = data or {}
        self.models: dict[str, ModelState] = {
            name: ModelState.from_json(m) for name, m in data.get("models", {}).items()
        }
        self.pending_deletions: list[dict[str, Any]] = list(data.get("pending_deletions", []))
        self.discovery: dict[str, dict[str, Any]] = dict(data.get("discovery", {}))
        self.last_build: dict[str, Any] = dict(data.get("last_build", {}))
        self.saves = 0
        # model → (its partitions written so far in this build, its columns before): not visible to
        # readers, not saved, until publish() (see stage()).
        self._staged: dict[str, tuple[dict[str, PartitionState], list[list[str]]]] = {}

    @classmethod
    def load(cls, lake: Lake) -> Manifest:
        raw = lake.read_bytes(MANIFEST)
        if raw is None:
            return cls(lake)
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as e:
            raise StorageError(
                f"{lake.url(MANIFEST)}: corrupt manifest ({e}); restore it or delete it "
                "and run `daedalus build --full-refresh`"
            ) from None
        if data.get("version") != VERSION:
            raise StorageError(
                f"{lake.url(MANIFEST)}: manifest version {data.get('version')} is not {VERSION}"
            )
        return cls(lake, data)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "models": {name: m.to_json() for name, m in sorted(self.models.items())},
            "pending_deletions": self.pending_deletions,
            "discovery": self.discovery,
            "last_build": self.last_build,
        }

    def save(self) -> None:
        self.lake.write_atomic(MANIFEST, json.dumps(self.to_json(), separators=(",", ":")).encode())
        self.saves += 1

    # -- models and partitions ---------------------------------------------------------------

    def model(self, name: str, materialized: str = "partitioned", layer: str = "") -> ModelState:
        m = self.models.get(name)
        if m is None:
            m = self.models[name] = ModelState(materialized, layer)
        m.materialized, m.layer = materialized, layer or m.layer
        return m

    def partition(self, model: str, pid: str) -> PartitionState | None:
        m = self.models.get(model)
        return m.partitions.get(pid) if m else None

    # -- a model's partitions are published together or not at all --------------------------------
    def stage(self, model: str) -> None:
        """From now on the partitions written for `model` wait in this build until publish(): a model
        failing on its 3rd partition must not leave readers a mix of two versions of its SQL."""
        ms = self.models.get(model)
        self._staged[model] = ({}, [list(c) for c in ms.columns] if ms else [])

    def staged(self, model: str) -> dict[str, PartitionState]:
        """The partitions of `model` written in this build and not yet published."""
        return self._staged.get(model, ({}, []))[0]

    def publish(self, model: str) -> None:
        """Make every staged partition of `model` current at once (the caller saves)."""
        staged, _ = self._staged.pop(model, ({}, []))
        ms = self.models[model]
        for pid, new in staged.items():
            self._replace(ms, pid, new)

    def unstage(self, model: str) -> bool:
        """Drop what was staged and not published (a failed model): its files become pending
        deletions, the model's columns go back to what its published partitions hold. True when
        something was dropped."""
        staged, columns = self._staged.pop(model, ({}, []))
        if model in self.models and staged:
            self.models[model].columns = columns
        now = time.time()
        self.pending_deletions.extend(
            {"path": f.path, "replaced_at": now} for p in staged.values() for f in p.files
        )
        return bool(staged)

    def replace_partition(
        self, model: str, pid: str, new: PartitionState, materialized: str, layer: str
    ) -> list[str]:
        """Record `new` as the partition's content; the files it replaces become pending deletions.
        While `model` is staged, `new` waits for publish() instead."""
        m = self.model(model, materialized, layer)
        if model in self._staged:
            self._staged[model][0][pid] = new
            return []
        return self._replace(m, pid, new)

    def _replace(self, m: ModelState, pid: str, new: PartitionState) -> list[str]:
        old = m.partitions.get(pid)
        m.partitions[pid] = new
        keep = {f.path for f in new.files}
        replaced = [f.path for f in old.files if f.path not in keep] if old else []
        now = time.time()
        self.pending_deletions.extend({"path": p, "replaced_at": now} for p in replaced)
        return replaced

    def drop_partition(self, model: str, pid: str) -> None:
        m = self.models.get(model)
        if m and pid in m.partitions:
            old = m.partitions.pop(pid)
            now = time.time()
            self.pending_deletions.extend({"path": f.path, "replaced_at": now} for f in old.files)

    def referenced(self) -> set[str]:
        return {f.path for m in self.models.values() for p in m.partitions.values() for f in p.files}

    def forget_deletions(self, paths: list[str]) -> None:
        gone = set(paths)
        self.pending_deletions = [d for d in self.pending_deletions if d["path"] not in gone]
