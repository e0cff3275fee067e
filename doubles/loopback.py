"""Loopback HTTP servers speaking the OpenAI and Anthropic wire protocols, for the real SDKs (and
answering GETs too, for what the platform reads over HTTP, such as a user pool's keys).

Each route answers from a script (a queue of replies; when it runs out, the default reply), and
every request is recorded, so tests can send a 429 with retry-after, a 500, a quota error or a
malformed reply, and check what the SDK actually sent. A reply may come late (`delay_s`) or trickle
its status line and headers a byte at a time (`trickle_s`), as a hostile receiver's would; a server
may listen on another loopback address, or speak TLS (recording the name each client asked for).
"""

from __future__ import annotations

import http
import json
import ssl
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# the routes of the paid APIs the platform calls, as the SDKs send them
OPENAI_CHAT = "/v1/chat/completions"
OPENAI_IMAGE_EDITS = "/v1/images/edits"
ANTHROPIC_MESSAGES = "/v1/messages"


@dataclass
class Reply:
    status: int = 200
    body: bytes | dict[str, Any] = b"{}"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # wait this long before answering
    trickle_s: float = 0.0  # send the status line and headers one byte every `trickle_s` seconds


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class LoopbackServer:
    def __init__(
        self,
        defaults: dict[str, Callable[[Recorded], Reply]],
        address: str = "127.0.0.1",
        port: int = 0,
        tls: ssl.SSLContext | None = None,
    ):
        self.defaults = defaults
        self.scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self.requests: list[Recorded] = []
        self.server_names: list[str | None] = []  # with `tls`: the name (SNI) each client asked for
        self._lock = threading.Lock()
        self._stopping = threading.Event()  # ends the waits of late and trickling replies
        self._http = ThreadingHTTPServer((address, port), self._handler())
        self._http.daemon_threads = True
        if tls is not None:
            tls.sni_callback = lambda sock, name, context: self.server_names.append(name)  # type: ignore[assignment]
            self._http.socket = tls.wrap_socket(self._http.socket, server_side=True)
        self.port: int = self._http.server_address[1]
        self.url = f"{'https' if tls else 'http'}://{address}:{self.port}"

    def script(self, path: str, *replies: Reply) -> None:
        with self._lock:
            self.scripts[path].extend(replies)

    def calls(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path.split("?")[0] == path]

    def _reply_for(self, request: Recorded) -> Reply:
        path = request.path.split("?")[0]
        with self._lock:
            self.requests.append(request)
            if self.scripts[path]:
                return self.scripts[path].popleft()
        if path in self.defaults:
            return self.defaults[path](request)
        return Reply(404, {"error": {"message": f"no route {path}", "type": "not_found"}})

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self._answer("POST")

            def do_GET(self) -> None:  # a document the platform reads (a user pool's keys)
                self._answer("GET")

            def _answer(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                reply = server._reply_for(Recorded(method, self.path, dict(self.headers.items()), body))
                if reply.delay_s and server._stopping.wait(reply.delay_s):
                    return
                payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                fields = {"Content-Type": "application/json", **reply.headers, "Content-Length": str(len(payload))}
                if reply.trickle_s:
                    self.close_connection = True
                    phrase = http.HTTPStatus(reply.status).phrase
                    head = f"HTTP/1.1 {reply.status} {phrase}\r\n"
                    head += "".join(f"{name}: {value}\r\n" for name, value in fields.items()) + "\r\n"
                    try:
                        for byte in head.encode():
                            if server._stopping.wait(reply.trickle_s):
                                return
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                        self.wfile.write(payload)
                    except OSError:
                        pass  # the client gave up
                    return
                self.send_response(reply.status)
                for name, value in fields.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

        return Handler

    def start(self) -> LoopbackServer:
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._http.shutdown()
        self._http.server_close()


# --- OpenAI ----------------------------------------------------------------------------------
def openai_completion(content: str | None, refusal: str | None = None, model: str = "gpt-5.4-mini") -> Reply:
    return Reply(
        200,
        {
            "id": "chatcmpl-loopback",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "logprobs": None,
                    "message": {"role": "assistant", "content": content, "refusal": refusal},
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        },
    )


def openai_error(
    status: int, code: str, message: str, error_type: str | None = None, headers: dict[str, str] | None = None
) -> Reply:
    return Reply(
        status, {"error": {"message": message, "type": error_type or code, "param": None, "code": code}}, headers or {}
    )


# --- Anthropic -------------------------------------------------------------------------------
def anthropic_message(text: str, stop_reason: str = "end_turn", model: str = "claude-sonnet-4-6") -> Reply:
    return Reply(
        200,
        {
            "id": "msg_loopback",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 10},
        },
    )


def anthropic_error(status: int, error_type: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"type": "error", "error": {"type": error_type, "message": message}}, headers or {})


def openai_image(size: int = 1024, seed: int = 0, delay_s: float = 0.0, grain: float = 0.0) -> Reply:
    """An images.edit reply: a made-up scene without the piece (paste-back must restore it). `grain`
    (a standard deviation in grey levels) adds a photograph's noise, which PNG compresses as
    poorly as a real model's output; without it the scene is smooth and compresses to little."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    scene = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize(
        (size, size), Image.Resampling.BICUBIC
    )
    if grain:
        pixels = np.asarray(scene).astype(np.float64) + rng.normal(0.0, grain, (size, size, 3))
        scene = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    scene.save(buffer, "PNG")
    body = {"created": int(time.time()), "data": [{"b64_json": base64.b64encode(buffer.getvalue()).decode()}]}
    return Reply(200, body, delay_s=delay_s)
