"""Running work on a bounded thread pool with the caller's context (log keys, correlation ids).

Threads do not inherit `contextvars`, so a plain ThreadPoolExecutor drops the keys Powertools'
Logger appended for this invocation (and anything else scoped to it). `thread_map` runs each call
in a copy of the caller's context, and adds each call's CPU time to the caller's `worker_cpu`
list when one is set (the migration bench counts the code's own CPU, its workers' included).
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

worker_cpu: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar("worker_cpu", default=None)


def thread_map(function: Callable[[Item], Result], items: Iterable[Item], max_workers: int) -> list[Result]:
    """`[function(item) for item in items]`, at most `max_workers` at once, results in order."""
    items = list(items)
    if not items:
        return []

    def timed(item: Item) -> Result:
        started = time.thread_time()
        try:
            return function(item)
        finally:
            spent = worker_cpu.get()
            if spent is not None:
                spent.append(time.thread_time() - started)

    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(items)))) as pool:
        futures = [pool.submit(contextvars.copy_context().run, timed, item) for item in items]
        return [future.result() for future in futures]
