"""Powertools state made per invocation for the local Lambda runtime.

Powertools keeps the event being resolved on a class (`BaseRouter.current_event`, one per process,
which on Lambda is one event at a time): here it is kept per thread, or concurrent requests would
read each other's bodies (`per_thread_resolver_event`). Likewise the keys its Logger
adds to every record (function name, request id, correlation id) live in the logger's formatter,
one per process: here they are kept per invocation, or a record would carry the function name of
whichever invocation started last (`per_invocation_log_keys`).
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# The Powertools formatters' keys of the invocation running in this context: id(formatter) -> keys.
_log_keys: contextvars.ContextVar[dict[int, dict[str, Any]] | None] = contextvars.ContextVar("log_keys", default=None)
_log_keys_patched = False


def per_invocation_log_keys() -> None:
    """Make the keys Powertools' formatter adds to every record (`log_format`: what
    `inject_lambda_context` appends, function_name among them) belong to the invocation: each
    starts from the formatter's process-wide keys (those set outside any invocation, at import),
    and threads it starts with its context (listing_vision.concurrency) share them. On Lambda a
    process runs one invocation at a time; here invocations of different functions run in threads
    of one process, sharing one formatter."""
    global _log_keys_patched
    if _log_keys_patched:
        return
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

    def process_wide(formatter: Any) -> dict[str, Any]:
        # A formatter made before the patch holds its keys itself, under the property's name.
        attributes = formatter.__dict__
        if "_process_log_format" not in attributes:
            attributes["_process_log_format"] = attributes.pop("log_format", {})
        return attributes["_process_log_format"]  # type: ignore[no-any-return]

    def get(formatter: Any) -> dict[str, Any]:
        keys = _log_keys.get()
        if keys is None:
            return process_wide(formatter)
        if id(formatter) not in keys:
            keys[id(formatter)] = dict(process_wide(formatter))
        return keys[id(formatter)]

    def put(formatter: Any, value: dict[str, Any]) -> None:
        keys = _log_keys.get()
        if keys is None:
            process_wide(formatter)
            formatter.__dict__["_process_log_format"] = value
        else:
            keys[id(formatter)] = value

    LambdaPowertoolsFormatter.log_format = property(get, put)  # type: ignore[assignment,method-assign]
    _log_keys_patched = True


@contextmanager
def own_log_keys() -> Iterator[None]:
    """Within it, the Powertools formatters' keys are this invocation's own (`per_invocation_log_keys`)."""
    per_invocation_log_keys()
    token = _log_keys.set({})
    try:
        yield
    finally:
        _log_keys.reset(token)


_resolver_state = threading.local()
_RESOLVER_ATTRIBUTES = ("current_event", "lambda_context")


def per_thread_resolver_event() -> None:
    """Make Powertools' `BaseRouter.current_event` and `lambda_context` per thread: Powertools assigns
    them on the class (shared by every resolver of the process), which is right on Lambda, where a
    process serves one event at a time, and wrong here, where execution environments are threads. A
    property on the class serves instances, one on a metaclass serves `BaseRouter.current_event`."""
    from aws_lambda_powertools.event_handler.api_gateway import BaseRouter

    meta = type(BaseRouter)
    if getattr(meta, "_per_thread_event", False):
        return

    def accessor(name: str) -> property:
        return property(
            lambda _self: getattr(_resolver_state, name, None),
            lambda _self, value: setattr(_resolver_state, name, value),
        )

    for name in _RESOLVER_ATTRIBUTES:
        setattr(BaseRouter, name, accessor(name))  # instances: self.current_event
    namespace: dict[str, Any] = {name: accessor(name) for name in _RESOLVER_ATTRIBUTES}
    namespace["_per_thread_event"] = True
    BaseRouter.__class__ = type("PerThreadRouterMeta", (meta,), namespace)  # type: ignore[method-assign]
