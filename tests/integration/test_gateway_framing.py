"""The local gateway's HTTP framing, over raw sockets: whatever a client sends, it gets an HTTP
answer in the platform's JSON error shape (or the function's answer), never an HTML page, a hang
or a dropped connection."""

from __future__ import annotations

import json
import select
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from local.gateway import Gateway
from local.http_framing import REQUEST_DEADLINE_S
from local.stack import LocalStack

HANG_GUARD_S = 60  # only so a broken gateway fails the test instead of hanging it


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def read_answer(sock: socket.socket, head: bool = False, stream: Any = None) -> Answer:
    """One HTTP/1.1 response from the socket (Content-Length framed, as the gateway always frames);
    pass the same `stream` to read answers that may arrive together."""
    stream = stream or sock.makefile("rb")
    status_line = stream.readline()
    assert status_line.startswith(b"HTTP/1.1 "), f"not an HTTP answer: {status_line!r}"
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = b"" if head else stream.read(int(headers["content-length"]))
    return Answer(int(status_line.split()[1]), headers, body)


def exchange(url: str, raw: bytes, head: bool = False) -> Answer:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=HANG_GUARD_S) as sock:
        sock.sendall(raw)
        return read_answer(sock, head)


def assert_error(answer: Answer, status: int, code: str) -> None:
    assert answer.status == status, answer
    assert answer.headers["content-type"] == "application/json"
    error = answer.json()["error"]
    assert error["code"] == code and error["message"] and error["request_id"]


