"""GET /listings/search as deployed: its function may only search the listings index (and read listings
by id, GET /listings/{zpid}), its method is behind the key authorizer like every route, each usage plan
throttles it below the plan's own rate (per client), and fine-grained access control maps its role like
the other OpenSearch functions."""

from __future__ import annotations

import json

from functions.routes import ROUTES
from infra.constructs.api import USAGE_PLANS
from listing_vision.resources import MIGRATION_STATE_MACHINE
from local.call_recorder import ACCOUNT_ID, REGION
from tests.infra.conftest import Synthesized
from tests.infra.iam import RolePolicies

ROUTE = next(route for route in ROUTES if route.path == "/listings/search")


def test_listing_search_may_only_search_the_listings_index(synthesized: Synthesized) -> None:
    # Given the synthesized roles, When the search function's grants are read
    policies = RolePolicies(synthesized.stack, synthesized.template.to_json())
    grants = {(grant.action, grant.resource) for grant in policies.grants("listing-search")}
    domain = synthesized.stack.platform.opensearch_domain_arn
    # Then it holds two: POST on the listings index's _search and _mget paths (GET /listings/{zpid}); no
    # writes, no other index, no other store
    # And GetObject on the last and the current migration run's records, ListBucket on the artifacts
    # bucket, DescribeExecution on the migration's executions (GET /listings/migration: the run going)
    migration = {
        ("s3:GetObject", "arn:aws:s3:::artifacts/migrations/last-run.json"),
        ("s3:GetObject", "arn:aws:s3:::artifacts/migrations/current-run.json"),
        ("s3:ListBucket", "arn:aws:s3:::artifacts"),
        ("states:DescribeExecution", f"arn:aws:states:{REGION}:{ACCOUNT_ID}:execution:{MIGRATION_STATE_MACHINE}:*"),
    }
    assert grants - migration == {
        ("es:ESHttpPost", policies.resolve(synthesized.stack.resolve(f"{domain}/listings-v2/{path}")))
        for path in ("_search", "_mget")
    }
    assert migration <= set(grants)
    # And fine-grained access control maps its role to the listings role, as the other OpenSearch functions
    assert "listing-search" in synthesized.stack.provisioning.mapped


def test_listing_search_may_list_only_the_migration_batch_records(synthesized: Synthesized) -> None:
    # Given the synthesized policies of the search function's role
    role = synthesized.logical_id(synthesized.stack.functions["listing-search"].role)
    statements = [
        statement
        for policy in synthesized.of_type("AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"].get("Roles", [])
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    # When the statements granting s3:ListBucket are read
    listing = [s for s in statements if "s3:ListBucket" in json_text(s["Action"])]
    # Then there is one, ListBucket alone, on the artifacts bucket, and only for keys under a run's batches
    (statement,) = listing
    assert statement["Action"] == "s3:ListBucket"
    assert statement["Condition"] == {"StringLike": {"s3:prefix": ["migrations/*/batches/*"]}}


def test_the_search_route_is_keyed_and_throttled_in_every_usage_plan(synthesized: Synthesized) -> None:
    # Given the API's methods and usage plans
    resources = synthesized.of_type("AWS::ApiGateway::Resource")
    (listings,) = [logical for logical, r in resources.items() if r["Properties"]["PathPart"] == "listings"]
    (search,) = [
        logical
        for logical, r in resources.items()
        if r["Properties"]["PathPart"] == "search" and r["Properties"]["ParentId"] == {"Ref": listings}
    ]
    (method,) = [
        r["Properties"]
        for r in synthesized.of_type("AWS::ApiGateway::Method").values()
        if r["Properties"]["ResourceId"] == {"Ref": search}
        and r["Properties"]["HttpMethod"] != "OPTIONS"  # its CORS preflight (test_console_infra.py)
    ]
    # Then GET /listings/search is behind the same key authorizer as every route, integrated with its
    # function's released version (the `live` alias)
    assert method["HttpMethod"] == "GET" and method["AuthorizationType"] == "CUSTOM" and method["ApiKeyRequired"]
    alias = synthesized.logical_id(synthesized.stack.functions["listing-search"].alias)
    assert alias in json_text(method["Integration"]["Uri"])
    # And each usage plan throttles it per client below the plan's own rate; no other route has a throttle of its own
    plans = {
        p["Properties"]["UsagePlanName"]: p["Properties"]
        for p in synthesized.of_type("AWS::ApiGateway::UsagePlan").values()
    }
    assert ROUTE.throttle is not None
    for name, (rate, burst, _) in USAGE_PLANS.items():
        (stage,) = plans[synthesized.config.name(name)]["ApiStages"]
        assert stage["Throttle"] == {
            "/listings/search/GET": {
                "RateLimit": min(ROUTE.throttle[0], rate),
                "BurstLimit": min(ROUTE.throttle[1], burst),
            }
        }
        assert ROUTE.throttle[0] < rate


def json_text(value: object) -> str:
    return json.dumps(value)
