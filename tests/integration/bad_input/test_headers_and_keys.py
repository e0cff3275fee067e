"""The bad-input corpus over raw HTTP: header lines (the request-smuggling shapes API Gateway's edge
refuses), `Expect: 100-continue` with a body already too large, and API keys through the
authorizer as deployed (empty, spaced, long, non-ASCII, sent twice, under other header names).
Requests are written byte for byte on a socket (a client library would fix or refuse them); each is
answered with its status and stable code in the platform's error shape, and writes nothing.

Cases marked accepted show the line drawn: what HTTP allows (a header name in any case, a tab or
obs-text in a value, whitespace around a value, the same key twice) reaches the route, here a read
of an unknown job (404 `job_not_found`), which writes nothing either.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from listing_vision.api.clients import ApiClients
from listing_vision.config import get_settings
from local.stack import LocalStack
from tests.integration.bad_input.image_and_form_cases import JOB
from tests.stores import Settled, changed

UPLOAD = json.dumps({"website": "alya", "content_type": "image/png"}).encode()
JOB_READ = (404, "job_not_found")  # an accepted request: it reached the route
# {"alg": "none"} . {"cognito:groups": ["alya"], "token_use": "id"} . (no signature)
UNSIGNED_JWT = b"eyJhbGciOiJub25lIn0.eyJjb2duaXRvOmdyb3VwcyI6WyJhbHlhIl0sInRva2VuX3VzZSI6ImlkIn0."


def request(headers: list[bytes], method: str = "POST", path: str = "/uploads", body: bytes = UPLOAD) -> bytes:
    """A request with these header lines (each as sent, without its CRLF), Host and framing added."""
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: corpus", *headers]
    if method == "POST":
        lines += [b"Content-Type: application/json", f"Content-Length: {len(body)}".encode()]
    return b"\r\n".join([*lines, b"Connection: close", b"", b""]) + (body if method == "POST" else b"")


# (case, raw request, status, code): a POST /uploads that would store a grant if it were accepted.
HEADER_LINES: list[tuple[str, bytes, int, str]] = [
    ("space-before-colon", request([b"X-Note : a"]), 400, "malformed_request"),
    ("tab-before-colon", request([b"X-Note\t: a"]), 400, "malformed_request"),
    (
        "space-before-colon-content-type",
        request([], body=UPLOAD).replace(b"Content-Type:", b"Content-Type :"),
        400,
        "malformed_request",
    ),
    ("line-without-colon", request([b"X-Note this line has no colon"]), 400, "malformed_request"),
    ("empty-name", request([b": a"]), 400, "malformed_request"),
    ("name-not-a-token", request([b"X(Note): a"]), 400, "malformed_request"),
    ("obs-fold-space", request([b"X-Note: a", b"  continued"]), 400, "malformed_request"),
    ("obs-fold-tab", request([b"X-Note: a", b"\tcontinued"]), 400, "malformed_request"),
    ("obs-fold-content-length", request([b"X-Note: a", b" Content-Length: 0"]), 400, "malformed_request"),
    ("cr-in-value", request([b"X-Note: a\rTransfer-Encoding: chunked"]), 400, "malformed_request"),
    ("bare-lf-line-end", request([b"X-Note: a\nTransfer-Encoding: chunked"]), 400, "malformed_request"),
    ("nul-in-value", request([b"X-Note: a\x00b"]), 400, "malformed_request"),
    ("del-in-value", request([b"X-Note: a\x7fb"]), 400, "malformed_request"),
    ("escape-in-value", request([b"X-Note: a\x1b[31mb"]), 400, "malformed_request"),
    # 100-continue for a body that is already refused: 413 without the interim 100 (none of it read)
    (
        "expect-100-over-10-mb",
        request([b"Expect: 100-continue"], body=b"").replace(b"Content-Length: 0", b"Content-Length: 20000000"),
        413,
        "payload_too_large",
    ),
    (
        "expect-100-conflicting-lengths",
        request([b"Expect: 100-continue", b"Content-Length: 7"]),
        400,
        "invalid_content_length",
    ),
    ("expect-100-with-malformed-header", request([b"Expect: 100-continue", b"X-Note : a"]), 400, "malformed_request"),
    # Accepted (RFC 9110 5.5): a tab inside a value, and obs-text (bytes over 0x7f) in one.
    ("tab-in-value-accepted", request([b"X-Note: a\tb"], "GET", f"/jobs/{JOB}"), *JOB_READ),
    ("obs-text-in-value-accepted", request([b"X-Note: caf\xe9"], "GET", f"/jobs/{JOB}"), *JOB_READ),
]


def send(url: str, raw: bytes) -> tuple[list[int], dict[str, Any]]:
    """Every status line the server answered with (an interim 100 first, if any) and the final JSON."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        answer = b""
        try:  # a refusal may come, and the connection close, before all of the request was sent
            connection.sendall(raw)
            while chunk := connection.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    statuses = [int(line.split()[1]) for line in answer.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]
    return statuses, json.loads(answer.rpartition(b"\r\n\r\n")[2])