@pytest.fixture(scope="module")
def echo_gateway() -> Iterator[str]:
    """A gateway whose functions answer with what they received, with a short read timeout and a
    short deadline for a whole request."""

    def call(function: str, event: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps({"function": function, "body": event["body"], "base64": event["isBase64Encoded"]})
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": body}

    server = Gateway(call, log_requests=False, read_timeout_s=0.5, request_deadline_s=1.5).serve("127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def post(path: str, headers: str, body: bytes = b"") -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{headers}\r\n".encode() + body


@pytest.mark.parametrize("length", ["-1", "abc", "1.5", "0x10", "", "12, 13"])
def test_a_bad_content_length_is_a_400(echo_gateway: str, length: str) -> None:
    # Given a request whose Content-Length is negative, not a number or two numbers
    # When it is sent
    answer = exchange(echo_gateway, post("/uploads", f"Content-Length: {length}\r\n", b"{}"))
    # Then it is refused with a 400 in the platform's shape, and the connection is closed
    assert_error(answer, 400, "invalid_content_length")
    assert answer.headers["connection"] == "close"


def test_two_different_content_lengths_are_a_400(echo_gateway: str) -> None:
    # Given a request with two Content-Length headers that disagree (a smuggling attempt)
    answer = exchange(echo_gateway, post("/uploads", "Content-Length: 2\r\nContent-Length: 3\r\n", b"{}"))
    # Then it is refused
    assert_error(answer, 400, "invalid_content_length")


def test_a_body_that_stops_arriving_times_out_with_a_408(echo_gateway: str) -> None:
    # Given a request announcing 100 bytes that sends 10 and then nothing (the gateway's read timeout
    # is 0.5 s here)
    # When the client waits
    answer = exchange(echo_gateway, post("/uploads", "Content-Length: 100\r\n", b"{" * 10))
    # Then the gateway answers 408 in JSON and closes, rather than waiting for ever
    assert_error(answer, 408, "request_timeout")
    assert answer.headers["connection"] == "close"


def trickle(url: str, raw: bytes, byte: bytes, every_s: float) -> Answer:
    """Send `raw`, then `byte` every `every_s` until the gateway answers (at most 1,000 times)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=HANG_GUARD_S) as sock:
        sock.sendall(raw)
        for _ in range(1_000):
            if select.select([sock], [], [], every_s)[0]:
                break
            try:
                sock.sendall(byte)
            except OSError:  # the gateway closed the connection: its answer is waiting
                break
        return read_answer(sock)


def test_the_production_request_deadline_is_api_gateways() -> None:
    # Given the gateway's default, then it is API Gateway's 29 s for a whole request
    assert REQUEST_DEADLINE_S == 29.0
    assert Gateway(lambda function, event: {}).request_deadline_s == REQUEST_DEADLINE_S


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_trickled_inside_the_read_timeout_is_cut_off_at_the_deadline(echo_gateway: str, framing: str) -> None:
    # Given a request whose body arrives one byte at a time, each byte well inside the 0.5 s read
    # timeout, so only the whole-request deadline (1.5 s here, 29 s in production) can stop it
    if framing == "chunked":
        head, byte = post("/uploads", "Transfer-Encoding: chunked\r\n", b"3E8\r\n"), b"{"
    else:
        head, byte = post("/uploads", "Content-Length: 1000\r\n"), b"{"
    # When it is trickled, a byte every 0.2 s (1,000 bytes would take 200 s)
    answer = trickle(echo_gateway, head, byte, 0.2)
    # Then the gateway answers 408 in JSON and closes, before the body is complete
    assert_error(answer, 408, "request_timeout")
    assert answer.headers["connection"] == "close"


def test_headers_trickled_inside_the_read_timeout_are_cut_off_at_the_deadline(echo_gateway: str) -> None:
    # Given a request line, then header bytes trickled a byte every 0.2 s (never ending the block)
    answer = trickle(echo_gateway, b"POST /uploads HTTP/1.1\r\nX-Long: ", b"a", 0.2)
    # Then a 408 in JSON, at the deadline
    assert_error(answer, 408, "request_timeout")


@pytest.mark.parametrize(
    ("coding", "status", "code"),
    [
        ("xchunked", 501, "unsupported_transfer_encoding"),
        ("gzip", 501, "unsupported_transfer_encoding"),
        ("gzip, chunked", 501, "unsupported_transfer_encoding"),
        ("identity", 501, "unsupported_transfer_encoding"),
        ("chunked, chunked", 400, "malformed_request"),
        ("", 400, "malformed_request"),
    ],
    ids=["xchunked", "gzip", "gzip-then-chunked", "identity", "chunked-twice", "empty"],
)
def test_a_transfer_coding_other_than_chunked_is_refused_not_read_as_chunked(
    echo_gateway: str, coding: str, status: int, code: str
) -> None:
    # Given a body that is validly chunked, under a Transfer-Encoding that is not exactly `chunked`
    chunked = b"2\r\n{}\r\n0\r\n\r\n"
    # When it is sent
    answer = exchange(echo_gateway, post("/uploads", f"Transfer-Encoding: {coding}\r\n", chunked))
    # Then it is refused (501 for a coding the gateway does not understand, RFC 9112 6.1), never decoded
    assert_error(answer, status, code)
    assert answer.headers["connection"] == "close"


def test_headers_that_stop_arriving_time_out_with_a_408(echo_gateway: str) -> None:
    # Given a request line and half a header block, then silence
    answer = exchange(echo_gateway, b"POST /uploads HTTP/1.1\r\nHost: x\r\n")
    # Then a 408 in JSON
    assert_error(answer, 408, "request_timeout")


def test_a_chunked_body_is_decoded(echo_gateway: str) -> None:
    # Given a JSON body sent chunked, with a chunk extension and a trailer
    chunked = b'5;ext=1\r\n{"a":\r\n3\r\n 1}\r\n0\r\nX-Trailer: t\r\n\r\n'
    # When it is sent
    answer = exchange(echo_gateway, post("/uploads", "Transfer-Encoding: chunked\r\n", chunked))
    # Then the function receives the whole body, decoded
    assert answer.status == 200, answer
    assert answer.json() == {"function": "dedupe", "body": '{"a": 1}', "base64": False}


@pytest.mark.parametrize(
    "chunked",
    [b"zz\r\n{}\r\n0\r\n\r\n", b"-2\r\n{}\r\n0\r\n\r\n", b"5\r\n{}\r\n0\r\n\r\n", b"2\r\n{}XX0\r\n\r\n"],
    ids=["not-hex", "negative", "short-chunk", "unterminated-chunk"],
)
def test_a_malformed_chunked_body_is_a_400(echo_gateway: str, chunked: bytes) -> None:
    # Given a chunked body whose framing is wrong
    answer = exchange(echo_gateway, post("/uploads", "Transfer-Encoding: chunked\r\n", chunked))
    # Then a 400 in JSON (a chunk that never completes is a 408: the timeout answers it)
    assert answer.status in (400, 408), answer
    assert_error(answer, answer.status, "malformed_request" if answer.status == 400 else "request_timeout")


def test_a_chunked_body_over_10_mb_is_a_413(echo_gateway: str) -> None:
    # Given a chunk announcing more than API Gateway's 10 MB
    answer = exchange(echo_gateway, post("/uploads", "Transfer-Encoding: chunked\r\n", b"A00001\r\n"))
    # Then API Gateway's own refusal for a large body
    assert_error(answer, 413, "payload_too_large")


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND", "DELETE"])
def test_methods_no_route_has_are_route_not_found(echo_gateway: str, method: str) -> None:
    # Given a method none of the API's routes has (OPTIONS is a CORS preflight: test_cors.py)
    answer = exchange(echo_gateway, f"{method} /uploads HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
    # Then API Gateway's answer for it: no such route, in JSON
    assert_error(answer, 404, "route_not_found")


def test_head_gets_the_headers_of_the_json_answer_and_no_body(echo_gateway: str) -> None:
    # Given a HEAD request, then a GET on the same connection
    host, port = echo_gateway.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=HANG_GUARD_S) as sock:
        sock.sendall(b"HEAD /uploads HTTP/1.1\r\nHost: x\r\n\r\n")
        head = read_answer(sock, head=True)
        sock.sendall(b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")
        after = read_answer(sock)
    # Then HEAD is answered 404 with JSON headers and no body, and the connection goes on
    assert head.status == 404 and head.headers["content-type"] == "application/json"
    assert int(head.headers["content-length"]) > 0
    assert_error(after, 404, "route_not_found")


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"GARBAGE\r\n\r\n", 400, "malformed_request"),
        (b"GET / HTTP/9.9\r\n\r\n", 505, "http_version_not_supported"),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414, "uri_too_long"),
        (b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 200 + b"\r\n", 431, "headers_too_large"),
    ],
    ids=["bad-request-line", "bad-version", "long-uri", "too-many-headers"],
)
def test_what_the_http_parser_refuses_is_json(echo_gateway: str, raw: bytes, status: int, code: str) -> None:
    # Given a request the HTTP parser cannot accept
    # Then the refusal is JSON, not the standard library's HTML page
    assert_error(exchange(echo_gateway, raw), status, code)


def test_a_chunked_request_reaches_the_real_handler(local_stack: LocalStack) -> None:
    # Given the local stack, and a POST /uploads whose JSON body is sent chunked
    payload = json.dumps({"website": "alya", "filename": "ring.png", "content_type": "image/png"}).encode()
    chunked = b"".join(f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (payload[:10], payload[10:]))
    # When it is sent
    answer = exchange(local_stack.url, post("/uploads", "Transfer-Encoding: chunked\r\n", chunked + b"0\r\n\r\n"))
    # Then the function got the whole body: a presigned upload
    assert answer.status == 200, answer
    assert answer.json()["key"].startswith("incoming/")


def test_expect_100_continue_gets_its_interim_answer_then_the_body_is_read(echo_gateway: str) -> None:
    # Given a client that sends its headers with Expect: 100-continue and waits before the body
    host, port = echo_gateway.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=HANG_GUARD_S) as sock:
        sock.sendall(post("/uploads", "Content-Length: 8\r\nExpect: 100-continue\r\n"))
        stream = sock.makefile("rb")
        interim = stream.readline()
        assert stream.readline() == b"\r\n"
        # When it has been told to continue and sends the body
        sock.sendall(b'{"a": 1}')
        answer = read_answer(sock, stream=stream)
    # Then the interim answer was 100 and the function got the whole body
    assert interim.startswith(b"HTTP/1.1 100"), interim
    assert answer.status == 200 and answer.json()["body"] == '{"a": 1}'


def test_an_expectation_other_than_100_continue_is_a_417(echo_gateway: str) -> None:
    # Given a request expecting something HTTP/1.1 does not define
    answer = exchange(echo_gateway, post("/uploads", "Content-Length: 2\r\nExpect: 200-ok\r\n", b"{}"))
    # Then 417 in JSON
    assert_error(answer, 417, "expectation_failed")


def test_content_length_and_chunked_together_read_chunked_and_close(echo_gateway: str) -> None:
    # Given a request with both framings (RFC 9112 6.3: chunked wins; the message is suspect)
    chunked = b'8\r\n{"a": 1}\r\n0\r\n\r\n'
    answer = exchange(echo_gateway, post("/uploads", "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", chunked))
    # Then the body is the chunked one, and the connection is not reused
    assert answer.status == 200 and answer.json()["body"] == '{"a": 1}'
    assert answer.headers["connection"] == "close"


def test_a_body_longer_than_its_content_length_is_not_taken_as_a_second_request(echo_gateway: str) -> None:
    # Given a body with a second request smuggled after its Content-Length
    smuggled = b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n"
    host, port = echo_gateway.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=HANG_GUARD_S) as sock:
        sock.sendall(post("/uploads", "Content-Length: 2\r\n", b"{}" + smuggled))
        stream = sock.makefile("rb")
        first = read_answer(sock, stream=stream)
        second = read_answer(sock, stream=stream)
    # Then the first request got exactly its 2 bytes, and what followed was read as the next request
    assert first.status == 200 and first.json()["body"] == "{}"
    assert_error(second, 404, "route_not_found")
