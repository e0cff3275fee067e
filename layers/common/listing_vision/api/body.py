"""The one request-body parser of every API route.

A route takes either JSON (a pydantic model) or multipart/form-data (a file and form fields); which
one is read from the route's own declaration (`expected_media_type`). The body must come in that
media type, or the request is refused before anything runs:

- another media type (multipart to a JSON route, JSON or a URL-encoded form to a file route):
  415 `unsupported_content_type`;
- JSON that does not parse (bad syntax, not UTF-8, NaN/Infinity, nested deeper than
  `MAX_JSON_DEPTH`): 400 `malformed_json`;
- multipart without a boundary, one the body does not use or close, or parts that cannot be read:
  400 `malformed_multipart`;
- a JSON body that is not an object, a multipart field sent twice or not one of the route's (a
  misspelt `website` would otherwise leave the default storefront in force), a part with a filename
  (a file) for a field that takes text (`website`, `type`: a file is not a storefront), or a JSON
  object naming a key twice (`{"website": "alya", "website": "blysk"}`: which is meant? parsers disagree):
  400 `invalid_request`.

A part's Content-Disposition is read as RFC 7578 and RFC 6266 say: parameters quoted or not, in
any order, and `filename*=UTF-8''...` (RFC 5987, percent-encoded UTF-8) preferred to `filename`.

What comes back goes to Powertools' request validation (pydantic), as its own parser's output would.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import Counter
from collections.abc import Sequence
from email.message import Message
from typing import Any, Literal

from aws_lambda_powertools.event_handler.openapi.params import File, UploadFile

from listing_vision.errors import InvalidRequest, UnsupportedMedia

MediaType = Literal["application/json", "multipart/form-data"]
JSON: MediaType = "application/json"
MULTIPART: MediaType = "multipart/form-data"
MAX_JSON_DEPTH = 32  # no request of this API nests deeper than 3; anything past this is refused


def expected_media_type(body_params: Sequence[Any]) -> MediaType:
    """multipart/form-data for a route with File or Form parameters, JSON otherwise."""
    kinds = {getattr(param.field_info, "media_type", JSON) for param in body_params}
    return MULTIPART if kinds - {JSON} else JSON


def file_fields(body_params: Sequence[Any]) -> frozenset[str]:
    """The names of a route's File parameters: the only fields a multipart part with a filename may fill."""
    return frozenset(param.alias for param in body_params if isinstance(param.field_info, File))


def form_fields(body_params: Sequence[Any]) -> frozenset[str]:
    """The names of all a route's body parameters: a multipart part naming another is refused."""
    return frozenset(param.alias for param in body_params)


def parse_body(
    headers: dict[str, str],
    body: str | None,
    is_base64: bool,
    expected: MediaType,
    files: frozenset[str] = frozenset(),
    fields: frozenset[str] | None = None,
) -> Any:
    """The parsed body of a request whose route expects `expected` (`files`: its file fields; `fields`:
    all its fields, when a multipart part naming another is to be refused), or the domain error."""
    media_type, params = _content_type(headers)
    raw = _raw_bytes(body, is_base64)
    if expected == JSON:
        # No content type with an empty body is a request without a body: validation names the fields.
        if media_type not in ("application/json", "") and not (
            media_type.startswith("application/") and media_type.endswith("+json")
        ):
            raise _unsupported(media_type, expected)
        value = parse_json(raw)
        if value is not None and not isinstance(value, dict):
            raise InvalidRequest(
                f"The body must be a JSON object, not {type(value).__name__}.",
                details={"fields": [{"field": "body", "problem": "Input should be a JSON object"}]},
            )
        return value
    if media_type != MULTIPART:
        raise _unsupported(media_type, expected)
    boundary = params.get("boundary", "")
    if not boundary or len(boundary) > 70:  # RFC 2046: 1 to 70 characters
        raise InvalidRequest(
            "multipart/form-data needs a boundary parameter (1 to 70 characters) in its Content-Type.",
            code="malformed_multipart",
        )
    if f"--{boundary}".encode() not in raw or f"--{boundary}--".encode() not in raw:
        raise InvalidRequest(
            "The multipart body does not use its boundary, or does not close it.", code="malformed_multipart"
        )
    try:
        parts = parse_multipart(raw, boundary)
    except (ValueError, IndexError) as error:  # UnicodeDecodeError is a ValueError
        raise InvalidRequest("The multipart body cannot be read.", code="malformed_multipart") from error
    repeated = sorted(name for name, value in parts.items() if isinstance(value, list))
    if repeated:  # every field of these routes is single; which of two files would be meant?
        raise InvalidRequest(
            f"Invalid request: {', '.join(repeated)} sent more than once.",
            details={"fields": [{"field": name, "problem": "Sent more than once"} for name in repeated]},
        )
    # A misspelt field (`websit=blysk`) would be dropped and its default used: the photo stored in
    # another storefront. Refused, as JSON bodies refuse unknown keys.
    unknown = sorted(set(parts) - fields) if fields is not None else []
    if unknown:
        raise InvalidRequest(
            f"Invalid request: unknown field {unknown[0][:40]!r}; this route takes {', '.join(sorted(fields or ()))}.",
            details={"fields": [{"field": n[:100], "problem": "Extra inputs are not permitted"} for n in unknown[:20]]},
        )
    # A file where text is expected would reach the handler as an UploadFile (Powertools does not
    # validate it against the field's type): refused here, naming the field, never echoing the file.
    misplaced = sorted(name for name, value in parts.items() if isinstance(value, UploadFile) and name not in files)
    if misplaced:
        raise InvalidRequest(
            f"Invalid request: {', '.join(n[:40] for n in misplaced[:5])} must be a text field, not a file.",
            details={"fields": [{"field": n[:100], "problem": "Sent as a file; send text"} for n in misplaced[:20]]},
        )
    return parts


