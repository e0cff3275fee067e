"""Reading a request's framing as API Gateway's edge would: Content-Length, chunked bodies, deadlines.

Framing is answered in the same JSON shape, never with the standard library's HTML pages or a
dropped connection: a negative, non-numeric or repeated Content-Length is a 400
`invalid_content_length`; a chunked body (`Transfer-Encoding: chunked`, which API Gateway accepts)
is decoded, and a malformed one is a 400 `malformed_request`; any other transfer coding (`gzip`,
`xchunked`, ...) is a 501 `unsupported_transfer_encoding` (RFC 9112 6.1: a coding the server does
not understand), never read as chunked; headers and body must arrive within `request_deadline_s`
in all (29 s, API Gateway's limit) and each read within `read_timeout_s`, or the answer is a 408
`request_timeout` and the connection is closed (a body trickled a byte at a time is cut off);
`Expect: 100-continue` gets its interim 100 (unless the Content-Length it announces is already over
10 MB: a 413 before any of the body is read) and any other expectation a 417 `expectation_failed`;
header lines are read as API Gateway's edge (CloudFront) reads them, which refuses what HTTP/1.1
no longer allows and what request smuggling is built from (RFC 9112 5, 5.2; RFC 9110 5.5): a
header line without a colon, whitespace before the colon (or any name that is not a token), an
obs-fold continuation line, a line ending in a bare LF, and CR, NUL or another control character
in a value are a 400 `malformed_request`, never joined, split or passed on;
anything else the HTTP parser refuses (a bad request line, headers too large, an unknown method)
gets its status with a JSON body (FRAMING_ERRORS).
"""

from __future__ import annotations

import re
import time
from typing import Any

READ_TIMEOUT_S = 30.0  # each read of a request's headers and body must return within this
REQUEST_DEADLINE_S = 29.0  # all of a request's headers and body must arrive within this (API Gateway's 29 s)
# Codes of the refusals made while reading a request, before any route is known (on AWS the edge
# makes these; here they get the platform's error shape like everything else).
FRAMING_ERRORS: dict[int, tuple[str, str]] = {
    400: ("malformed_request", "The request is not valid HTTP."),
    408: ("request_timeout", "The request was not received in time."),
    411: ("length_required", "A body needs a Content-Length or chunked transfer encoding."),
    414: ("uri_too_long", "The request URI is too long."),
    417: ("expectation_failed", "The Expect header is not supported."),
    431: ("headers_too_large", "The request headers are too large."),
    501: ("unsupported_transfer_encoding", "Only the chunked transfer coding is supported."),
    505: ("http_version_not_supported", "The HTTP version is not supported."),
}


CHUNK_SIZE = re.compile(rb"[0-9a-fA-F]{1,16}")
FIELD_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # a token (RFC 9110 5.6.2)
CONTROL_IN_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # HTAB is allowed, bytes over 0x7f are obs-text


def header_problem(lines: list[bytes]) -> str | None:
    """What makes a request's raw header lines (as read, each with its line ending; the blank line
    that ends them may be included) unacceptable, or None."""
    for line in lines:
        if line in (b"\r\n", b"\n"):
            break
        if not line.endswith(b"\r\n"):
            return "a header line ends without CRLF"
        content = line[:-2]
        if content[:1] in (b" ", b"\t"):
            return "a header line is folded onto the one before it (obs-fold)"
        name, colon, value = content.partition(b":")
        if not colon:
            return "a header line has no colon"
        if not FIELD_NAME.fullmatch(name):
            return f"not a header name: {name[:40]!r} (no whitespace before the colon)"
        if CONTROL_IN_VALUE.search(value):
            return f"the value of {name[:40].decode('ascii')} holds a control character (CR, LF, NUL)"
    return None


