"""The local Lambda runtime runs invocations of different functions in threads of one process, where
Powertools' Logger (one per process, as on Lambda) keeps the keys it adds to every record. Each
invocation's records must carry its own function name and request id, whichever started last."""

from __future__ import annotations

import io
import json
import logging
import threading
from typing import Any

from listing_vision.concurrency import thread_map
from listing_vision.observability import logger
from local.lambda_runtime import LambdaRouter


def test_concurrent_invocations_log_as_their_own_function() -> None:
    records = io.StringIO()
    handler = logging.StreamHandler(records)
    handler.setFormatter(logger.registered_formatter)
    logger._logger.addHandler(handler)  # the records as the function's log would hold them
    slow_started, fast_logged = threading.Event(), threading.Event()

    @logger.inject_lambda_context
    def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
        slow_started.set()
        fast_logged.wait(10)  # another function's invocation starts, and logs, meanwhile
        logger.info("slow done")
        thread_map(lambda _: logger.info("slow worker"), [1], max_workers=1)  # a thread it starts
        return {"request_id": context.aws_request_id}

    @logger.inject_lambda_context
    def fast(event: dict[str, Any], context: Any) -> dict[str, Any]:
        slow_started.wait(10)
        logger.info("fast done")
        fast_logged.set()
        return {"request_id": context.aws_request_id}

    router = LambdaRouter()
    router.register("slow-function", slow)
    router.register("fast-function", fast)
    answers: dict[str, Any] = {}
    try:
        # Given two functions' invocations running at once in this process
        threads = [
            threading.Thread(target=lambda name=name: answers.update({name: router.call(name, {})}))
            for name in ("slow-function", "fast-function")
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        logger._logger.removeHandler(handler)
        router.uninstall()
    # When their records are read
    logged = [json.loads(line) for line in records.getvalue().splitlines()]
    by_message = {record["message"]: record for record in logged}
    # Then each carries the function and the request that wrote it, the slow one's after the fast one started
    assert by_message["slow done"]["function_name"] == "slow-function"
    assert by_message["slow worker"]["function_name"] == "slow-function"
    assert by_message["fast done"]["function_name"] == "fast-function"
    # and names it as its service, as each function's POWERTOOLS_SERVICE_NAME does on AWS
    assert [by_message[m]["service"] for m in ("slow done", "slow worker", "fast done")] == [
        "slow-function",
        "slow-function",
        "fast-function",
    ]
    assert by_message["slow done"]["function_request_id"] == answers["slow-function"]["request_id"]
    assert by_message["fast done"]["function_request_id"] == answers["fast-function"]["request_id"]
