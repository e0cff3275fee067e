"""A local stand-in for API Gateway (REST, Lambda proxy integration).

Each HTTP request becomes the proxy event the deployed API would send (resource, path parameters,
single- and multi-value headers and query strings, requestContext), with the body base64-encoded
when its Content-Type is one of the API's binary media types (multipart kept byte-for-byte), and
the function's proxy response is written back. Limits mirror AWS: 10 MB request (API Gateway),
6 MB event (Lambda synchronous invoke). What the gateway itself refuses is answered as the
deployed API's gateway responses answer it (listing_vision.api.gateway_responses): an unknown
route or method is a 404 `route_not_found` (HEAD and TRACE included: no route has them),
a body over 10 MB a 413 `payload_too_large`. CORS as the deployed API (listing_vision.api.console_policy):
an OPTIONS preflight of a route is answered 204, and it and the gateway's own refusals carry CORS
headers for `cors_origins` only (the functions' answers carry their own, as on AWS).

Framing (Content-Length, chunked bodies, deadlines, Expect) is read by `http_framing`, whose
refusals are answered in the same JSON shape.

With an authorizer (API_AUTH=api_keys), each request first goes to the authorizer function as the
REQUEST authorizer event API Gateway sends: no `x-api-key` or `Authorization` header is a 401 without calling it, its
`Unauthorized` a 401, a policy that does not allow the route a 403, and an allowed request reaches
the function with the authorizer's context in `requestContext.authorizer`, as on AWS.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import re
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from functions.routes import BINARY_MEDIA_TYPES, ROUTES, Route
from listing_vision.api.console_policy import cors_headers, preflight_headers
from listing_vision.api.gateway_responses import body as gateway_response
from listing_vision.errors import PayloadTooLarge, VisionError, http_status
from local.http_framing import (
    FRAMING_ERRORS,
    READ_TIMEOUT_S,
    REQUEST_DEADLINE_S,
    DeadlineReader,
    FramingError,
    content_length,
    header_problem,
    is_chunked,
    read_chunked,
)

API_GATEWAY_MAX_BODY = 10 * 1024 * 1024
LAMBDA_MAX_EVENT = 6 * 1024 * 1024
STAGE = "local"
API_ARN = "arn:aws:execute-api:us-east-1:123456789012:local"


@dataclass(frozen=True)
class Page:
    """A file an extra route answers as it is (the review console's pages, scripts and styles)."""

    content_type: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class CompiledRoute:
    route: Route
    pattern: re.Pattern[str]


def compile_routes(routes: tuple[Route, ...]) -> list[CompiledRoute]:
    compiled = []
    for route in routes:
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(route.path))
        compiled.append(CompiledRoute(route, re.compile(f"^{regex}$")))
    return compiled


def is_binary(content_type: str) -> bool:
    media_type = content_type.split(";")[0].strip().lower()
    return any(fnmatch.fnmatch(media_type, pattern) for pattern in BINARY_MEDIA_TYPES)


def build_event(
    route: Route,
    path: str,
    path_params: dict[str, str],
    method: str,
    headers: list[tuple[str, str]],
    query: str,
    body: bytes,
    source_ip: str,
) -> dict[str, Any]:
    """The API Gateway REST proxy event (payload format 1.0) for one request."""
    single_headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, raw in headers:
        value = raw.strip(" \t")  # a field value has no leading or trailing whitespace (RFC 9110 5.5)
        single_headers[name] = value  # API Gateway keeps the last value
        multi_headers.setdefault(name, []).append(value)
    multi_query = parse_qs(query, keep_blank_values=True)
    content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
    binary = is_binary(content_type)
    if not body:
        event_body: str | None = None
    elif binary:
        event_body = base64.b64encode(body).decode()
    else:
        event_body = body.decode("utf-8", errors="replace")
    now = time.time()
    return {
        "resource": route.path,
        "path": path,
        "httpMethod": method,
        "headers": single_headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_params or None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": route.path,
            "httpMethod": method,
            "path": f"/{STAGE}{path}",
            "stage": STAGE,
            "requestId": str(uuid.uuid4()),
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000),
            "accountId": "123456789012",
            "apiId": "local",
            "protocol": "HTTP/1.1",
            "identity": {
                "sourceIp": source_ip,
                "userAgent": single_headers.get("User-Agent") or single_headers.get("user-agent"),
            },
        },
        "body": event_body,
        "isBase64Encoded": bool(body) and binary,
    }


