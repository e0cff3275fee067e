"""Fixtures shared by the integration modules."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator

import pytest

from doubles.loopback import OPENAI_CHAT, LoopbackServer, openai_completion
from listing_vision import aws
from local.stack import LocalStack
from tests.integration.test_captions import GOOD


@pytest.fixture
def openai_chat(provider_env: Callable[..., None]) -> Iterator[LoopbackServer]:
    """The loopback OpenAI chat server as the caption provider (a good caption unless scripted)."""
    server = LoopbackServer({OPENAI_CHAT: lambda request: openai_completion(json.dumps(GOOD))}).start()
    provider_env(OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=f"{server.url}/v1")
    yield server
    server.stop()


@pytest.fixture
def running_execution(local_stack: LocalStack) -> Iterator[str]:
    """An execution of the deployed state machine that runs until stopped, to hold a run's lease as
    its Plan would: started while the machine's definition is a Wait state (an execution runs the
    definition it started with; the functions may ask about this machine's executions only)."""
    sfn = aws.client("stepfunctions")
    machine = local_stack.migration_arn
    definition = sfn.describe_state_machine(stateMachineArn=machine)["definition"]
    waiting = {"StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 3600, "End": True}}}
    sfn.update_state_machine(stateMachineArn=machine, definition=json.dumps(waiting))
    try:
        arn = str(sfn.start_execution(stateMachineArn=machine, name=f"hold-{uuid.uuid4().hex[:8]}")["executionArn"])
    finally:
        sfn.update_state_machine(stateMachineArn=machine, definition=definition)
    yield arn
    if sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        sfn.stop_execution(executionArn=arn)