class FramingError(Exception):
    """A request whose body cannot be read as sent: answered with `status` and `code`, then closed."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def content_length(values: list[str]) -> int:
    """The one Content-Length of a request (0 without one); a negative, non-numeric or conflicting
    value is refused, as HTTP requires (RFC 9110 8.6)."""
    distinct = {value.strip() for value in values}
    if not distinct:
        return 0
    if len(distinct) > 1:
        raise FramingError(400, "invalid_content_length", "The request has conflicting Content-Length headers.")
    value = distinct.pop()
    if not value.isdigit() or not value.isascii():
        raise FramingError(400, "invalid_content_length", f"Content-Length must be a non-negative integer: {value!r}.")
    return int(value)


def is_chunked(values: list[str]) -> bool:
    """Whether the Transfer-Encoding headers (all of them) frame the body as chunked. Chunked alone
    is the one coding understood; any other (`gzip`, `xchunked`, `identity`) is a 501, as RFC 9112
    6.1 asks of a coding the server does not understand, and chunked applied twice (or an empty
    list of codings) a 400: a body is never read as chunked because its coding merely contains it."""
    if not values:
        return False
    codings = [coding.split(";", 1)[0].strip().lower() for value in values for coding in value.split(",")]
    unknown = sorted({coding for coding in codings if coding and coding != "chunked"})
    if unknown:
        raise FramingError(
            501, "unsupported_transfer_encoding", f"Unsupported transfer coding {unknown[0][:40]!r}: send chunked."
        )
    if codings != ["chunked"]:
        raise FramingError(400, "malformed_request", "Transfer-Encoding must name chunked exactly once.")
    return True


class DeadlineReader:
    """A request's input stream, every read bounded by the per-read timeout and by what is left of
    the request's deadline: the socket's own timeout bounds one read only, so a peer trickling a byte
    just inside it would otherwise hold the request open for ever. A read past the deadline raises
    TimeoutError. Reads never take more bytes than asked for (a pipelined request stays unread)."""

    def __init__(self, stream: Any, connection: Any, read_timeout_s: float, deadline: float):
        self.stream, self.connection = stream, connection
        self.read_timeout_s, self.deadline = read_timeout_s, deadline
        self.lines: list[bytes] = []  # every line read, as read (the headers, for header_problem)

    def _available(self) -> bytes:
        """What is buffered, after at most one read from the socket (b"" at the end of the stream)."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request's deadline passed")
        self.connection.settimeout(min(self.read_timeout_s, left))
        return bytes(self.stream.peek(1))

    def read(self, size: int) -> bytes:
        out = bytearray()
        while len(out) < size and (available := self._available()):
            out += self.stream.read(min(len(available), size - len(out)))
        return bytes(out)

    def readline(self, limit: int = -1) -> bytes:
        line = bytearray()
        while (limit < 0 or len(line) < limit) and (available := self._available()):
            room = len(available) if limit < 0 else min(len(available), limit - len(line))
            end = available.find(b"\n", 0, room)
            line += self.stream.read(end + 1 if end >= 0 else room)
            if end >= 0:
                break
        self.lines.append(bytes(line))
        return bytes(line)


def read_chunked(stream: Any, limit: int) -> bytes:
    """A chunked body (RFC 9112 7.1), decoded; trailers are read and dropped. Over `limit` bytes is
    refused as API Gateway refuses a large body; a malformed chunk is a 400."""
    body = bytearray()
    while True:
        line = stream.readline(1026)
        if not line.endswith(b"\n"):
            raise FramingError(400, "malformed_request", "A chunk size line is missing or too long.")
        size_text = line.split(b";", 1)[0].strip()
        if not CHUNK_SIZE.fullmatch(size_text):
            raise FramingError(400, "malformed_request", f"Not a chunk size: {size_text[:20]!r}.")
        size = int(size_text, 16)
        if size == 0:
            while True:  # trailers, up to the empty line
                trailer = stream.readline(8192)
                if not trailer.endswith(b"\n"):
                    raise FramingError(400, "malformed_request", "The chunked body ends without its last line.")
                if trailer in (b"\r\n", b"\n"):
                    return bytes(body)
        if len(body) + size > limit:
            raise FramingError(413, "payload_too_large", "The request body exceeds API Gateway's 10 MB.")
        chunk = stream.read(size)
        if len(chunk) != size or stream.readline(3) not in (b"\r\n", b"\n"):
            raise FramingError(400, "malformed_request", "A chunk is shorter than its size or not terminated.")
        body += chunk
