"""A function dying between two writes to durable stores, as AWS fails: the kill machinery the crash
tests share.

Two ways to kill, for two kinds of writer:

- `Invocation` wraps a service's stores (tests/integration/test_crash_points.py calls the services
  directly): after its k-th store write, every further call of that invocation raises.
- `dying(function, after)` kills a function deployed on the local stack, wherever its writes go: a
  write is any AWS API call that changes something (PutObject, UpdateItem, ...) or any OpenSearch
  request that does (an index, update, bulk or delete; not a search, count or refresh), made
  inside that function's invocation (`local.lambda_runtime.current_function` and
  `current_invocation`). Its first invocations each die right after their `after`-th write (one
  number per attempt; `when`, read inside an invocation, picks which ones count, e.g. a state
  machine's batch tasks and not its plan): the write is made, then `FunctionKilled` is raised, and
  every later call of that attempt raises too (a dead process makes none), so no cleanup of the
  function's own runs. The runtime answers the invocation `Runtime.ExitError` and the platform's
  own retry follows: Lambda's retry of an asynchronous event (same request id), Step Functions'
  Retry of a task.

Either way, `writes` lists what the dying attempt wrote, in order, and `left` what a probe found at
the moment of death, before any retry (the probe runs outside the invocation, so it is not counted).
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import botocore.client
from opensearchpy import Transport

from listing_vision.jewelry.stores import CatalogueStores
from local.lambda_runtime import FunctionKilled, current_function, current_invocation

FunctionDied = FunctionKilled  # the invocation is gone (not an Exception: nothing of the function's own handles it)

# AWS operations that change a store; every other call is a read.
WRITE_PREFIXES = (
    "Put",
    "Update",
    "Delete",
    "Create",
    "BatchWrite",
    "TransactWrite",
    "Copy",
    "CompleteMultipartUpload",
    "UploadPart",
    "SendMessage",
    "StartExecution",
)
# OpenSearch requests that change nothing, whatever their method.
OPENSEARCH_READS = ("_search", "_count", "_mget", "_msearch", "_refresh", "_scroll", "_pit", "_validate")


def aws_write(operation: str, params: dict[str, Any]) -> str | None:
    """A label for a write (`UpdateItem jobs`, `PutObject generated/2-hand-holding.png`), None for a read."""
    if not operation.startswith(WRITE_PREFIXES):
        return None
    if "TableName" in params:
        return f"{operation} {params['TableName']}"
    if "Bucket" in params:
        return f"{operation} {params['Bucket']}/{str(params.get('Key', '')).rsplit('/', 1)[-1]}"
    return operation


def opensearch_write(method: str, url: str) -> str | None:
    if method in ("GET", "HEAD") or any(part in url for part in OPENSEARCH_READS):
        return None
    return f"{method} {url.split('?', 1)[0]}"


@dataclass
class Death:
    """The first invocations of `function` each die right after their `after`-th write (`after`: one
    number per attempt to kill, the first attempt's first; None: nobody dies, writes are recorded)."""

    function: str
    after: tuple[int, ...] = ()
    probe: Callable[[], Any] | None = None  # what the death left, read at once (outside the invocation)
    when: Callable[[], bool] | None = None  # which invocations count (read inside one); None: all
    writes: list[list[str]] = field(default_factory=list)  # each attempt's writes, in order
    left: list[Any] = field(default_factory=list)  # the probe's findings, one per death
    _attempts: dict[int, int] = field(default_factory=dict)  # id(invocation context) -> attempt number
    _dead: set[int] = field(default_factory=set)
    _ignored: set[int] = field(default_factory=set)
    # The contexts counted above, kept alive: an id is unique only while its object lives, and a retry's
    # context allocated where a dead attempt's was would otherwise be taken for it (and die at its first call)
    _seen: list[Any] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _attempt(self) -> int | None:
        """This call's attempt number, None outside the function."""
        context = current_invocation.get()
        if current_function.get() != self.function or context is None:
            return None
        with self._lock:
            if id(context) in self._ignored:
                return None
            if id(context) not in self._attempts and self.when is not None and not self.when():
                self._ignored.add(id(context))
                self._seen.append(context)
                return None
            if id(context) not in self._attempts:
                self._seen.append(context)
                self._attempts[id(context)] = len(self.writes)
                self.writes.append([])
            return self._attempts[id(context)]

    def before(self) -> int | None:
        attempt = self._attempt()
        if attempt is not None and attempt in self._dead:
            raise FunctionKilled("signal: killed (a call after its death)")
        return attempt

    def after_write(self, attempt: int | None, label: str | None) -> None:
        if attempt is None or label is None:
            return
        with self._lock:
            self.writes[attempt].append(label)
            dies = attempt < len(self.after) and len(self.writes[attempt]) == self.after[attempt]
            if dies:
                self._dead.add(attempt)
        if dies:
            if self.probe is not None:
                self.left.append(contextvars.Context().run(self.probe))  # a context of no invocation
            raise FunctionKilled(f"signal: killed (right after {label})")

    @property
    def died(self) -> int:
        return len(self._dead)


@contextmanager
def dying(
    function: str,
    after: int | tuple[int, ...] | None,
    probe: Callable[[], Any] | None = None,
    when: Callable[[], bool] | None = None,
) -> Iterator[Death]:
    """Kill `function` as `Death` says while inside (every AWS client and OpenSearch transport)."""
    death = Death(function, (after,) if isinstance(after, int) else after or (), probe, when)
    make_api_call = botocore.client.BaseClient._make_api_call
    perform_request = Transport.perform_request

    def api_call(client: Any, operation: str, params: dict[str, Any]) -> Any:
        attempt = death.before()
        result = make_api_call(client, operation, params)
        death.after_write(attempt, aws_write(operation, params))
        return result

    def request(transport: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        attempt = death.before()
        result = perform_request(transport, method, url, *args, **kwargs)
        death.after_write(attempt, opensearch_write(method, url))
        return result

    botocore.client.BaseClient._make_api_call = api_call  # type: ignore[method-assign]
    Transport.perform_request = request  # type: ignore[method-assign,assignment]
    try:
        yield death
    finally:
        botocore.client.BaseClient._make_api_call = make_api_call  # type: ignore[method-assign]
        Transport.perform_request = perform_request  # type: ignore[method-assign]


# --- a service's stores, called directly (tests/integration/test_crash_points.py) -------------------
WRITES = {
    "images": {"put_image", "put", "delete", "tag"},
    "vectors": {"ensure_vector", "delete"},
    "claims": {
        *("try_claim", "next_order", "stage", "complete", "yield_claim", "release", "set_features", "forget"),
        *("begin_delete", "end_delete", "undo_delete"),
    },
    "uploads": {"claim", "settle", "release", "note_reuse"},
}


class Invocation:
    """One invocation's view of the stores: it dies right after its `die_after`-th write."""

    def __init__(self, die_after: int):
        self.die_after = die_after
        self.writes: list[str] = []
        self.dead = False

    def stores(self, stores: CatalogueStores) -> CatalogueStores:
        return CatalogueStores(
            self._mortal(stores.vectors, WRITES["vectors"]),
            self._mortal(stores.images, WRITES["images"]),
            self._mortal(stores.claims, WRITES["claims"]),
            self._mortal(stores.uploads, WRITES["uploads"]),
        )

    def _mortal(self, store: Any, writes: set[str]) -> Any:
        invocation = self

        class Mortal:
            def __getattr__(self, name: str) -> Any:
                attribute = getattr(store, name)
                if not callable(attribute):
                    return attribute

                def call(*args: Any, **kwargs: Any) -> Any:
                    if invocation.dead:
                        raise FunctionDied("the function is dead")
                    result = attribute(*args, **kwargs)
                    if name in writes:
                        invocation.writes.append(name)
                        if len(invocation.writes) == invocation.die_after:
                            invocation.dead = True
                            raise FunctionDied(f"died right after {name}")
                    return result

                return call

        return Mortal()


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """Rows as a plain text table, for the crash tests' printed kill points."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = [" | ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    rule = "-+-".join("-" * width for width in widths)
    head = " | ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=True))
    return "\n".join([head, rule, *lines])
