"""Import direction: in the shared library and between the repository's packages.

The library's layers, lowest first: the base modules (settings, errors, redaction, store
declarations, clients, logging, events); image decoding and measurement (imaging); the
capabilities built on it (embeddings, providers, the API edge); then the two domains (jewelry,
realestate), which never import each other; above both, provisioning, which creates the stores of
each. Lazy imports inside functions count too. No cycles.

The repository's packages, lowest first: the library; the Lambda handlers and the SageMaker
container's code; the CDK app and build scripts, which deploy them; the local stack, which runs
them with the same declarations; the test doubles and evaluations; the benchmarks; the tests.
"""

from __future__ import annotations

import ast
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[2] / "layers" / "common" / "listing_vision"

LAYERS = {
    "listing_vision.config": 0,
    "listing_vision.storefronts": 0,
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
    "listing_vision.embeddings": 3,
    "listing_vision.providers": 3,
    "listing_vision.api": 3,
    "listing_vision.jewelry": 4,
    "listing_vision.realestate": 4,
    "listing_vision.provisioning": 5,
}
DOMAIN = 4
ROOT = LIBRARY.parents[2]
PACKAGES = {
    "listing_vision": 0,
    "functions": 1,
    "serving": 1,
    "infra": 2,
    "scripts": 2,
    "local": 3,
    "doubles": 4,
    "evaluation": 4,
    "bench": 5,
    "tests": 6,
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


def imported(path: Path, modules: set[str]) -> set[str]:
    """Every absolute import in a file, as module names (lazy ones inside functions included)."""
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # `from package import module` names a module
                candidate = f"{node.module}.{alias.name}"
                targets.add(candidate if candidate in modules else node.module)
        elif isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
    return targets


def imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    modules = {module_name(path) for path in LIBRARY.rglob("*.py")}
    for path in LIBRARY.rglob("*.py"):
        name = module_name(path)
        targets = imported(path, modules)
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
            if level > own or (level == own == DOMAIN and prefix != own_prefix):
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


def test_no_package_of_the_repository_imports_one_above_it() -> None:
    violations = []
    for package, level in PACKAGES.items():
        folder = LIBRARY if package == "listing_vision" else ROOT / package
        for path in folder.rglob("*.py"):
            for target in imported(path, set()):
                above = PACKAGES.get(target.split(".")[0], -1)
                if above > level:
                    violations.append(f"{path.relative_to(ROOT)} -> {target}")
    assert violations == []


def test_every_package_of_the_repository_has_a_place_in_the_order() -> None:
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")} | {
        path.parent.name for path in ROOT.glob("*/*.py") if path.parent.name not in (".venv", "node_modules")
    }
    unplaced = sorted(p for p in packages if p not in PACKAGES and not p.startswith((".", "build", "cdk.out")))
    assert unplaced == []
