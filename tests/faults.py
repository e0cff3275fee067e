"""A fault-injecting HTTP proxy for tests: forwards to a real emulator (moto, osmem-server) and
answers chosen requests with an error instead, so clients meet throttling and server errors on
the wire exactly as they would from AWS."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from doubles.forwarding import Answer, ForwardingProxy

Match = Callable[[str, str, dict[str, str], bytes], bool]


@dataclass
class Fault:
    """Answer `status`/`body` to requests that `match`, `times` times (None: always)."""

    match: Match
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    times: int | None = 1
    hits: int = 0


class FaultProxy(ForwardingProxy):
    def __init__(self, target: str):
        super().__init__(target)
        self.faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def respond(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        fault = self._fault_for(method, path, headers, body)
        if fault is not None:
            return Answer(fault.status, fault.body, fault.headers)
        return self.forward(method, path, headers, body)

    def _fault_for(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if (fault.times is None or fault.hits < fault.times) and fault.match(method, path, headers, body):
                    fault.hits += 1
                    return fault
        return None


def dynamodb_operation(name: str) -> Match:
    return lambda method, path, headers, body: headers.get("X-Amz-Target", "").endswith(f".{name}")


DYNAMODB_THROTTLED = (
    b'{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",'
    b'"message":"The level of configured provisioned throughput for the table was exceeded."}'
)


def opensearch_path(fragment: str, contains: bytes = b"") -> Match:
    return lambda method, path, headers, body: fragment in path and contains in body


OPENSEARCH_TOO_MANY = b'{"error":{"type":"es_rejected_execution_exception","reason":"rejected"},"status":429}'
OPENSEARCH_UNAVAILABLE = b'{"error":{"type":"unavailable","reason":"node restarting"},"status":503}'


REJECTED_ITEM_ERROR = {
    "type": "es_rejected_execution_exception",
    "reason": "rejected execution of coordinating operation: write queue capacity exceeded",
}


class BulkRejectingProxy(ForwardingProxy):
    """In front of OpenSearch: the next `requests` _bulk requests have their first `reject` actions
    rejected as a full write queue rejects them (per-item 429, `es_rejected_execution_exception`).
    Those actions never reach the engine; the rest are forwarded and the engine's own results
    merged, in order, with the rejections, so the client meets what a busy domain answers."""

    def __init__(self, target: str, reject: int, requests: int = 1):
        super().__init__(target)
        self.reject = reject
        self.remaining = requests
        self.rejected: list[str] = []  # ids rejected, in order

    def respond(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        with self._lock:
            rejecting = "/_bulk" in path.split("?", 1)[0] and self.remaining > 0
            self.remaining -= rejecting
        if not rejecting:
            return self.forward(method, path, headers, body)
        lines = [line for line in body.splitlines() if line.strip()]
        pairs = [lines[i : i + 2] for i in range(0, len(lines), 2)]  # update/index: action and source
        items = []
        for action_line, _ in pairs[: self.reject]:
            op, meta = next(iter(json.loads(action_line).items()))
            items.append({op: {"_id": meta["_id"], "status": 429, "error": REJECTED_ITEM_ERROR}})
            self.rejected.append(meta["_id"])
        kept = pairs[self.reject :]
        if kept:
            answer = self.forward(method, path, headers, b"\n".join(line for pair in kept for line in pair) + b"\n")
            items += json.loads(answer.body)["items"]
        merged = {"took": 1, "errors": True, "items": items}
        return Answer(200, json.dumps(merged).encode(), {"Content-Type": "application/json"})
