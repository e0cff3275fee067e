"""Job management as deployed: the jobs table's `website-created` index (the declaration the local
stack creates it from), the jobs event bus, and grants that reach only them: the API queries the
index, and both generation functions put events on that bus and no other."""

from __future__ import annotations

from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.resources import JOBS_BY_WEBSITE, TABLES
from local.stack import LocalStack
from tests.infra.conftest import Synthesized
from tests.infra.iam import RolePolicies


def test_the_jobs_table_has_the_website_index_on_aws_as_locally(
    synthesized: Synthesized, local_stack: LocalStack
) -> None:
    # Given the synthesized jobs table and the local stack's
    table = synthesized.logical_id(synthesized.stack.storage.tables["jobs_table"])
    properties = synthesized.resources[table]["Properties"]
    local = aws.client("dynamodb").describe_table(TableName=get_settings().jobs_table)["Table"]
    # Then both have the one declared index: website (string) then created_at (number), every attribute projected
    (declared,) = next(spec.indexes for spec in TABLES if spec.name_setting == "jobs_table")
    assert declared == JOBS_BY_WEBSITE
    for indexes, attributes in (
        (properties["GlobalSecondaryIndexes"], properties["AttributeDefinitions"]),
        (local["GlobalSecondaryIndexes"], local["AttributeDefinitions"]),
    ):
        (index,) = indexes
        assert index["IndexName"] == "website-created"
        assert [(k["AttributeName"], k["KeyType"]) for k in index["KeySchema"]] == [
            ("website", "HASH"),
            ("created_at", "RANGE"),
        ]
        assert index["Projection"]["ProjectionType"] == "ALL"
        types = {a["AttributeName"]: a["AttributeType"] for a in attributes}
        assert types == {"job_id": "S", "website": "S", "created_at": "N"}


def test_job_events_go_on_the_jobs_bus_only(synthesized: Synthesized) -> None:
    # Given the jobs bus and the roles' grants
    (bus,) = synthesized.of_type("AWS::Events::EventBus").values()
    assert bus["Properties"]["Name"] == synthesized.config.name("job-events")
    policies = RolePolicies(synthesized.stack, synthesized.template.to_json())
    bus_arn = f"arn:aws:events:us-east-1:123456789012:event-bus/{get_settings().job_events_bus}"
    # Then only the generation functions may put events, on that bus alone, and nothing else on EventBridge
    putting = {
        function: {g.resource for g in policies.grants(function) if g.action.startswith("events:")}
        for function in synthesized.stack.functions
    }
    assert {function: arns for function, arns in putting.items() if arns} == {
        "generate": {bus_arn},
        "generate-worker": {bus_arn},
    }
    assert {
        g.action for f in ("generate", "generate-worker") for g in policies.grants(f) if g.action.startswith("events:")
    } == {"events:PutEvents"}
    # And the API queries the jobs index, never the table itself, and the worker does not query
    queries = {g.resource for g in policies.grants("generate") if g.action == "dynamodb:Query"}
    assert queries == {
        f"arn:aws:dynamodb:us-east-1:123456789012:table/{get_settings().jobs_table}/index/website-created",
        # GET /webhooks/deliveries (tests/infra/test_webhooks_infra.py)
        f"arn:aws:dynamodb:us-east-1:123456789012:table/{get_settings().webhooks_table}/index/owner-created",
    }
    assert not [g for g in policies.grants("generate-worker") if g.action == "dynamodb:Query"]