class Gateway:
    """Routes HTTP requests to handlers; `extra_routes` answer GETs of paths that no function
    answers (/health, /openapi.json: a dict answered as JSON; /swagger: a str answered as HTML;
    /console/...: a Page, answered with its own type and headers).
    With an authorizer they need a key as every route does (on AWS /openapi.json is a keyed method),
    except `open_paths` (the local stack's own /health, which AWS does not have)."""

    def __init__(
        self,
        call: Callable[[str, dict[str, Any]], Any],
        extra_routes: dict[str, Callable[[], tuple[int, dict[str, Any] | str | Page]]] | None = None,
        log_requests: bool = True,
        authorizer: str | None = None,
        read_timeout_s: float = READ_TIMEOUT_S,
        request_deadline_s: float = REQUEST_DEADLINE_S,
        open_paths: frozenset[str] = frozenset(),
        cors_origins: tuple[str, ...] = (),
    ):
        self.cors_origins = cors_origins  # browsers' origins the API answers (the console's)
        self.log_requests = log_requests
        self.read_timeout_s = read_timeout_s
        self.request_deadline_s = request_deadline_s
        self.authorizer = authorizer  # the authorizer function's name, or None: no authorization
        self.call = call  # invoke a function synchronously: (function name, event) -> proxy response
        self.routes = compile_routes(ROUTES)
        self.extra_routes = extra_routes or {}
        self.open_paths = open_paths

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for compiled in self.routes:
            found = compiled.pattern.match(path)
            if found and compiled.route.method == method:
                return compiled.route, found.groupdict()
        return None

    def serve(self, host: str, port: int) -> ThreadingHTTPServer:
        gateway = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out in two writes: with Nagle on, the body waits for the
            # client's delayed ACK of the headers, 40 ms on every keep-alive request
            disable_nagle_algorithm = True
            timeout = gateway.read_timeout_s  # socketserver sets it on the connection: each read is bounded

            def log_message(self, fmt: str, *args: Any) -> None:  # one line a request, to stderr
                if gateway.log_requests:
                    super().log_message(fmt, *args)

            def _write(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in ("content-length", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                if self.close_connection:
                    self.send_header("Connection", "close")
                self.end_headers()
                if self.command != "HEAD":  # a HEAD answer has the headers of the answer, never its body
                    self.wfile.write(body)

            def _error(self, error: VisionError, status: int | None = None) -> None:
                # the one error shape, with a request id as every answer of the API has
                body = json.dumps(error.to_body(str(uuid.uuid4())), default=str).encode()
                headers = {"Content-Type": "application/json", **self._cors()}
                self._answer(status or http_status(error), headers, body)

            def _refuse(self, response_type: str, message: str | None = None) -> None:
                """What API Gateway itself answers (its gateway response for this type)."""
                status, payload = gateway_response(response_type, str(uuid.uuid4()), message)
                headers = {"Content-Type": "application/json", **self._cors()}
                self._answer(status, headers, json.dumps(payload).encode())

            def _cors(self) -> dict[str, str]:
                headers = getattr(self, "headers", None)  # none yet when the request line was refused
                return cors_headers(dict(headers.items()), gateway.cors_origins) if headers else {}

            def _answer_framing(self, status: int, code: str, message: str) -> None:
                """A refusal made while reading the request: the platform's shape, then the connection closes."""
                self.close_connection = True
                if self.request_version == "HTTP/0.9":  # the request line was unreadable: answer in HTTP/1.1
                    self.request_version = "HTTP/1.1"
                payload = {"error": {"code": code, "message": message, "request_id": str(uuid.uuid4())}}
                headers = {"Content-Type": "application/json", "Connection": "close"}
                self._answer(status, headers, json.dumps(payload).encode())

            def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
                """What the HTTP parser refuses (bad request line, headers too large, an unknown method),
                in JSON rather than the standard library's HTML page."""
                if code == 501:  # a method no route has: what API Gateway answers for it
                    self.close_connection = True
                    self._refuse("MISSING_AUTHENTICATION_TOKEN", f"No route for {self.command} {self.path}.")
                    return
                framing_code, default = FRAMING_ERRORS.get(code, ("malformed_request", "The request was refused."))
                self._answer_framing(code, framing_code, message or default)

            def parse_request(self) -> bool:
                # The request line has arrived: from now on its headers and body share one deadline.
                self.deadline = time.monotonic() + gateway.request_deadline_s
                self.expects_continue = False
                stream = self.rfile
                self.rfile = reader = self._bounded()
                try:
                    if not super().parse_request():  # reads the headers (handle_expect_100 only notes it)
                        return False
                except TimeoutError:  # headers that never finish arriving
                    self._answer_framing(408, *FRAMING_ERRORS[408])
                    return False
                finally:
                    self.rfile = stream
                    self.connection.settimeout(gateway.read_timeout_s)
                problem = header_problem(reader.lines)
                if problem:  # refused as CloudFront refuses it, before anything reads the headers
                    self._answer_framing(400, "malformed_request", f"The request's headers are malformed: {problem}.")
                    return False
                expect = self.headers.get("Expect", "").strip().lower()
                if expect and expect != "100-continue":  # the only expectation HTTP/1.1 defines (RFC 9110 10.1.1)
                    self._answer_framing(417, *FRAMING_ERRORS[417])
                    return False
                if self.expects_continue:
                    return self._continue()
                return True

            def handle_expect_100(self) -> bool:
                self.expects_continue = True  # answered once the headers are checked (parse_request)
                return True

            def _continue(self) -> bool:
                """The interim 100 a client waits for before sending its body, unless the body it
                announces is already refused: a 413 then, and none of the body is read."""
                try:
                    if content_length(self.headers.get_all("Content-Length") or []) > API_GATEWAY_MAX_BODY:
                        self.close_connection = True
                        self._refuse("REQUEST_TOO_LARGE")
                        return False
                except FramingError as error:
                    self._answer_framing(error.status, error.code, error.message)
                    return False
                return super().handle_expect_100()

            def _bounded(self) -> Any:
                """The input stream, its reads bounded by the request's deadline."""
                return DeadlineReader(self.rfile, self.connection, gateway.read_timeout_s, self.deadline)

            def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
                try:
                    self._write(status, headers, body)
                except (TimeoutError, ConnectionError):
                    self.close_connection = True  # the client went away: nothing left to tell it

            def _read_body(self) -> bytes:
                try:
                    return self._read_bounded_body()
                finally:
                    self.connection.settimeout(gateway.read_timeout_s)

            def _read_bounded_body(self) -> bytes:
                if is_chunked(self.headers.get_all("Transfer-Encoding") or []):
                    self.close_connection = True  # with Content-Length too, it is ambiguous: do not reuse
                    return read_chunked(self._bounded(), API_GATEWAY_MAX_BODY)
                length = content_length(self.headers.get_all("Content-Length") or [])
                if length > API_GATEWAY_MAX_BODY:
                    raise FramingError(413, "payload_too_large", "")
                body = self._bounded().read(length) if length else b""
                if len(body) != length:
                    raise FramingError(400, "malformed_request", "The body ended before its Content-Length.")
                return body

            def _handle(self) -> None:
                split = urlsplit(self.path)
                try:
                    body = self._read_body()
                except FramingError as error:
                    self.close_connection = True
                    if error.status == 413:
                        self._refuse("REQUEST_TOO_LARGE")
                    else:
                        self._answer_framing(error.status, error.code, error.message)
                    return
                except TimeoutError:
                    self._answer_framing(408, *FRAMING_ERRORS[408])
                    return
                extra = gateway.extra_routes.get(split.path)
                if extra and self.command == "GET":
                    if gateway.authorizer and split.path not in gateway.open_paths:
                        route = Route("gateway", "GET", split.path)  # answered by the gateway itself
                        headers = list(self.headers.items())
                        event = build_event(
                            route, split.path, {}, "GET", headers, split.query, b"", self.client_address[0]
                        )
                        if not self._authorize(route, event):
                            return
                    status, payload = extra()
                    if isinstance(payload, Page):  # a console file, with its own headers (its CSP)
                        self._answer(status, {"Content-Type": payload.content_type, **payload.headers}, payload.body)
                        return
                    if isinstance(payload, str):  # a page (the Swagger UI)
                        self._answer(status, {"Content-Type": "text/html; charset=utf-8"}, payload.encode())
                        return
                    self._answer(status, {"Content-Type": "application/json"}, json.dumps(payload).encode())
                    return
                if self.command == "OPTIONS" and any(c.pattern.match(split.path) for c in gateway.routes):
                    self._answer(204, preflight_headers(dict(self.headers.items()), gateway.cors_origins), b"")
                    return  # a preflight: API Gateway answers it itself, for every route, without a key
                matched = gateway.match(self.command, split.path)
                if matched is None:  # API Gateway: "Missing Authentication Token", answered as route_not_found
                    self._refuse("MISSING_AUTHENTICATION_TOKEN", f"No route for {self.command} {split.path}.")
                    return
                route, params = matched
                event = build_event(
                    route,
                    split.path,
                    params,
                    self.command,
                    list(self.headers.items()),
                    split.query,
                    body,
                    self.client_address[0],
                )
                if gateway.authorizer and not self._authorize(route, event):
                    return
                if len(json.dumps(event)) > LAMBDA_MAX_EVENT:
                    self._error(
                        PayloadTooLarge(
                            "The request exceeds Lambda's 6 MB synchronous payload limit; "
                            "upload large images with a presigned URL instead."
                        )
                    )
                    return
                try:
                    result = gateway.call(route.function, event)
                except Exception:  # noqa: BLE001 - API Gateway answers 502 when the function fails
                    traceback.print_exc()
                    self._refuse("INTEGRATION_FAILURE", f"The {route.function} function failed.")
                    return
                self._write_proxy_response(result)

            def _authorize(self, route: Route, event: dict[str, Any]) -> bool:
                """Run the authorizer as API Gateway does; False when the request was refused."""
                headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
                if not headers.get("x-api-key") and not headers.get("authorization"):  # a key or a person's token
                    self._refuse("UNAUTHORIZED")
                    return False
                method_arn = f"{API_ARN}/{STAGE}/{route.method}{event['path']}"
                request = {
                    "type": "REQUEST",
                    "methodArn": method_arn,
                    **{k: event[k] for k in ("resource", "path", "httpMethod", "headers", "multiValueHeaders")},
                    **{k: event[k] for k in ("queryStringParameters", "pathParameters", "stageVariables")},
                    "requestContext": event["requestContext"],
                }
                assert gateway.authorizer is not None
                try:
                    policy = gateway.call(gateway.authorizer, request)
                except Exception as error:  # noqa: BLE001 - answered as API Gateway answers it
                    self._refuse("UNAUTHORIZED" if str(error) == "Unauthorized" else "AUTHORIZER_FAILURE")
                    return False
                if not allows(policy, method_arn):
                    self._refuse("ACCESS_DENIED")
                    return False
                event["requestContext"]["authorizer"] = {
                    "principalId": policy.get("principalId"),
                    **{k: v for k, v in (policy.get("context") or {}).items()},
                }
                return True

            def _write_proxy_response(self, result: dict[str, Any]) -> None:
                headers = dict(result.get("headers") or {})
                for name, values in (result.get("multiValueHeaders") or {}).items():
                    headers[name] = ", ".join(values)
                raw = result.get("body") or ""
                body = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode()
                self._answer(int(result.get("statusCode", 200)), headers, body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_TRACE = do_CONNECT = _handle

        server = _GatewayServer((host, port), RequestHandler)
        server.daemon_threads = True
        return server


def allows(policy: dict[str, Any], method_arn: str) -> bool:
    """Whether an authorizer's IAM policy allows this method ARN (an explicit Deny wins)."""
    statements = (policy.get("policyDocument") or {}).get("Statement") or []
    matched = [
        s["Effect"]
        for s in statements
        if s.get("Action") in ("execute-api:Invoke", ["execute-api:Invoke"])
        and any(fnmatch.fnmatchcase(method_arn, pattern) for pattern in _as_list(s.get("Resource")))
    ]
    return "Allow" in matched and "Deny" not in matched


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


class _GatewayServer(ThreadingHTTPServer):
    # socketserver's default backlog of 5 resets bursts of concurrent clients; API Gateway does not.
    request_queue_size = 128
