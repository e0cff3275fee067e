"""Running work on a bounded thread pool with the caller's context (log keys, correlation ids).

Threads do not inherit `contextvars`, so a plain ThreadPoolExecutor drops the keys Powertools'
Logger appended for this invocation (and anything else scoped to it). `thread_map` runs each call
in a copy of the caller's context.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def thread_map(function: Callable[[Item], Result], items: Iterable[Item], max_workers: int) -> list[Result]:
    """`[function(item) for item in items]`, at most `max_workers` at once, results in order."""
    items = list(items)
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(items)))) as pool:
        futures = [pool.submit(contextvars.copy_context().run, function, item) for item in items]
        return [future.result() for future in futures]
