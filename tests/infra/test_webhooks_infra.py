"""Webhooks as deployed: the rule on the jobs bus that functions/triggers.py declares (the same
declaration the local stack puts its rule from), targeting webhook-delivery's `live` alias with a
retry policy and the function's failure queue as its dead-letter queue; and grants that reach only
the webhooks table and the stage's webhook parameters."""

from __future__ import annotations

import json

from functions.triggers import EVENT_TRIGGERS, event_pattern
from listing_vision import aws
from listing_vision.config import get_settings
from local.stack import LocalStack
from tests.infra.conftest import Synthesized
from tests.infra.iam import RolePolicies

ARN = "us-east-1:123456789012"


def test_the_finish_rule_targets_the_delivery_alias_with_retries_and_a_dead_letter_queue(
    synthesized: Synthesized,
) -> None:
    # Given the synthesized rules on the jobs bus
    (trigger,) = EVENT_TRIGGERS
    bus = synthesized.logical_id(synthesized.stack.storage.buses["job_events_bus"])
    rules = [r for r in synthesized.of_type("AWS::Events::Rule").values() if r["Properties"].get("EventBusName")]
    (rule,) = [r["Properties"] for r in rules if r["Properties"]["EventBusName"] == {"Ref": bus}]
    # Then it matches the declared pattern, under the stage's name
    assert rule["Name"] == synthesized.config.name(trigger.rule)
    assert rule["EventPattern"] == event_pattern(trigger)
    # And its one target is webhook-delivery's live alias, retried as declared, then to the function's failure queue
    delivery = synthesized.stack.functions["webhook-delivery"]
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Ref": synthesized.logical_id(delivery.alias)}
    assert target["RetryPolicy"] == {
        "MaximumRetryAttempts": trigger.retry_attempts,
        "MaximumEventAgeInSeconds": trigger.max_event_age_s,
    }
    assert delivery.failure_queue is not None
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": [synthesized.logical_id(delivery.failure_queue), "Arn"]}
    # And EventBridge may invoke that alias (the permission CDK adds) and send to the queue
    permissions = [
        p["Properties"]
        for p in synthesized.of_type("AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "events.amazonaws.com"
        and p["Properties"]["FunctionName"] == {"Ref": synthesized.logical_id(delivery.alias)}
    ]
    assert len(permissions) == 1
    queue_policies = json.dumps(synthesized.of_type("AWS::SQS::QueuePolicy"))
    assert "events.amazonaws.com" in queue_policies


def test_the_local_rule_is_the_declared_one(local_stack: LocalStack) -> None:
    # Given the local stack's rules on its jobs bus
    events = aws.client("events")
    bus = get_settings().job_events_bus
    for trigger in EVENT_TRIGGERS:
        rule = events.describe_rule(Name=trigger.rule, EventBusName=bus)
        # Then the pattern and the target (the function's live alias, the same retry policy) are the declared ones
        assert json.loads(rule["EventPattern"]) == event_pattern(trigger)
        (target,) = events.list_targets_by_rule(Rule=trigger.rule, EventBusName=bus)["Targets"]
        assert target["Arn"].endswith(f":function:{trigger.function}:live")
        assert target["RetryPolicy"]["MaximumRetryAttempts"] == trigger.retry_attempts


def test_webhook_grants_reach_the_webhooks_table_and_parameters_only(synthesized: Synthesized) -> None:
    # Given the roles' grants
    policies = RolePolicies(synthesized.stack, synthesized.template.to_json())
    table = f"arn:aws:dynamodb:{ARN}:table/{get_settings().webhooks_table}"
    parameters = f"arn:aws:ssm:{ARN}:parameter{get_settings().webhook_secrets_prefix}/*"

    def grants(function: str, prefix: str) -> set[tuple[str, str]]:
        return {(g.action, g.resource) for g in policies.grants(function) if g.resource.startswith(prefix)}

    # Then the API writes registrations and secrets; the delivery reads them and writes its records
    assert grants("generate", table) == {
        ("dynamodb:GetItem", table),
        ("dynamodb:PutItem", table),
        ("dynamodb:DeleteItem", table),
        ("dynamodb:Query", f"{table}/index/owner-created"),
    }
    assert grants("webhook-delivery", "arn:aws:dynamodb") == {
        ("dynamodb:Query", f"{table}/index/owner-created"),
        ("dynamodb:PutItem", table),
        ("dynamodb:UpdateItem", table),
    }
    assert grants("generate", "arn:aws:ssm") == {("ssm:PutParameter", parameters), ("ssm:DeleteParameter", parameters)}
    assert grants("webhook-delivery", "arn:aws:ssm") == {("ssm:GetParameter", parameters)}
    # And no other function touches either
    others = set(synthesized.stack.functions) - {"generate", "webhook-delivery"}
    assert not [f for f in others if grants(f, table) or grants(f, "arn:aws:ssm")]