def parse_multipart(raw: bytes, boundary: str) -> dict[str, Any]:
    """A multipart/form-data body → {field name: value}: a part with a filename is an UploadFile (its
    bytes as sent), any other part text (UTF-8); a name sent twice collects a list. Framing as
    Powertools' own parser splits it; ValueError for a part that cannot be read."""
    delimiter, end = f"--{boundary}".encode(), f"--{boundary}--".encode()
    result: dict[str, Any] = {}
    for section in raw.split(delimiter):
        if not section or section.strip() in (b"", b"--"):
            continue
        chunk = section.removesuffix(end).removeprefix(b"\r\n").removesuffix(b"\r\n")
        header_end = chunk.find(b"\r\n\r\n")
        if header_end == -1:
            continue
        headers, content = chunk[:header_end].decode("utf-8"), chunk[header_end + 4 :]
        name, filename, content_type = None, None, None
        for line in headers.split("\r\n"):
            header, _, header_value = line.partition(":")
            if header.strip().lower() == "content-disposition":
                name, filename = _disposition(header_value)
            elif header.strip().lower() == "content-type":
                content_type = header_value.strip()
        if name is None:
            continue
        value: Any = (
            content.decode("utf-8")
            if filename is None
            else UploadFile(content=content, filename=filename, content_type=content_type)
        )
        if name in result:
            existing = result[name]
            result[name] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            result[name] = value
    return result


def _disposition(value: str) -> tuple[str | None, str | None]:
    """(name, filename) of a form-data Content-Disposition; `filename*` (RFC 5987: charset UTF-8 or
    ISO-8859-1, percent-encoded) wins over `filename`. ValueError for an undecodable `filename*`."""
    message = Message()
    message["Content-Disposition"] = value
    name, plain, extended = None, None, None
    params = message.get_params(header="content-disposition", unquote=True) or []
    for key, param in params[1:]:  # the first is the disposition type, form-data
        if key == "name" and isinstance(param, str):
            name = param
        elif key == "filename" and isinstance(param, tuple):  # filename*=charset'lang'%-encoded
            charset, _, text = param
            if (charset or "").lower() not in ("utf-8", "iso-8859-1"):
                raise ValueError(f"filename* in charset {charset!r}: UTF-8 or ISO-8859-1 only")
            extended = text.encode("latin-1").decode((charset or "").lower())  # the email module unquotes as latin-1
        elif key == "filename" and isinstance(param, str):
            plain = param
    return name, extended if extended is not None else plain


class _RepeatedKeys(Exception):
    def __init__(self, keys: list[str]):
        super().__init__(", ".join(keys))
        self.keys = keys


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing one that names a key twice (JSON's RFC 8259 leaves which one wins open)."""
    value = dict(pairs)
    if len(value) != len(pairs):
        counts = Counter(key for key, _ in pairs)
        raise _RepeatedKeys(sorted(key for key, count in counts.items() if count > 1))
    return value


def parse_json(raw: bytes) -> Any:
    """JSON text → value; `malformed_json` for anything that is not strict JSON of bounded depth,
    `invalid_request` for an object that names a key twice."""
    if not raw.strip():
        return None
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_no_constants, object_pairs_hook=_unique_keys)
    except _RepeatedKeys as error:
        raise InvalidRequest(
            f"Invalid request: {', '.join(key[:40] for key in error.keys[:5])} sent more than once.",
            details={"fields": [{"field": key[:100], "problem": "Sent more than once"} for key in error.keys[:20]]},
        ) from error
    except RecursionError as error:
        raise _malformed(f"nested deeper than {MAX_JSON_DEPTH} levels") from error
    except UnicodeDecodeError as error:
        raise _malformed("not UTF-8") from error
    except json.JSONDecodeError as error:
        raise _malformed(f"{error.msg} at line {error.lineno} column {error.colno}") from error
    except ValueError as error:
        raise _malformed(str(error)) from error
    if _depth(value) > MAX_JSON_DEPTH:
        raise _malformed(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in item)
    return deepest


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _malformed(problem: str) -> InvalidRequest:
    return InvalidRequest(f"The body is not valid JSON: {problem}.", code="malformed_json")


def _unsupported(media_type: str, expected: MediaType) -> UnsupportedMedia:
    return UnsupportedMedia(
        f"Content type '{media_type or '(none)'}' is not accepted here; send {expected}.",
        code="unsupported_content_type",
        details={"content_type": media_type[:100], "expected": expected},
    )


def _content_type(headers: dict[str, str]) -> tuple[str, dict[str, str]]:
    value = next((v for k, v in headers.items() if k.lower() == "content-type"), "") or ""
    media_type, *rest = value.split(";")
    params: dict[str, str] = {}
    for part in rest:
        name, _, param = part.strip().partition("=")
        param = param.strip()
        if len(param) >= 2 and param[0] == param[-1] == '"':
            param = param[1:-1]
        params[name.strip().lower()] = param
    return media_type.strip().lower(), params


def _raw_bytes(body: str | None, is_base64: bool) -> bytes:
    if not body:
        return b""
    if not is_base64:  # text as API Gateway passed it (binary media types come base64-encoded)
        return body.encode("utf-8", "surrogateescape")
    try:
        return base64.b64decode(body, validate=False)
    except (binascii.Error, ValueError) as error:
        raise InvalidRequest("The request body is not valid base64.", code="malformed_body") from error
