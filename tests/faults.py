"""A fault-injecting HTTP proxy for tests: forwards to a real emulator (moto, osmem-server) and
answers chosen requests with an error instead, so clients meet throttling and server errors on
the wire exactly as they would from AWS."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

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


class FaultProxy:
    def __init__(self, target: str):
        self.target = target.rstrip("/")
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        self._session = requests.Session()

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def _fault_for(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if (fault.times is None or fault.hits < fault.times) and fault.match(method, path, headers, body):
                    fault.hits += 1
                    return fault
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                fault = proxy._fault_for(self.command, self.path, headers, body)
                if fault is not None:
                    status, out_headers, payload = fault.status, fault.headers, fault.body
                else:
                    answer = proxy._session.request(
                        self.command, proxy.target + self.path, data=body, headers=headers, timeout=60
                    )
                    status, payload = answer.status_code, answer.content
                    out_headers = {
                        k: v
                        for k, v in answer.headers.items()
                        if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding")
                    }
                self.send_response(status)
                for name, value in out_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

        return Handler

    def start(self) -> FaultProxy:
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()


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
