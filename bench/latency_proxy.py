"""A reverse proxy that gives local emulators in-region AWS latencies, per operation.

It forwards to moto (DynamoDB: the operation from `X-Amz-Target`) or osmem-server (OpenSearch:
the operation from the path: `_doc`, `_mget`, `_update`, `_bulk`, `_search`) and makes every
request take at least the operation's latency: it sleeps for whatever the emulator's own answer
did not already take (`max(0, latency − emulator time)`). The emulator stands in for the
service's own time, so nothing is counted twice; where the emulator is slower than AWS (moto's
CPU per item read), that slowness stays in the figure, for both approaches alike.

The latencies are assumptions, not measurements of AWS (no account here); in-region, warm
connections, small items (≤ 4 KB):

  DynamoDB GetItem              4 ms           AWS: "single-digit millisecond performance at any scale"
  DynamoDB BatchGetItem         4 ms + 0.2 ms a key (24 ms for 100): the keys are read in parallel
                                               server-side; a batch costs a few GetItems, not 100
  OpenSearch get (_doc)         3 ms           a real-time get by id, one shard
  OpenSearch mget               5 ms + 0.1 ms a document (15 ms for 100)
  OpenSearch update (_update)   8 ms           a write acknowledged by primary and replica
  OpenSearch bulk               10 ms + 1 ms an action (110 ms for 100 partial updates)
  OpenSearch search             10 ms          a page of search_after / a count
  anything else                 5 ms
"""

from __future__ import annotations

import json
import time
from collections import Counter

from doubles.forwarding import Answer, ForwardingProxy

MS = 0.001


def dynamodb_units(operation: str, body: bytes) -> int:
    """Keys of a BatchGetItem (1 for any other request)."""
    if operation == "BatchGetItem":
        return sum(len(request.get("Keys", [])) for request in json.loads(body)["RequestItems"].values())
    return 1


def opensearch_units(operation: str, body: bytes) -> int:
    """Ids of an mget, actions of a bulk (1 for any other request)."""
    if operation == "mget":
        return len(json.loads(body or b"{}").get("ids", []))
    if operation == "bulk":
        return sum(1 for line in body.splitlines() if line.startswith((b'{"update"', b'{"index"', b'{"create"')))
    return 1


def dynamodb_latency(operation: str, body: bytes) -> float:
    if operation == "GetItem":
        return 4 * MS
    if operation == "BatchGetItem":
        return 4 * MS + 0.2 * MS * dynamodb_units(operation, body)
    return 5 * MS


def opensearch_latency(operation: str, body: bytes) -> float:
    if operation == "get":
        return 3 * MS
    if operation == "mget":
        return 5 * MS + 0.1 * MS * opensearch_units(operation, body)
    if operation == "update":
        return 8 * MS
    if operation == "bulk":
        return 10 * MS + 1 * MS * opensearch_units(operation, body)
    if operation == "search":
        return 10 * MS
    return 5 * MS


def opensearch_operation(method: str, path: str) -> str:
    route = path.split("?", 1)[0]
    for fragment, name in (("/_mget", "mget"), ("/_bulk", "bulk"), ("/_update/", "update"), ("/_search", "search")):
        if fragment in route:
            return name
    if "/_doc/" in route and method == "GET":
        return "get"
    return "other"


class LatencyProxy(ForwardingProxy):
    """`kind`: "dynamodb" or "opensearch". `calls` counts requests per operation, `units` their keys,
    ids or actions."""

    def __init__(self, target: str, kind: str):
        super().__init__(target)
        self.kind = kind
        self.calls: Counter[str] = Counter()
        self.units: Counter[str] = Counter()
        self.injected_s = 0.0

    def latency(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[str, float]:
        if self.kind == "dynamodb":
            operation = headers.get("X-Amz-Target", "").rsplit(".", 1)[-1] or "other"
            return operation, dynamodb_latency(operation, body)
        operation = opensearch_operation(method, path)
        return operation, opensearch_latency(operation, body)

    def respond(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        started = time.perf_counter()
        operation, latency = self.latency(method, path, headers, body)
        answer = self.forward(method, path, headers, body)
        wait = latency - (time.perf_counter() - started)
        if wait > 0:
            time.sleep(wait)
        units = (dynamodb_units if self.kind == "dynamodb" else opensearch_units)(operation, body)
        with self._lock:
            self.calls[operation] += 1
            self.units[operation] += units
            self.injected_s += max(0.0, wait)
        return answer

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.units.clear()
            self.injected_s = 0.0
