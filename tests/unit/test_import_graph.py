"""The import graph of the project's own modules: no cycles, AWS SDK imports only in ``dal``, and
repositories constructed only in ``dal`` and the composition root (``neruba.bootstrap``).

Every ``import`` and ``from ... import`` of a module file counts, those inside functions too (a lazy import
is still a dependency), read from the source with ``ast`` so nothing is executed. ``from package import
name`` is an edge to ``package.name`` when that is a module, else to ``package``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = {  # import root -> where its packages live
    "neruba": ROOT / "layers" / "neruba",
    "neruba_tools": ROOT / "infra",
    "functions": ROOT,
    "neruba_client": ROOT / "clients" / "python",
}
AWS_SDK = ("boto3", "botocore")

# No cycle is allowed: the test asks for the graph's cycles to match this (empty) list.
ALLOWED_CYCLES: set[frozenset[str]] = set()


def _modules() -> dict[str, Path]:
    found = {}
    for top, base in SOURCES.items():
        for path in (base / top).rglob("*.py"):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(path: Path, modules: Mapping[str, Path]) -> set[str]:
    """Every module name ``path`` imports (project modules resolved, others as written)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                names.add(full if full in modules else node.module)
    return names


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: {m for m in _imports(path, modules) if m in modules and m != name}
        for name, path in modules.items()
    }


def cycles(graph: Mapping[str, Iterable[str]]) -> set[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.add(frozenset(component))
    return found


def test_the_cycle_finder_sees_a_cycle_and_only_the_cycle() -> None:
    # GIVEN a graph with one cycle a -> b -> c -> a and a module hanging off it
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    # WHEN / THEN the cycle is found, the acyclic module is not part of it
    assert cycles(graph) == {frozenset({"a", "b", "c"})}
    assert cycles({"a": {"b"}, "b": set()}) == set()


def test_the_graph_covers_every_package() -> None:
    # GIVEN the project's modules
    graph = _graph()
    # THEN each top-level package and each capability of logic is in it, with its imports resolved
    assert {
        "neruba.logic.billing.worker",
        "neruba.dal.ledger",
        "neruba_tools.cli",
        "functions.ingest_api.app",
        "neruba_client.batcher",
    } <= set(graph)
    assert "neruba.logic.billing.windows" in graph["neruba.logic.billing.worker"]


def test_no_import_cycle_among_project_modules_but_the_listed_ones() -> None:
    # GIVEN every import of every project module, lazy ones included
    found = cycles(_graph())
    # THEN the only cycles are the listed ones, and every listed one still exists (remove it once broken)
    assert found - ALLOWED_CYCLES == set(), sorted(sorted(c) for c in found - ALLOWED_CYCLES)
    assert ALLOWED_CYCLES - found == set(), sorted(sorted(c) for c in ALLOWED_CYCLES - found)


def test_only_dal_imports_the_aws_sdk() -> None:
    # GIVEN the shared package and the handlers (the CLI and the local stack may use boto3 freely)
    modules = _modules()
    sdk = {
        name: sorted(i for i in _imports(path, modules) if i.split(".")[0] in AWS_SDK)
        for name, path in modules.items()
    }
    offenders = {name: used for name, used in sdk.items() if used}
    # THEN the check sees the SDK where it is used (the clients module), and no module outside dal uses it
    assert offenders["neruba.dal.clients"]
    assert {
        n: used for n, used in offenders.items() if not n.startswith(("neruba.dal.", "neruba_tools"))
    } == {}


def _repository_constructions(source: str) -> list[str]:
    """Each call of a ``*Repository`` class in ``source`` (``x.FooRepository(...)`` too), as ``name:line``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name.endswith("Repository"):
            found.append(f"{name}:{node.lineno}")
    return found


def test_the_repository_scan_sees_a_construction() -> None:
    # GIVEN a module building a repository directly and through a module attribute
    source = "from neruba.dal import x\nrepo = LedgerRepository('t')\nother = x.PlansRepository(t)\n"
    # THEN both calls are found, by class and line; a name merely mentioned is not a construction
    assert _repository_constructions(source) == ["LedgerRepository:2", "PlansRepository:3"]
    assert _repository_constructions("kind: type[LedgerRepository] = LedgerRepository\n") == []


def test_only_dal_and_the_composition_root_construct_repositories() -> None:
    # GIVEN every module of the project (the shared package, the handlers, the tools)
    modules = _modules()
    # (the operator tools are exempt: they work on a stack named on the command line, not on the settings)
    allowed = ("neruba.dal.", "neruba.bootstrap", "neruba_tools.")
    # WHEN every call of a *Repository class outside dal and neruba.bootstrap is listed
    built = {
        name: calls
        for name, path in modules.items()
        if not name.startswith(allowed) and (calls := _repository_constructions(path.read_text()))
    }
    # THEN there is none: logic, api and handlers take their repositories from neruba.bootstrap or a context
    assert built == {}, built
