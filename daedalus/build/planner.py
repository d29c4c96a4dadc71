"""Which partitions a build rewrites, and why: the plan is the only thing a dry run does.

A partition is stale when it is new, when its tests failed last time, when an input partition it
reads is rebuilt in this build ("upstream rebuilt"), or (carry_state) when an earlier date of its
series is ("earlier date rebuilt"), or when its fingerprint differs from the manifest's.

The fingerprint hashes named parts (SQLMesh's snapshot fingerprint, in small): `sql` (the compiled
SQL as tokens, `sqltext.canonical_sql`: layout and comments change no partition; it names the exact
input files), `config` (the data-affecting config), `inputs` (sizes and
mtimes of the input files) and `previous` (carry_state: the previous partition's files). The manifest
stores each part's hash beside the fingerprint, so the reason names what changed ("sql changed",
"config changed, inputs changed"); a partition recorded before the parts were stored only says
"inputs changed". A partition recorded before the sql part was canonical (no `sql_form` in its
parts), or before its Python relations were named over `<root>` (`sql_form` "tokens"), is checked
against the fingerprint that older version computed, so upgrading rebuilds nothing.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from daedalus.build.materializations import MATERIALIZATIONS, PartPlan
from daedalus.build.outcome import load_failed
from daedalus.build.parts import InputPart
from daedalus.build.publish import normalize_sql
from daedalus.lake.manifest import files_fingerprint, fingerprint
from daedalus.sqltext import canonical_sql

if TYPE_CHECKING:
    from daedalus.build.project import Model
    from daedalus.build.session import Session
    from daedalus.lake.manifest import PartitionState

PARTS = ("sql", "config", "inputs", "previous")  # the order reasons name them in
# parts["sql_form"]: the sql part hashes canonical_sql, not the rendered text, its relations named over
# <root> (TOKENS_FORM: over the lake's own paths; no sql_form: the rendered text)
SQL_FORM = "tokens, relations at <root>"
TOKENS_FORM = "tokens"
# A relation named in another's parameters (silver.orderbook_unserved names the book stream whose filings
# it reads): a digest of a text the query does not hold, fingerprinted as its kind. The query's own input
# names the same files.
NAMED_IN_PARAMS = re.compile(r'"__daedalus_rel_(\w+)_[0-9a-f]{16}"')
# An input as a compiled query reads it: its exact files, or an empty marker while it has none. Which
# files is the `inputs` part, so the `sql` part sees every input as the same token.
INPUT = re.compile(
    r"read_parquet\(\[(?:'(?:[^']|'')*'(?:, )?)*\], hive_partitioning=(?:true|false), union_by_name=true\)"
    r"|\(/\* (?:empty (?:model|source) \w+|no previous partition) \*/\)"
)


def partition_fingerprint(
    s: Session, model: Model, part: PartPlan, form: str | None = SQL_FORM
) -> tuple[str, dict[str, str], dict[str, str]]:
    """(fingerprint, input partition id → files' fingerprint, named part → its hash), as `form` (a
    record's `sql_form`) computes it: SQL_FORM; TOKENS_FORM, the versions whose Python relations were
    named over the lake's own paths; None, the versions before canonical SQL (over the rendered text)."""
    from daedalus.udfs.relations import renamed

    # Empty inputs render as a marker: how their columns were learned (manifest, SQL, kwargs)
    # must not change the fingerprint. Staged inputs are spelled as published and the lake's root as
    # <root>, and every Python relation is named again over that text (its name is a digest of its
    # input query, which names its files): a carry_state model read its previous date while staged
    # when both dates built in one build, so the next build found that date "sql changed", and a
    # moved or copied lake found every book model so.
    sql = normalize_sql(s.compile_model_sql(model, part, symbolic_empty=True))
    if form == SQL_FORM:
        sql = renamed(NAMED_IN_PARAMS.sub(r'"<relation \1>"', sql.replace(s.lake.root, "<root>")))
    else:  # an older record: its relations were named over the lake's own paths
        sql = renamed(sql).replace(s.lake.root, "<root>")
    legacy = form is None
    inputs = {ip.id: files_fingerprint(ip.files) for ip in s.renderer.reads(model, part)}
    own_inputs = dict(inputs)
    prev = s.inventory.previous_part(model, part) if model.config.carry_state else None
    if prev is not None:
        inputs[f"previous:{prev.pid}"] = files_fingerprint(prev.files)
    config = model.config.data_affecting()
    text = sql if legacy else canonical_sql(sql)
    fp = fingerprint({"sql": text, "inputs": inputs, "config": config})
    parts = {
        "sql": fingerprint(INPUT.sub("<input>", sql) if legacy else canonical_sql(INPUT.sub("<input>", sql))),
        "config": fingerprint(config),
        "inputs": fingerprint(own_inputs),
        "previous": fingerprint({k: v for k, v in inputs.items() if k.startswith("previous:")}),
    }
    if not legacy:
        parts["sql_form"] = form
    return fp, inputs, parts


def fresh(s: Session, model: Model, part: PartPlan, state: PartitionState) -> tuple[bool, dict[str, str]]:
    """Does the partition match its recorded fingerprint? (and the current named parts)"""
    fp, _, parts = partition_fingerprint(s, model, part)
    if fp == state.fingerprint:
        return True, parts
    form = state.parts.get("sql_form")
    if form != SQL_FORM:  # recorded by an older version: compare alike
        old_fp, _, old_parts = partition_fingerprint(s, model, part, form if form == TOKENS_FORM else None)
        return old_fp == state.fingerprint, old_parts
    return False, parts


def changed(old: PartitionState, parts: dict[str, str]) -> str:
    """Why a fingerprint differs, by its named parts ("inputs changed" when the manifest has none)."""
    if not old.parts:
        return "inputs changed"
    names = [n for n in PARTS if old.parts.get(n) != parts.get(n)]
    return (
        ", ".join(f"{'previous partition' if n == 'previous' else n} changed" for n in names)
        or "inputs changed"
    )


def obsolete(s: Session, models: list[str]) -> list[tuple[str, str]]:
    """Partitions the manifest holds that the model's current config can never produce
    (partition_by or materialization changed): dropped by the next build, never read."""
    out = []
    for name in models:
        model = s.project.models[name]
        ms = s.manifest.models.get(name)
        if ms is None:
            continue
        mat = MATERIALIZATIONS[model.materialized]
        want = list(mat.relation_keys(model)) if mat.writes_files else None
        for pid, ps in ms.partitions.items():
            if want is None or list(ps.keys) != want or MATERIALIZATIONS.get(ms.materialized) is not mat:
                out.append((name, pid))
    return out


def drop_obsolete(s: Session) -> list[tuple[str, str]]:
    """Remove from the manifest the obsolete partitions the last `plan()` found (their files go
    through pending deletions like any replaced file). Executors call this before writing."""
    for name, pid in s.dropped:
        s.manifest.drop_partition(name, pid)
        ms = s.manifest.models.get(name)
        if ms is not None:
            ms.materialized = s.project.models[name].materialized
    if s.dropped:
        s.manifest.save()
    return list(s.dropped)


def plan(s: Session, models: list[str], full_refresh: bool = False) -> list[PartPlan]:
    """The stale partitions of the selected models, in build order (parents first)."""
    out: list[PartPlan] = []
    s.dropped = obsolete(s, s.dag.sort(models))
    for name, pid in s.dropped:
        s.inventory.parts(f"model:{name}").pop(pid, None)
    failed = load_failed(s.lake)  # partitions whose tests failed: rebuilt until they pass
    for name in s.dag.sort(models):
        model = s.project.models[name]
        mat = MATERIALIZATIONS[model.materialized]
        if not mat.writes_files:
            continue
        registry = s.inventory.parts(f"model:{name}")
        stale_series: set[tuple] = set()
        for part in mat.candidates(s.inventory, model):
            state = s.manifest.partition(name, part.pid)
            reason = ""
            if full_refresh:
                reason = "full refresh"
            elif state is None:
                reason = "new"
            elif part.pid in failed.get(name, {}):
                reason = "tests failed"
            elif any(ip.planned for ip in part.reads):
                reason = "upstream rebuilt"
            elif model.config.carry_state and part.series() in stale_series:
                reason = "earlier date rebuilt"
            else:
                same, parts = fresh(s, model, part, state)
                if not same:
                    reason = changed(state, parts)
            if not reason:
                continue
            part.stale, part.reason = True, reason
            out.append(part)
            if model.config.carry_state:
                stale_series.add(part.series())
            existing = registry.get(part.pid)
            if existing is None:
                registry[part.pid] = InputPart(f"model:{name}", part.pid, dict(part.keys), [], planned=True)
            else:
                existing.planned = True
    return out
