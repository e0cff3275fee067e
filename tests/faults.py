"""A fault-injecting HTTP proxy for tests: forwards to a real emulator (moto, osmem-server) and
answers chosen requests with an error instead, so clients meet throttling and server errors on
the wire exactly as they would from AWS."""

from __future__ import annotations

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
