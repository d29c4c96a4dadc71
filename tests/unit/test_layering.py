"""The layers of docs/design.md, read from the source with `ast` (no imports run).

- collector/ depends on nothing of the build side: only itself, `daedalus.errors`, `daedalus.config`
  and `daedalus.fsio` (a stdlib-only leaf of IO helpers that the lake and land share with it).
- udfs/ (kernels and their registration) only on itself and `daedalus.config`.
- No product module (daedalus/ outside daedalus/devkit, collector/, udfs/) imports the devkit: its
  commands come in through the `daedalus.commands` entry-point group (pyproject.toml).
- serve/ reads what build/ wrote through the package `daedalus.build` only, never its modules.
- No import cycle among the modules (every import statement counts, TYPE_CHECKING and function-local
  ones too), no private member of one module reached from another, no module over ~500 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = {
    "daedalus": REPO / "daedalus",
    "daedalus.collector": REPO / "collector",
    "daedalus.udfs": REPO / "udfs",
}

# Private names of the standard library or a dependency with no public spelling: os._exit after a
# signal, sys._getframe for template line numbers, aiohttp's site._server for the bound port, ccxt's
# OrderBookSide._depth (the depth it trims a book to).
OUTSIDE_PRIVATE = {"_exit", "_getframe", "_server", "_depth"}


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for pkg, root in PACKAGES.items():
        for path in root.rglob("*.py"):
            rel = path.relative_to(root).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([pkg, *parts]) if parts else pkg
            if name.startswith("daedalus.collector") and pkg == "daedalus":
                continue
            out[name] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module imported, names taken from it) for every import statement in the file."""
    tree = ast.parse(path.read_text())
    out: list[tuple[str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.startswith("daedalus")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("daedalus"):
            out.append((node.module, [a.name for a in node.names]))
    return out


def _edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for mod, path in MODULES.items():
        for target, names in _imports(path):
            for full in [f"{target}.{n}" for n in names] + [target]:
                dst = _resolve(full)
                if dst and dst != mod and not (dst in PACKAGES and full != dst):
                    graph[mod].add(dst)
                    break
    return graph


def test_collector_and_udfs_depend_only_on_their_own_layer() -> None:
    graph = _edges()
    allowed_collector = {"daedalus.errors", "daedalus.config", "daedalus.fsio"}
    for mod, deps in graph.items():
        if mod.startswith("daedalus.collector"):
            bad = {d for d in deps if not d.startswith("daedalus.collector") and d not in allowed_collector}
            assert not bad, f"{mod} imports {sorted(bad)}"
        if mod.startswith("daedalus.udfs"):
            bad = {d for d in deps if not d.startswith("daedalus.udfs") and d != "daedalus.config"}
            assert not bad, f"{mod} imports {sorted(bad)}"


def test_product_never_imports_the_devkit() -> None:
    graph = _edges()
    for mod, deps in graph.items():
        if mod == "daedalus.devkit" or mod.startswith("daedalus.devkit."):
            continue
        bad = {d for d in deps if d == "daedalus.devkit" or d.startswith("daedalus.devkit.")}
        assert not bad, (
            f"{mod} imports {sorted(bad)} (contribute commands through the daedalus.commands entry points)"
        )


# The flow, upstream first: what a stage may not import (a later stage, or the CLI that drives them).
LATER_STAGES = {
    "daedalus.lake": ("daedalus.land", "daedalus.build", "daedalus.serve", "daedalus.cli"),
    "daedalus.land": ("daedalus.build", "daedalus.serve", "daedalus.cli"),
    "daedalus.build": ("daedalus.cli",),
    "daedalus.serve": ("daedalus.land", "daedalus.cli"),
}


def test_stages_import_only_upstream() -> None:
    graph = _edges()
    bad = {
        (mod, d)
        for mod, deps in graph.items()
        for stage, later in LATER_STAGES.items()
        if mod == stage or mod.startswith(stage + ".")
        for d in deps
        if d.startswith(later)
    }
    assert not bad, f"a stage imports a later one: {sorted(bad)}"


def test_serve_uses_only_the_build_package() -> None:
    graph = _edges()
    bad = {
        (mod, d)
        for mod, deps in graph.items()
        if mod.startswith("daedalus.serve")
        for d in deps
        if d.startswith("daedalus.build.")
    }
    assert not bad, f"serve imports build modules: {sorted(bad)}"


def _cycles(graph: dict[str, set[str]]) -> set[tuple[str, ...]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: set[tuple[str, ...]] = set()
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        m = stack.pop()
                        on.discard(m)
                        comp.append(m)
                        if m == node:
                            break
                    if len(comp) > 1:
                        out.add(tuple(sorted(comp)))
            elif nxt not in index:
                index[nxt] = low[nxt] = counter
                counter += 1
                stack.append(nxt)
                on.add(nxt)
                work.append((nxt, iter(sorted(graph[nxt]))))
            elif nxt in on:
                low[node] = min(low[node], index[nxt])
    return out


def test_no_import_cycles() -> None:
    assert _cycles(_edges()) == set()


def _own_private_names(tree: ast.Module) -> set[str]:
    """Private names a module defines: functions, classes, assignments, `self._x = ...` attributes."""
    own: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            own.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            own.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            own.add(node.attr)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            own.add(node.target.id)
    return {n for n in own if n.startswith("_") and not n.startswith("__")}


def _private_reach_ins() -> set[tuple[str, str]]:
    """(module, name): `from m import _x`, or `obj._x` where no code of this module defines `_x`."""
    found: set[tuple[str, str]] = set()
    for mod, path in MODULES.items():
        tree = ast.parse(path.read_text())
        own = _own_private_names(tree)
        for _target, names in _imports(path):
            found |= {(mod, n) for n in names if n.startswith("_") and not n.startswith("__")}
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and node.attr not in own
                and node.attr not in OUTSIDE_PRIVATE
            ):
                found.add((mod, node.attr))
    return found


def test_no_private_member_reached_across_modules() -> None:
    assert _private_reach_ins() == set()


MAX_LINES = 500  # docs/design.md "Conventions": split a module before ~500 lines


def test_modules_stay_small() -> None:
    big = {mod: n for mod, path in MODULES.items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines (split them): {big}"


def test_build_package_exports_exactly_its_api() -> None:
    """daedalus/build/__init__.py names the API twice (for type checkers and for the lazy loader):
    both lists must be api.py's, and every name must resolve."""
    import daedalus.build as package
    from daedalus.build import api

    assert package.__all__ == api.__all__
    init = ast.parse((REPO / "daedalus" / "build" / "__init__.py").read_text())
    typed = {
        a.name
        for n in ast.walk(init)
        if isinstance(n, ast.ImportFrom) and n.module == "daedalus.build.api"
        for a in n.names
    }
    assert typed == set(api.__all__)
    assert all(getattr(package, name) is getattr(api, name) for name in api.__all__)