@pytest.fixture(scope="module")
def store_reads(local_stack: LocalStack) -> Settled:
    return Settled(local_stack)


@pytest.fixture
def settled(store_reads: Settled, request: pytest.FixtureRequest) -> Settled:
    return store_reads.for_test(request.function)


@pytest.mark.parametrize(("raw", "status", "code"), [c[1:] for c in HEADER_LINES], ids=[c[0] for c in HEADER_LINES])
def test_malformed_header_lines_are_refused_before_anything_reads_them(
    local_stack: LocalStack, settled: Settled, raw: bytes, status: int, code: str
) -> None:
    # Given every store as it is
    before = settled.before()
    # When the request is written on a socket as is
    statuses, answer = send(local_stack.url, raw)
    # Then it gets one answer (no interim 100 before a refusal), with its status and stable code
    assert statuses == [status], (statuses, answer)
    assert answer["error"]["code"] == code and answer["error"]["message"], answer
    # And nothing was written
    assert changed(before, settled.after()) == []


@pytest.fixture(scope="module")
def keyed(local_stack: LocalStack) -> Iterator[tuple[str, str, str]]:
    """A gateway running the authorizer (as LOCAL_AUTH=1 does) and two clients' keys: (url, alya, blysk)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("API_AUTH", "api_keys")
        get_settings.cache_clear()
        clients = ApiClients()
        alya = clients.create(f"corpus-alya-{id(env)}", ("alya",))[0]
        blysk = clients.create(f"corpus-blysk-{id(env)}", ("blysk",))[0]
        server = local_stack.api_gateway(auth=True).serve("127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield f"http://127.0.0.1:{server.server_address[1]}", alya, blysk
        server.shutdown()
        server.server_close()
    get_settings.cache_clear()


def key_lines(alya: str, blysk: str) -> list[tuple[str, list[bytes], str, int, str]]:
    """(case, header lines, path, status, code) of a job read under each kind of key."""
    job = f"/jobs/{JOB}"
    a, b = alya.encode(), blysk.encode()
    return [
        ("no-key", [], job, 401, "unauthorized"),
        ("empty-key", [b"x-api-key:"], job, 401, "unauthorized"),
        ("blank-key", [b"x-api-key:  \t "], job, 401, "unauthorized"),
        ("key-with-inner-space", [b"x-api-key: " + a[:10] + b" " + a[10:]], job, 401, "unauthorized"),
        ("key-upper-cased", [b"x-api-key: " + a.upper()], job, 401, "unauthorized"),  # keys are case-sensitive
        ("key-prefix", [b"x-api-key: " + a[:-1]], job, 401, "unauthorized"),
        ("key-8000-chars", [b"x-api-key: " + a + b"x" * 8000], job, 401, "unauthorized"),
        ("key-over-header-limit", [b"x-api-key: " + b"k" * 70_000], job, 431, "headers_too_large"),
        ("key-non-ascii-utf8", [b"x-api-key: " + a + "é".encode()], job, 401, "unauthorized"),
        ("key-non-ascii-latin1", [b"x-api-key: " + a + b"\xe9"], job, 401, "unauthorized"),
        (
            "key-fullwidth",
            [b"x-api-key: " + "".join(chr(ord(c) + 0xFEE0) for c in alya[:8]).encode() + a[8:]],
            job,
            401,
            "unauthorized",
        ),
        ("key-with-nul", [b"x-api-key: " + a + b"\x00"], job, 400, "malformed_request"),
        ("two-different-keys", [b"x-api-key: " + a, b"x-api-key: " + b], job, 401, "unauthorized"),
        ("two-keys-header-names-in-two-cases", [b"X-Api-Key: " + a, b"x-api-key: " + b], job, 401, "unauthorized"),
        ("key-in-query-string", [], f"{job}?x-api-key={alya}", 401, "unauthorized"),
        ("key-as-bearer-token", [b"Authorization: Bearer " + a], job, 401, "unauthorized"),
        ("key-under-underscored-name", [b"x_api_key: " + a], job, 401, "unauthorized"),
        # A person's token (Authorization: Bearer) where no user pool is configured, or not a token at all
        ("bearer-empty", [b"Authorization: Bearer"], job, 401, "unauthorized"),
        ("bearer-unsigned-jwt", [b"Authorization: Bearer " + UNSIGNED_JWT], job, 401, "unauthorized"),
        ("authorization-basic", [b"Authorization: Basic YWx5YTpwdw=="], job, 401, "unauthorized"),
        (
            "two-authorization-headers",
            [b"Authorization: Bearer x.y.z", b"Authorization: Bearer " + a],
            job,
            401,
            "unauthorized",
        ),
        # Accepted: header names are case-insensitive, whitespace around a value is not part of it
        # (RFC 9110 5.1, 5.5), and the same key twice names one client.
        ("header-name-upper-case-accepted", [b"X-API-KEY: " + a], job, *JOB_READ),
        ("header-name-lower-case-accepted", [b"x-api-key: " + b], job, *JOB_READ),
        ("key-between-spaces-and-tabs-accepted", [b"x-api-key: \t " + a + b" \t"], job, *JOB_READ),
        ("same-key-twice-accepted", [b"x-api-key: " + a, b"X-Api-Key: " + a], job, *JOB_READ),
        (
            "key-with-a-bearer-token-accepted-key-wins",
            [b"x-api-key: " + a, b"Authorization: Bearer x.y.z"],
            job,
            *JOB_READ,
        ),
    ]


KEY_CASES = [case[0] for case in key_lines("k" * 40, "l" * 40)]


@pytest.mark.parametrize("case", KEY_CASES)
def test_api_keys_are_read_strictly(keyed: tuple[str, str, str], settled: Settled, case: str) -> None:
    url, alya, blysk = keyed
    lines, path, status, code = next(c[1:] for c in key_lines(alya, blysk) if c[0] == case)
    # Given every store as it is
    before = settled.before()
    # When a job is read with these header lines
    statuses, answer = send(url, request(lines, "GET", path))
    # Then the key is refused (or, for an accepted case, the route answers), in the one error shape
    assert statuses == [status], (statuses, answer)
    assert answer["error"]["code"] == code and answer["error"]["message"], answer
    # And nothing was written
    assert changed(before, settled.after()) == []


def test_the_raw_corpus_is_large() -> None:
    # Given the raw cases, then there are at least 40 of them, each named once
    names = [case[0] for case in HEADER_LINES] + KEY_CASES
    assert len(names) >= 40 and len(set(names)) == len(names)
