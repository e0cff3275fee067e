"""A reverse proxy in front of a local emulator (moto, osmem-server), for the tests and benches
that act on the wire: it forwards every request and lets a subclass answer it otherwise
(`tests.faults.FaultProxy`: throttling, server errors) or later (`bench.latency_proxy.LatencyProxy`:
in-region latencies), the clients none the wiser."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import requests

# Framing headers of the emulator's answer, which the proxy sets again for its own.
HOP_BY_HOP = ("content-length", "transfer-encoding", "connection", "content-encoding")


@dataclass
class Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class ForwardingProxy:
    def __init__(self, target: str):
        self.target = target.rstrip("/")
        self._lock = threading.Lock()
        self._local = threading.local()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._http.daemon_threads = True
        self._http.request_queue_size = 128
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"

    def respond(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        """The answer to one request: the emulator's, unless a subclass says otherwise."""
        return self.forward(method, path, headers, body)

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        answer = self._session().request(method, self.target + path, data=body, headers=headers, timeout=120)
        kept = {name: value for name, value in answer.headers.items() if name.lower() not in HOP_BY_HOP}
        return Answer(answer.status_code, answer.content, kept)

    def _session(self) -> requests.Session:
        """One session per serving thread (a Session is not safe to share between threads)."""
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session  # type: ignore[no-any-return]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                answer = proxy.respond(self.command, self.path, headers, body)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

        return Handler

    def start(self) -> Self:
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
