"""Step Functions on the local stack: moto's ASL interpreter runs a definition whose Lambda tasks
reach in-process handlers, with Map, Retry and Catch behaving as on AWS. The migration's state
machine runs on exactly this plumbing."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from listing_vision import aws
from local.lambda_runtime import ACCOUNT_ID
from local.stack import LocalStack


def arn(name: str) -> str:
    return f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:{name}"


class Throttled(Exception):
    """Stands in for a throttling error type the state machine retries."""


class Poisoned(Exception):
    """An error the state machine must catch, not retry."""


def run(definition: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    sfn = aws.client("stepfunctions")
    machine = sfn.create_state_machine(
        name=f"plumbing-{time.monotonic_ns()}",
        definition=json.dumps(definition),
        roleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/sfn",
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=machine, input=json.dumps(payload))["executionArn"]
    deadline = time.monotonic() + 300  # a hang guard, generous for a loaded machine
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=execution)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.1)
    pytest.fail("execution did not finish within 300 s")


def test_map_retry_and_catch_reach_in_process_handlers(local_stack: LocalStack) -> None:
    # Given a handler that is throttled once per item, and poisoned on item 3
    attempts: dict[int, int] = {}

    def batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
        item = event["item"]
        attempts[item] = attempts.get(item, 0) + 1
        if item == 3:
            raise Poisoned("item 3 is corrupt")
        if attempts[item] == 1:
            raise Throttled("slow down")
        return {"item": item, "square": item * item}

    local_stack.router.register("plumbing-batch", batch)
    definition = {
        "StartAt": "Fan out",
        "States": {
            "Fan out": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "MaxConcurrency": 2,
                "ItemSelector": {"item.$": "$$.Map.Item.Value"},
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "Batch",
                    "States": {
                        "Batch": {
                            "Type": "Task",
                            "Resource": "arn:aws:states:::lambda:invoke",
                            "Parameters": {"FunctionName": arn("plumbing-batch"), "Payload.$": "$"},
                            "OutputPath": "$.Payload",
                            "Retry": [
                                {
                                    "ErrorEquals": ["Throttled"],
                                    "IntervalSeconds": 1,
                                    "MaxAttempts": 2,
                                    "BackoffRate": 1.0,
                                }
                            ],
                            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Report"}],
                            "End": True,
                        },
                        "Report": {"Type": "Pass", "End": True},
                    },
                },
                "End": True,
            }
        },
    }
    # When the state machine runs over four items
    execution = run(definition, {"items": [1, 2, 3, 4]})
    # Then it succeeds: throttled items were retried, the poisoned one reported, the rest delivered
    assert execution["status"] == "SUCCEEDED", execution
    output = json.loads(execution["output"])
    assert [row.get("square") for row in output] == [1, 4, None, 16]
    assert output[2]["error"]["Error"] == "Poisoned"
    assert attempts == {1: 2, 2: 2, 3: 1, 4: 2}
