"""Everything the code expects to exist that CloudFormation does not create: one path, run by the
deploy (the `provision` function, a CDK trigger: infra/constructs/provisioning.py) and by the local
stack after it has made what CloudFormation would (local/provision.py).

- the Milvus collection (`MILVUS_COLLECTION`), its HNSW/IP index, loaded, recording the signature of
  the model whose vectors it holds (asked of the embedding endpoint: `vector_index.py`);
- the OpenSearch listings index (`LISTINGS_INDEX`) with its mapping;
- every stored catalogue record in the index GET /images queries: a record stored before that index
  existed lacks its key (`listed_website`) and gets it here (`ContentClaims.unlisted`, `list_again`:
  one Scan of the table, each write conditional). It stops after `LISTING_BUDGET_S` (the function's
  timeout would fail the deploy), reports `partial` and records where it stopped, so the next run
  resumes there; once a run has finished the Scan, later deploys read one item instead (every write
  since sets the key). The reconciler (hourly) lists any record still without the key (one written
  by the code before, still running while the deploy listed), and so an old local snapshot restored
  after this ran is listed by the reconcile the local stack runs next;
- where the domain uses fine-grained access control (`OPENSEARCH_ACCESS=fine_grained`), an
  OpenSearch role limited to the listings index and the mapping of each function's IAM role
  (`OPENSEARCH_ROLE_ARNS`) to it, through the security plugin's REST API. With `iam` access the
  domain's access policy admits the roles and nothing is mapped.

Idempotent: each step reports "created", "updated" or "unchanged", and a second run reports
"unchanged" everywhere. Until it has run, the data-access objects raise `NotProvisioned`
(HTTP 503 `not_provisioned`).

    python -m listing_vision.provisioning            # provision what the settings name, print the report
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from opensearchpy import NotFoundError, OpenSearch

from listing_vision.config import Settings, get_settings
from listing_vision.jewelry.claims import ContentClaims
from listing_vision.jewelry.vector_index import VectorIndex
from listing_vision.realestate.listings_index import ListingsIndex, opensearch_client

SECURITY_API = "/_plugins/_security/api"
# What the functions do with the listings index (listings_index.py): reads, guarded writes, bulk on
# the index's own path, scrolls, mapping additions (the migration), refreshes and counts.
LISTINGS_INDEX_ACTIONS = (
    "crud",
    "create_index",
    "indices:admin/mapping/put",
    "indices:admin/mappings/get",
    "indices:admin/refresh*",
    "indices:admin/exists",
    "indices:admin/get",
    "indices:monitor/stats",
)
LISTINGS_CLUSTER_ACTIONS = ("cluster_composite_ops", "indices:data/read/scroll*")
LISTING_BUDGET_S = 180.0  # of the function's 300 s: listing old records must not fail the deploy


def listings_role_name(settings: Settings) -> str:
    return f"listing-vision-{settings.listings_index}"


def listings_role(settings: Settings) -> dict[str, Any]:
    """The OpenSearch role the functions' IAM roles are mapped to: the listings index only."""
    return {
        "description": f"listing-vision functions: the {settings.listings_index} index (provisioned by the deploy)",
        "cluster_permissions": list(LISTINGS_CLUSTER_ACTIONS),
        "index_permissions": [
            {"index_patterns": [settings.listings_index], "allowed_actions": list(LISTINGS_INDEX_ACTIONS)}
        ],
    }


def role_arns(settings: Settings) -> list[str]:
    return sorted({arn.strip() for arn in settings.opensearch_role_arns.split(",") if arn.strip()})


def provision(
    settings: Settings | None = None,
    *,
    vectors: VectorIndex | None = None,
    listings: ListingsIndex | None = None,
    search: OpenSearch | None = None,
    model: str | None = None,
    claims: ContentClaims | None = None,
) -> dict[str, str]:
    """Create or bring up to date every provisioned store; returns each step's outcome by name.
    `model`: the signature of the vectors the collection holds (default: the stage's embedder's)."""
    settings = settings or get_settings()
    search = search or opensearch_client()
    vectors = vectors or VectorIndex(settings.milvus_collection)
    listings = listings or ListingsIndex(search, settings.listings_index)
    report: dict[str, str] = {}
    if settings.opensearch_access == "fine_grained":
        # First: with fine-grained access control the functions (this one aside) can do nothing until mapped
        report.update(ensure_role_mapping(search, settings))
    if model is None:
        from listing_vision.embeddings.factory import get_embedder

        model = get_embedder().model_signature
    report[f"milvus:collection:{vectors.collection}"] = vectors.ensure_collection(settings.embedding_dim, model)
    report[f"opensearch:index:{listings.name}"] = listings.ensure_index()
    report.update(list_stored_images(claims or ContentClaims(settings.catalogue_table)))
    return report


