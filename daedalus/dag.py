"""The model DAG (from the ref() edges the compiler records) and node selection.

Selectors (dbt's grammar, the part Daedalus needs): `model`, `+model` (with its ancestors),
`model+` (with its descendants), `+model+`, `tag:x`, `layer:gold`, each combinable with `+`.
Several selectors are a union; a selector whose parts are joined by `,` is an intersection.
`--exclude` removes what its selectors match.
"""

from __future__ import annotations

import graphlib
from collections.abc import Iterable
from dataclasses import dataclass

from daedalus.errors import CompileError
from daedalus.project import Project


@dataclass
class Dag:
    parents: dict[str, list[str]]  # model → models it refs
    children: dict[str, list[str]]
    order: list[str]  # topological: parents first

    def ancestors(self, name: str) -> set[str]:
        out: set[str] = set()
        stack = list(self.parents.get(name, []))
        while stack:
            n = stack.pop()
            if n not in out:
                out.add(n)
                stack.extend(self.parents.get(n, []))
        return out

    def descendants(self, name: str) -> set[str]:
        out: set[str] = set()
        stack = list(self.children.get(name, []))
        while stack:
            n = stack.pop()
            if n not in out:
                out.add(n)
                stack.extend(self.children.get(n, []))
        return out

    def sort(self, names: Iterable[str]) -> list[str]:
        wanted = set(names)
        return [n for n in self.order if n in wanted]


def _ref_line(project: Project, model: str, ref: str) -> str:
    m = project.models[model]
    for i, line in enumerate(m.raw_sql.splitlines(), 1):
        if f"ref('{ref}')" in line or f'ref("{ref}")' in line:
            return f"{m.path}:{i}"
    return f"{m.path}:1"


def build_dag(project: Project) -> Dag:
    """The DAG of the parsed project; a cycle is one CompileError line naming file:line and the loop."""
    parents = {name: list(m.refs) for name, m in project.models.items()}
    children: dict[str, list[str]] = {name: [] for name in project.models}
    for name, ps in parents.items():
        for p in ps:
            children.setdefault(p, []).append(name)
    # Deterministic order: graphlib with nodes added in name order.
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for name in sorted(parents):
        sorter.add(name, *sorted(parents[name]))
    try:
        order = list(sorter.static_order())
    except graphlib.CycleError as e:
        cycle: list[str] = list(e.args[1])  # [a, b, ..., a]: each node refs the one before it
        first, second = cycle[1], cycle[0]
        loop = " -> ".join(reversed(cycle))
        raise CompileError(f"{_ref_line(project, first, second)}: ref cycle: {loop}") from None
    return Dag(parents=parents, children=children, order=order)


def _match_base(project: Project, base: str) -> set[str]:
    if base.startswith("tag:"):
        tag = base[4:]
        return {n for n, m in project.models.items() if tag in m.config.tags}
    if base.startswith("layer:"):
        layer = base[6:]
        return {n for n, m in project.models.items() if m.layer == layer}
    if base.startswith("path:"):
        frag = base[5:]
        return {n for n, m in project.models.items() if frag in str(m.path)}
    if base == "*":
        return set(project.models)
    if base not in project.models:
        known = ", ".join(sorted(project.models)) or "none"
        raise CompileError(f"selector '{base}': no such model, tag: or layer: (models: {known})")
    return {base}


def _match_one(project: Project, dag: Dag, selector: str) -> set[str]:
    out: set[str] | None = None
    for part in selector.split(","):
        part = part.strip()
        if not part:
            continue
        up = part.startswith("+")
        down = part.endswith("+")
        base = part.strip("+")
        names = _match_base(project, base)
        found = set(names)
        for n in names:
            if up:
                found |= dag.ancestors(n)
            if down:
                found |= dag.descendants(n)
        out = found if out is None else out & found
    return out or set()


def _split(selectors: Iterable[str] | str | None) -> list[str]:
    if selectors is None:
        return []
    if isinstance(selectors, str):
        selectors = [selectors]
    out: list[str] = []
    for s in selectors:
        out.extend(x for x in s.split() if x)
    return out


def select(project: Project, dag: Dag, select: Iterable[str] | str | None = None,
           exclude: Iterable[str] | str | None = None) -> list[str]:
    """The selected models in topological order (all of them when `select` is empty)."""
    sel = _split(select)
    chosen: set[str] = set(project.models) if not sel else set()
    for s in sel:
        chosen |= _match_one(project, dag, s)
    for s in _split(exclude):
        chosen -= _match_one(project, dag, s)
    return dag.sort(chosen)
