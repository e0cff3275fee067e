"""Services are handed their stores: handler → service → data access, with the stores passed in.

A service module never builds a client or a store itself; it receives them through its constructor.
The only places that build them from the settings are named `from_settings` (what a handler calls,
once per container) or are a command line's `main`. Data-access modules (claims, jobs, storage,
vector_index, listings_index, vision_cache, phrase_store, split_records, artifacts, image_fetch) are
where clients live, and are not checked here.
"""

from __future__ import annotations

import ast
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[2] / "layers" / "common" / "listing_vision"
SERVICES = [
    "jewelry/dedupe.py",
    "jewelry/duplicates.py",
    "jewelry/verification_store.py",
    "jewelry/uploads.py",
    "jewelry/caption_service.py",
    "jewelry/generation.py",
    "jewelry/generation_worker.py",
    "jewelry/reconcile.py",
    "realestate/ingest.py",
    *(f"realestate/migration/{path.name}" for path in sorted((LIBRARY / "realestate" / "migration").glob("*.py"))),
]
BUILDERS = {"client", "milvus_client", "opensearch_client"}  # aws.client, and the two process-wide clients
STORES = {
    "ContentClaims",
    "JobStore",
    "ImageStore",
    "VectorIndex",
    "CatalogueStores",
    "ListingsIndex",
    "VisionCache",
    "PhraseStore",
    "SplitRecords",
}
COMPOSITION_ROOTS = {"from_settings", "main"}
# Edge adapters that read the event's own object before any service runs, and why.
EDGES = {"ingest_object": "reads the S3 object a trigger names (the listing document), then hands it to the service"}


def constructions(path: Path, root: Path = LIBRARY) -> list[str]:
    found: list[str] = []

    def visit(node: ast.AST, function: str | None) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function = node.name
        if isinstance(node, ast.Call) and function not in COMPOSITION_ROOTS and function not in EDGES:
            callee = node.func
            name = (
                callee.attr if isinstance(callee, ast.Attribute) else callee.id if isinstance(callee, ast.Name) else ""
            )
            if name in BUILDERS or (isinstance(callee, ast.Name) and name in STORES):
                found.append(f"{path.relative_to(root)}:{node.lineno} {function or '<module>'} builds {name}")
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(ast.parse(path.read_text()), None)
    return found


def test_services_build_no_client_and_no_store_outside_their_composition_roots() -> None:
    assert [found for service in SERVICES for found in constructions(LIBRARY / service)] == []


def test_the_check_sees_a_service_that_builds_its_own_store(tmp_path: Path) -> None:
    # Given a service written the old way, then the check names the line that builds the store
    service = tmp_path / "service.py"
    service.write_text("class Service:\n    def __init__(self):\n        self.claims = ContentClaims()\n")
    assert constructions(service, tmp_path) == ["service.py:3 __init__ builds ContentClaims"]