def list_stored_images(
    claims: ContentClaims, budget_s: float = LISTING_BUDGET_S, page_items: int | None = None
) -> dict[str, str]:
    """Every stored record put in the listing's index (`updated`), none lacked it or a run before
    finished (`unchanged`), or the budget ran out first (`partial`: the next run resumes the Scan
    after the last page it finished, and the reconciler lists any record it has not reached)."""
    name = f"dynamodb:listed:{claims.table}"
    finished, resume_after = claims.listing_backfill()
    if finished:
        return {name: "unchanged"}
    deadline, listed = time.monotonic() + budget_s, 0
    for records, next_start in claims.unlisted(resume_after, page_items):
        listed += sum(claims.list_again(website, sha256) for website, sha256 in records)
        if next_start is None:
            claims.record_listing_backfill(resume_after=None)
            break
        if time.monotonic() >= deadline:
            claims.record_listing_backfill(resume_after=next_start)
            return {name: "partial"}
    return {name: "updated" if listed else "unchanged"}


def ensure_role_mapping(search: OpenSearch, settings: Settings) -> dict[str, str]:
    """The listings role and the mapping of the functions' IAM roles to it (backend roles), each
    written only when it differs; backend roles someone else mapped to the role are kept."""
    name = listings_role_name(settings)
    report: dict[str, str] = {}
    wanted = listings_role(settings)
    current = _get(search, f"{SECURITY_API}/roles/{name}")
    if current is None:
        _put(search, f"{SECURITY_API}/roles/{name}", wanted)
        report[f"opensearch:role:{name}"] = "created"
    elif role_grants(current) == role_grants(wanted):
        report[f"opensearch:role:{name}"] = "unchanged"
    else:
        _put(search, f"{SECURITY_API}/roles/{name}", wanted)
        report[f"opensearch:role:{name}"] = "updated"

    path = f"{SECURITY_API}/rolesmapping/{name}"
    outcome, body = mapping_update(_get(search, path), role_arns(settings))
    if body is not None:
        _put(search, path, body)
    report[f"opensearch:rolesmapping:{name}"] = outcome
    return report


def mapping_update(current: dict[str, Any] | None, arns: list[str]) -> tuple[str, dict[str, Any] | None]:
    """(outcome, the role mapping to write or None): the functions' IAM roles added as backend
    roles to what the mapping holds, the backend roles, hosts and users someone else mapped kept."""
    if current is None:
        return "created", {"backend_roles": arns, "hosts": [], "users": []}
    held = sorted(set(current.get("backend_roles", [])))
    backend = sorted(set(held) | set(arns))
    if backend == held:
        return "unchanged", None
    return "updated", {"backend_roles": backend, "hosts": current.get("hosts", []), "users": current.get("users", [])}


def role_grants(role: dict[str, Any]) -> tuple[Any, ...]:
    """What a role grants, in a comparable form (the API adds fields of its own when read back)."""
    indexes = sorted(
        (tuple(sorted(p.get("index_patterns", []))), tuple(sorted(p.get("allowed_actions", []))))
        for p in role.get("index_permissions", [])
    )
    return tuple(sorted(role.get("cluster_permissions", []))), tuple(indexes)


def _get(search: OpenSearch, path: str) -> dict[str, Any] | None:
    """One entry of the security API (`{name: entry}` as it answers), or None when it has none."""
    try:
        answer = search.transport.perform_request("GET", path)
    except NotFoundError:
        return None
    return next(iter(answer.values()), None) if isinstance(answer, dict) and answer else None


def _put(search: OpenSearch, path: str, body: dict[str, Any]) -> None:
    search.transport.perform_request("PUT", path, body=body)


def missing(settings: Settings | None = None, stores: Sequence[str] = ("milvus", "opensearch")) -> list[str]:
    """The provisioned stores that do not exist (empty once provisioning has run)."""
    settings = settings or get_settings()
    absent = []
    if "milvus" in stores and not VectorIndex(settings.milvus_collection).exists():
        absent.append(f"milvus:collection:{settings.milvus_collection}")
    if "opensearch" in stores and not ListingsIndex(opensearch_client(), settings.listings_index).exists():
        absent.append(f"opensearch:index:{settings.listings_index}")
    return absent


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m listing_vision.provisioning", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only list what is missing; exit 1 when anything is")
    args = parser.parse_args(argv)
    if args.check:
        absent = missing()
        print(json.dumps({"missing": absent}))
        return 1 if absent else 0
    print(json.dumps(provision(), indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
