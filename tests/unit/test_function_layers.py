"""Every module a deployed function can import is in its layers.

Each function gets only some layers (functions/specs.py, layers/layers.json). This walks each
handler's import graph through the library, lazy imports inside functions included, collects the
third-party modules it reaches, and checks that each one's distribution is in the function's
layers (their packages and everything those require). A new import that a function's layers do
not hold fails here, not on AWS.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from functions.specs import FUNCTIONS, FunctionSpec

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "layers" / "common"
GROUPS = {k: v for k, v in json.loads((ROOT / "layers/layers.json").read_text()).items() if not k.startswith("//")}
# Modules a deployed function never runs, and why.
NOT_ON_AWS = {
    "listing_vision.embeddings.onnx_local": "in-process embeddings, only with EMBEDDER=onnx (the local stack's "
    "option and tests); deployed functions embed through the SageMaker endpoint",
}
# Imports a deployed function never needs, and why.
OPTIONAL = {
    "tqdm": "progress bars of the command-line tools; they print lines without it (ImportError handled)",
    "onnxruntime": "imported only when a ClipEncoder is built (in-process inference); deployed functions "
    "embed through the SageMaker endpoint",
}


def module_file(name: str) -> Path | None:
    for base in (LIBRARY, ROOT):
        path = base / Path(*name.split("."))
        if path.with_suffix(".py").is_file():
            return path.with_suffix(".py")
        if (path / "__init__.py").is_file():
            return path / "__init__.py"
    return None


def reachable_third_party(start: str) -> set[str]:
    """Top-level names of third-party modules reachable from `start` through first-party modules."""
    seen: set[str] = set()
    found: set[str] = set()
    pending = [start]
    while pending:
        name = pending.pop()
        if name in seen or name in NOT_ON_AWS:
            continue
        seen.add(name)
        path = module_file(name)
        if path is None:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            for target in targets:
                top = target.split(".")[0]
                if top in ("listing_vision", "functions"):
                    if module_file(target) is not None:
                        pending.append(target)
                elif top not in sys.stdlib_module_names and top != "__future__":
                    found.add(top)
    return found


def closure(packages: list[str]) -> set[str]:
    """The distributions these packages install, with everything they require (as installed here)."""
    names: set[str] = set()
    pending = [Requirement(p) for p in packages]
    while pending:
        requirement = pending.pop()
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        if name in names:
            continue
        names.add(name)
        for line in importlib.metadata.requires(requirement.name) or []:
            dependency = Requirement(line)
            extras = requirement.extras or {""}
            if dependency.marker is None or any(dependency.marker.evaluate({"extra": e}) for e in extras):
                pending.append(dependency)
    return names


DISTRIBUTIONS = importlib.metadata.packages_distributions()


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda s: s.name)
def test_every_module_a_function_imports_is_in_its_layers(spec: FunctionSpec) -> None:
    # Given what the function's layers install (base holds the library itself)
    available = set().union(*(closure(GROUPS[name]) for name in spec.all_layers))
    # When its handler's imports are followed through the library
    modules = reachable_third_party(f"functions.{spec.package}.{spec.module}") - set(OPTIONAL)
    # Then every third-party module comes from one of those distributions
    missing = {
        module: sorted(DISTRIBUTIONS.get(module, [module]))
        for module in modules
        if not {re.sub(r"[-_.]+", "-", d).lower() for d in DISTRIBUTIONS.get(module, [module])} & available
    }
    assert missing == {}, f"{spec.name} imports modules its layers {spec.all_layers} do not hold"


def test_the_walk_sees_lazy_imports() -> None:
    # The SDKs are imported inside functions only: the walk must still find them
    assert {"openai", "anthropic"} <= reachable_third_party("listing_vision.providers.clients")
    assert "pymilvus" in reachable_third_party("listing_vision.jewelry.vector_index")
