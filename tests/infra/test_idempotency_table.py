"""The `Idempotency-Key` records' table in the synthesized template: created with Powertools'
key and TTL attributes, named for the stage, and reachable only by the functions that answer
paid calls (generate, caption), with only the calls Powertools' DynamoDB layer makes."""

from __future__ import annotations

from functions.specs import FUNCTIONS
from infra.constructs.platform import IDEMPOTENCY
from local.call_recorder import ACCOUNT_ID, REGION
from tests.infra.conftest import Synthesized
from tests.infra.iam import RolePolicies

TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/idempotency"  # in the local stack's names


def test_the_idempotency_table_has_powertools_key_and_expiry(synthesized: Synthesized) -> None:
    # Given the synthesized stack, when its tables are read
    tables = {
        t["Properties"]["TableName"]: t["Properties"] for t in synthesized.of_type("AWS::DynamoDB::Table").values()
    }
    # Then the idempotency table is there, keyed by `id`, records expiring by `expiration`
    table = tables["listing-vision-test-idempotency"]
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert table["BillingMode"] == "PAY_PER_REQUEST"


def test_only_the_paid_call_functions_reach_the_idempotency_table(synthesized: Synthesized) -> None:
    # Given each function's role, when its grants on the idempotency table are collected
    policies = RolePolicies(synthesized.stack, synthesized.template.to_json())
    on_table = {
        spec.name: sorted(g.action for g in policies.grants(spec.name) if g.resource == TABLE_ARN) for spec in FUNCTIONS
    }
    # Then generate and caption may put, update and delete its records (no read, no scan), nobody else anything
    assert {name: actions for name, actions in on_table.items() if actions} == {
        "generate": sorted(IDEMPOTENCY),
        "caption": sorted(IDEMPOTENCY),
    }
    # And both are told the table's name
    variables = {
        r["Properties"]["FunctionName"]: r["Properties"]["Environment"]["Variables"]
        for r in synthesized.of_type("AWS::Lambda::Function").values()
        if isinstance(r["Properties"].get("FunctionName"), str)
    }
    assert variables["listing-vision-test-generate"]["IDEMPOTENCY_TABLE"] == {"Ref": _table_logical_id(synthesized)}
    assert variables["listing-vision-test-caption"]["IDEMPOTENCY_TABLE"] == {"Ref": _table_logical_id(synthesized)}


def _table_logical_id(synthesized: Synthesized) -> str:
    return synthesized.logical_id(synthesized.stack.storage.tables["idempotency_table"])
