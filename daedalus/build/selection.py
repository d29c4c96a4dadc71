"""Node selection over the model DAG: dbt's grammar plus what users of `daedalus ls` type.

One selector term:
- `name`, or fully qualified `layer.name` (the name `ls` and the catalog print: `silver.trades`);
- wildcards in names: `*_bars`, `gold.*`, `orderbook_?f`; `*` is every model;
- `tag:x`, `layer:gold`, `path:fragment` (tags and layers take wildcards too);
- graph operators: `+term` (with every ancestor), `term+` (with every descendant), `N+term` /
  `term+N` (ancestors / descendants up to N edges away), both sides at once (`+term+`, `1+term+2`).

A list of terms is a union: `--select a b`, `--select a,b`, `--select a --select b`. Terms joined by
`&` (`+orderbook_bars&tag:bars`) are an intersection. `--exclude` takes the same grammar.

A term (or intersection) that matches nothing is a SelectionError naming it and what exists
(exit 2), so `layer:platinum` or a misspelled model never looks like "everything is up to date".
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from daedalus.errors import SelectionError

if TYPE_CHECKING:
    from daedalus.build.dag import Dag
    from daedalus.build.project import Project

_TERM = re.compile(r"^(?:(?P<up>\d*)\+)?(?P<base>[^+]+?)(?:\+(?P<down>\d*))?$")
_WILD = re.compile(r"[*?\[]")


def split_terms(selectors: Iterable[str] | str | None) -> list[str]:
    """The union terms of `--select` values: separated by spaces, commas or repeated flags."""
    if selectors is None:
        return []
    if isinstance(selectors, str):
        selectors = [selectors]
    out: list[str] = []
    for s in selectors:
        out.extend(x for x in re.split(r"[\s,]+", s) if x)
    return out


def _names(project: Project, values: set[str], pattern: str) -> set[str]:
    return {v for v in values if fnmatch.fnmatchcase(v, pattern)}


def _known(kind: str, values: Iterable[str]) -> str:
    return f"{kind}: {', '.join(sorted(set(values))) or 'none'}"


def match_base(project: Project, base: str) -> set[str]:
    """Models matched by one base selector (no graph operators); SelectionError when none."""
    models = project.models
    if base.startswith("tag:"):
        tags = {t for m in models.values() for t in m.config.tags}
        found = {n for n, m in models.items() if any(fnmatch.fnmatchcase(t, base[4:]) for t in m.config.tags)}
        if not found:
            raise SelectionError(f"selector '{base}' matches nothing ({_known('tags', tags)})")
        return found
    if base.startswith("layer:"):
        found = {n for n, m in models.items() if fnmatch.fnmatchcase(m.layer, base[6:])}
        if not found:
            layers = {m.layer for m in models.values()}
            raise SelectionError(f"selector '{base}' matches nothing ({_known('layers', layers)})")
        return found
    if base.startswith("path:"):
        found = {n for n, m in models.items() if base[5:] in str(m.path)}
        if not found:
            raise SelectionError(f"selector '{base}' matches no model file")
        return found
    if "." in base:  # fully qualified: layer.name, as `ls` and the catalog spell it
        found = {n for n, m in models.items() if fnmatch.fnmatchcase(f"{m.layer}.{n}", base)}
    else:
        found = {n for n in models if fnmatch.fnmatchcase(n, base)}
    if not found:
        what = "no model matches that pattern" if _WILD.search(base) else "no such model, tag: or layer:"
        qualified = sorted(f"{m.layer}.{n}" for n, m in models.items())
        raise SelectionError(
            f"selector '{base}' matches nothing: {what} (models: {', '.join(qualified) or 'none'})"
        )
    return found


def _walk(edges: dict[str, list[str]], start: str, depth: int | None) -> set[str]:
    out: set[str] = set()
    frontier, level = [start], 0
    while frontier and (depth is None or level < depth):
        level += 1
        nxt = []
        for n in frontier:
            for m in edges.get(n, []):
                if m not in out:
                    out.add(m)
                    nxt.append(m)
        frontier = nxt
    return out


def match_term(project: Project, dag: Dag, term: str) -> set[str]:
    """Models matched by one term, `&`-joined parts intersected; SelectionError when none."""
    out: set[str] | None = None
    for part in (p.strip() for p in term.split("&")):
        if not part:
            continue
        m = _TERM.match(part)
        if m is None:
            raise SelectionError(
                f"selector '{part}': not a selector (e.g. name, +name, name+2, tag:x, layer:gold)"
            )
        base = m["base"]
        found = match_base(project, base)
        for name in list(found):
            if m["up"] is not None:
                found |= _walk(dag.parents, name, int(m["up"]) if m["up"] else None)
            if m["down"] is not None:
                found |= _walk(dag.children, name, int(m["down"]) if m["down"] else None)
        out = found if out is None else out & found
    if not out:
        raise SelectionError(f"selector '{term}' matches nothing: its parts have no model in common")
    return out


def select(
    project: Project,
    dag: Dag,
    select: Iterable[str] | str | None = None,
    exclude: Iterable[str] | str | None = None,
) -> list[str]:
    """The selected models in topological order (all of them when `select` is empty)."""
    terms = split_terms(select)
    chosen: set[str] = set(project.models) if not terms else set()
    for term in terms:
        chosen |= match_term(project, dag, term)
    excluded = split_terms(exclude)
    for term in excluded:
        chosen -= match_term(project, dag, term)
    if not chosen and project.models:
        raise SelectionError(
            f"--select {' '.join(terms) or '(all)'} --exclude {' '.join(excluded)}: "
            "the exclusions leave no model"
        )
    return dag.sort(chosen)


def date_range(start: str | None, end: str | None) -> tuple[str | None, str | None]:
    """`--start`/`--end` as given (ISO dates); SelectionError when the range is empty."""
    if start and end and start > end:
        raise SelectionError(f"--start {start} --end {end}: the range is empty (start is after end)")
    return start, end
