"""The SageMaker container contract, served locally over HTTP with the real handler.

    python -m serving.clip.container --model-dir DIR [--port 8080]

Answers `GET /ping` and `POST /invocations` as a SageMaker inference container does, and also
`POST /endpoints/<name>/invocations`, the path the `sagemaker-runtime` client calls, so
`boto3.client("sagemaker-runtime", endpoint_url=...)` reaches it unchanged. Used by the tests (the
SageMaker embedder against the real serving code) and by the local stack when EMBEDDER=sagemaker.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from serving.clip import inference

INVOCATION_PATH = re.compile(r"^(/endpoints/[^/]+)?/invocations$")


class ContainerServer:
    def __init__(self, model_dir: str, host: str = "127.0.0.1", port: int = 8080):
        self.model = inference.model_fn(model_dir)
        self._http = ThreadingHTTPServer((host, port), self._handler_class())
        self._http.daemon_threads = True
        self.url = f"http://{host}:{self._http.server_address[1]}"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out in two writes: with Nagle on, the body waits for the
            # client's delayed ACK of the headers, 40 ms on every keep-alive request
            disable_nagle_algorithm = True

            def log_message(self, fmt: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: str, content_type: str = "application/json") -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _model_error(self, status: int, text: str) -> None:
                # What the SageMaker runtime answers when the model fails: a 424 ModelError carrying
                # the model's status and body (botocore reads the type from the header). The body is
                # what the inference toolkit writes: text, the message then the stack trace.
                kind = "client" if status < 500 else "server"
                body = json.dumps(
                    {
                        "ErrorCode": f"{kind.upper()}_ERROR_FROM_MODEL",
                        "Message": f"Received {kind} error ({status}) from primary with message {text!r}.",
                        "OriginalMessage": text,
                        "OriginalStatusCode": status,
                    }
                ).encode()
                self.send_response(424)
                self.send_header("Content-Type", "application/json")
                self.send_header(
                    "x-amzn-ErrorType", "ModelError:http://internal.amazon.com/coral/com.amazonaws.sagemaker/"
                )
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path == "/ping":
                    self._send(200, "{}")
                else:
                    self._send(404, json.dumps({"error": {"code": "not_found", "message": self.path}}))

            def do_POST(self) -> None:
                if not INVOCATION_PATH.match(self.path.split("?")[0]):
                    self._send(404, json.dumps({"error": {"code": "not_found", "message": self.path}}))
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    data = inference.input_fn(body, self.headers.get("Content-Type", ""))
                    prediction = inference.predict_fn(data, server.model)
                    payload, content_type = inference.output_fn(prediction, self.headers.get("Accept", ""))
                except Exception as error:  # noqa: BLE001 - answered as the inference toolkit does
                    status = error.status_code if isinstance(error, inference.ClientError) else 500
                    message = error.body() if isinstance(error, inference.ClientError) else str(error)
                    text = f"{message}\n{traceback.format_exc()}"
                    if self.path.startswith("/endpoints/"):
                        self._model_error(status, text)
                    else:
                        self._send(status, text, "text/plain")
                    return
                self._send(200, payload, content_type)

        return Handler

    def start(self) -> ContainerServer:
        threading.Thread(target=self._http.serve_forever, name="clip-container", daemon=True).start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.clip.container")
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    server = ContainerServer(args.model_dir, args.host, args.port)
    print(f"serving {args.model_dir} at {server.url} ({server.model.provider})", flush=True)
    server._http.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
