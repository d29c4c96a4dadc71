"""The model DAG (from the ref() edges the compiler records) and node selection.

Selection (`--select` / `--exclude`: names, `layer.name`, wildcards, `tag:`, `layer:`, `N+name+N`)
lives in daedalus/build/selection.py; `select` here is its entry point.
"""

from __future__ import annotations

import graphlib
import heapq
from collections.abc import Iterable
from dataclasses import dataclass

from daedalus.build.project import Project
from daedalus.errors import CompileError


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
    # Deterministic order: of the models whose parents are built, the first by (calls Python, name).
    # A model that calls no UDF or Python relation goes before one that does: numba and the kernels
    # load at the first that does (Session.con_for) and stay resident (~100 MB), so the models built
    # before it (silver.trades, the largest of them) peak that much lower.
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for name in sorted(parents):
        sorter.add(name, *sorted(parents[name]))
    try:
        sorter.prepare()
    except graphlib.CycleError as e:
        cycle: list[str] = list(e.args[1])  # [a, b, ..., a]: each node refs the one before it
        first, second = cycle[1], cycle[0]
        loop = " -> ".join(reversed(cycle))
        raise CompileError(f"{_ref_line(project, first, second)}: ref cycle: {loop}") from None

    def key(name: str) -> tuple[bool, str]:
        m = project.models.get(name)
        return (m is not None and m.calls_python, name)

    ready = [key(n) for n in sorter.get_ready()]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, name = heapq.heappop(ready)
        order.append(name)
        sorter.done(name)
        for n in sorter.get_ready():
            heapq.heappush(ready, key(n))
    return Dag(parents=parents, children=children, order=order)
