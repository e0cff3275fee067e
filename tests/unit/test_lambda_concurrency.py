"""The local Lambda runtime runs a function at most its reserved concurrency at once
(functions/specs.py), as Lambda does: a further invocation waits for one to finish."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from listing_vision.concurrency import thread_map
from local.lambda_runtime import LambdaRouter


def meeting(parties: int) -> tuple[Callable[[dict[str, Any], Any], int], Callable[[], int]]:
    """A handler that returns only once `parties` invocations are running together, and the most
    that ever ran at once."""
    together = threading.Barrier(parties, timeout=30)
    running, most = 0, 0
    lock = threading.Lock()

    def handler(event: dict[str, Any], context: Any) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        together.wait()
        with lock:
            running -= 1
        return int(event["n"])

    return handler, lambda: most


def test_a_function_runs_at_most_its_reserved_concurrency_at_once() -> None:
    router = LambdaRouter()
    # Given a function reserved two at a time, whose invocations each wait for a second one
    capped, capped_most = meeting(2)
    router.register("capped", capped, concurrency=2, new_environment=lambda number: capped)
    # When six invocations arrive at once, then all are served, never more than two at once
    assert thread_map(lambda n: router.call("capped", {"n": n}), range(6), max_workers=6) == list(range(6))
    assert capped_most() == 2
    # while a function without a reservation runs all six together
    open_, open_most = meeting(6)
    router.register("open", open_, new_environment=lambda number: open_)
    assert thread_map(lambda n: router.call("open", {"n": n}), range(6), max_workers=6) == list(range(6))
    assert open_most() == 6
