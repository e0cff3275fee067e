"""A loopback stand-in for the two Cognito hosted-UI endpoints the console uses (moto has no hosted UI):
`GET /oauth2/authorize` signs the person in at once and sends the browser back to `redirect_uri` with a
one-time code and the `state` it was given; `POST /oauth2/token` exchanges that code for the tokens it was
handed (real ones, from moto's user pool) only when the client, the redirect URI and the PKCE verifier
(SHA-256 of it, base64url, equal to the challenge) match, as Cognito's token endpoint checks them.
Every request is recorded."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit


@dataclass
class HostedUi:
    client_id: str
    tokens: dict[str, Any]  # what /oauth2/token answers: id_token, access_token, expires_in, token_type
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # (path, parameters)
    _codes: dict[str, dict[str, str]] = field(default_factory=dict)  # code -> the authorize request's parameters

    def start(self) -> HostedUi:
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def _authorize(self, params: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        if params.get("client_id") != self.client_id or params.get("response_type") != "code":
            return 400, {}, b"invalid_request"
        code = secrets.token_urlsafe(16)
        self._codes[code] = params
        query = urlencode({"code": code, "state": params.get("state", "")})
        return 302, {"Location": f"{params['redirect_uri']}?{query}"}, b""

    def _token(self, params: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        asked = self._codes.pop(params.get("code", ""), None)  # a code is used once
        verifier = params.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        valid = (
            asked is not None
            and params.get("grant_type") == "authorization_code"
            and params.get("client_id") == self.client_id
            and params.get("redirect_uri") == asked["redirect_uri"]
            and asked.get("code_challenge_method") == "S256"
            and challenge == asked.get("code_challenge")
        )
        body = self.tokens if valid else {"error": "invalid_grant"}
        return (200 if valid else 400), {"Content-Type": "application/json"}, json.dumps(body).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        ui = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: Any) -> None:
                pass

            def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for name, value in {**headers, "Access-Control-Allow-Origin": "*"}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                split = urlsplit(self.path)
                params = {k: v[0] for k, v in parse_qs(split.query).items()}
                ui.requests.append((split.path, params))
                self._answer(*(ui._authorize(params) if split.path == "/oauth2/authorize" else (404, {}, b"")))

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                params = {k: v[0] for k, v in parse_qs(body).items()}
                ui.requests.append((self.path, params))
                self._answer(*(ui._token(params) if self.path == "/oauth2/token" else (404, {}, b"")))

        return Handler
