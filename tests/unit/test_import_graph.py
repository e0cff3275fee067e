"""The shared library's import graph: no cycles, and no module imports a layer above its own.

Layers, lowest first: the base modules (settings, errors, redaction, store declarations, clients, logging,
events), then the capabilities' building blocks (imaging, embeddings, providers, the API edge),
then the two domains (jewelry, realestate), which never import each other. Lazy imports inside
functions count too. Nothing in the library imports the functions, the local stack or the tests.
"""

from __future__ import annotations

import ast
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[2] / "layers" / "common" / "listing_vision"

LAYERS = {
    "listing_vision.config": 0,
    "listing_vision.errors": 0,
    "listing_vision.resources": 0,
    "listing_vision.redaction": 0,
    "listing_vision.aws": 1,
    "listing_vision.dynamodb_items": 1,
    "listing_vision.dynamodb_batch": 1,
    "listing_vision.observability": 1,
    "listing_vision.events": 1,
    "listing_vision.concurrency": 1,
    "listing_vision.imaging": 2,
    "listing_vision.embeddings": 2,
    "listing_vision.providers": 2,
    "listing_vision.api": 2,
    "listing_vision.jewelry": 3,
    "listing_vision.realestate": 3,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(LIBRARY.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> tuple[str, int]:
    if module == "listing_vision":  # the package's own __init__
        return module, 0
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return prefix, LAYERS[prefix]
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")


def imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    modules = {module_name(path) for path in LIBRARY.rglob("*.py")}
    for path in LIBRARY.rglob("*.py"):
        name = module_name(path)
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:  # `from package import module` names a module
                    candidate = f"{node.module}.{alias.name}"
                    targets.add(candidate if candidate in modules else node.module)
            elif isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
        graph[name] = {t for t in targets if t.split(".")[0] in ("listing_vision", "functions", "local", "tests")}
    return graph


def test_the_library_imports_nothing_outside_itself() -> None:
    outside = {m: sorted(t for t in ts if not t.startswith("listing_vision")) for m, ts in imports().items()}
    assert {m: ts for m, ts in outside.items() if ts} == {}


def test_no_module_imports_a_layer_above_its_own_and_domains_stay_apart() -> None:
    violations = []
    for module, targets in imports().items():
        own_prefix, own = layer_of(module)
        for target in targets:
            prefix, level = layer_of(target)
            if level > own or (level == own == 3 and prefix != own_prefix):
                violations.append(f"{module} -> {target}")
    assert violations == []


def test_the_import_graph_has_no_cycles() -> None:
    graph = imports()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target in graph and state.get(target) is None:
                visit(target, [*path, target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []
