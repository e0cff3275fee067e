"""GET /listings/migration's `current_run` through the local stack: the run going, which the
migration's plan step records, with its batches recorded so far; gone once the run's finish step
has run, the run then shown as `last_run`. The state machine's steps are invoked one at a time on
the migration function, as the state machine invokes them, so the run is read between two steps;
then a whole Step Functions run shows its end."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
import requests

from listing_vision import aws
from local.stack import LocalStack
from tests.demo_migration import listings_a_forced_execute_would_update, printed


def invoke(local_stack: LocalStack, event: dict[str, Any]) -> dict[str, Any]:
    """The migration function's answer to one state's event, invoked as the state machine does."""
    client = boto3.client(
        "lambda",
        endpoint_url=local_stack.moto_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    response = client.invoke(FunctionName="migration", Payload=json.dumps(event).encode())
    payload = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, payload
    return dict(payload)


def plan_by_hand(local_stack: LocalStack, request: dict[str, Any], execution: str) -> dict[str, Any]:
    """The Plan state's task, invoked by hand as the state machine would from `execution` (one
    running: `running_execution`), which then holds the run's lease."""
    return invoke(local_stack, {"operation": "plan", "request": request, "execution": execution})


def current_run(local_stack: LocalStack) -> Any:
    response = requests.get(f"{local_stack.url}/listings/migration", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["current_run"]


def test_the_progress_shows_the_run_going_with_its_batches_recorded_so_far_until_it_finishes(
    local_stack: LocalStack, running_execution: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from listing_vision.realestate import migrate

    # Given two demo listings a forced execute would update
    chosen = listings_a_forced_execute_would_update(capsys)
    # When a run's plan step runs (one listing a batch: two batches)
    request = {"operation": "execute", "zpids": chosen, "batch_size": 1, "force": True}
    plan = plan_by_hand(local_stack, request, running_execution)
    going = current_run(local_stack)
    # Then the progress shows the run going: two batches planned, none recorded yet
    assert going["run_id"] == plan["run_id"] and going["operation"] == "execute"
    assert (going["batches"], going["batches_recorded"], going["running"]) == (2, 0, True)
    assert going["recorded_complete"] is True and isinstance(going["started_at"], int)
    # When its first batch runs
    batch = invoke(
        local_stack,
        {"operation": "execute_batch", "run_id": plan["run_id"], "batch": 0, "zpids": chosen[:1], "force": True},
    )
    assert batch["batch"] == 0
    # Then one of the two batches shows recorded, the run still going
    going = current_run(local_stack)
    assert (going["run_id"], going["batches"], going["batches_recorded"], going["running"]) == (
        plan["run_id"],
        2,
        1,
        True,
    )
    # When its execution is stopped before its last step, the run shows no longer going
    aws.client("stepfunctions").stop_execution(executionArn=running_execution)
    assert current_run(local_stack) is None
    # When a whole Step Functions run over the same listings plans, runs its batches and finishes
    migrate.main(["--via-stepfunctions", "execute", "--force", "--zpids", ",".join(chosen)])
    run = printed(capsys)
    progress = requests.get(f"{local_stack.url}/listings/migration", timeout=10).json()
    # Then no run shows going, and that run shows as the last one
    assert run["run_id"] != plan["run_id"]
    assert progress["current_run"] is None
    assert progress["last_run"]["run_id"] == run["run_id"]
