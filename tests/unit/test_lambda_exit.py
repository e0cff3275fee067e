"""A function whose process dies mid-invocation, on the local Lambda runtime as on Lambda: its
caller is answered `Runtime.ExitError`, its execution environment is never reused, and an
asynchronous event is retried with the same request id."""

from __future__ import annotations

import json
from typing import Any

from functions.specs import AsyncDelivery
from local.lambda_runtime import FunctionKilled, LambdaRouter


def test_a_killed_invocation_is_answered_exit_error_and_its_async_retry_keeps_the_request_id() -> None:
    router = LambdaRouter(retry_delays_s=(0.0,))
    attempts: list[tuple[str, int]] = []
    environments = iter(range(1, 100))

    def environment(number: int) -> Any:
        made = next(environments)

        def handler(event: dict[str, Any], context: Any) -> str:
            attempts.append((context.aws_request_id, made))
            if len(attempts) in event["die_on"]:
                raise FunctionKilled("signal: killed")
            return "ok"

        return handler

    router.register("mortal", environment(0), delivery=AsyncDelivery(1, 60), new_environment=environment, concurrency=1)
    # Given a function that dies on its first invocation
    # When it is invoked synchronously, then the caller is told its runtime exited
    payload, failed = router.invoke("mortal", json.dumps({"die_on": [1]}))
    answer = json.loads(payload)
    assert failed and answer["errorType"] == "Runtime.ExitError"
    assert answer["errorMessage"] == f"RequestId: {attempts[0][0]} Error: Runtime exited with error: signal: killed"
    # And the next invocation runs in a fresh execution environment, not the dead one
    assert router.invoke("mortal", json.dumps({"die_on": []})) == (b'"ok"', False)
    assert attempts[1][1] != attempts[0][1]
    # When an asynchronous event's first attempt dies
    router.invoke("mortal", json.dumps({"die_on": [3]}), asynchronous=True)
    assert router.drain(30)
    # Then Lambda's retry delivers it again, with the same request id, in another environment
    (first, dead), (retry, fresh) = attempts[2:]
    assert first == retry and first != attempts[1][0] and fresh != dead
