"""The binary request form between Lambda and the embedding endpoint: `multipart/form-data`.

Base64 inside JSON makes a body a third larger and costs the endpoint a JSON parse and a base64
decode of every image on one thread (59 ms per 16 images of 1,024 px, measured on the GPU host);
multipart carries each image file as it is. A body has one `image` part per image, in order, and
optionally a `features` part whose value is `true` or `false`.

Parsing is strict: anything that is not exactly such a body is refused with `MalformedBody`,
never guessed at.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from email.message import Message

MEDIA_TYPE = "multipart/form-data"
FIELDS = frozenset({"image", "features"})


class MalformedBody(ValueError):
    """The body is not a multipart/form-data body of the endpoint's form."""


def encode(images: Sequence[bytes], features: bool = False) -> tuple[bytes, str]:
    """The body and its Content-Type (with the boundary)."""
    boundary = secrets.token_hex(16)
    while any(boundary.encode() in image for image in images):  # vanishingly rare; the rule says pick another
        boundary = secrets.token_hex(16)
    parts = [
        (b'Content-Disposition: form-data; name="image"; filename="%d"\r\n' % index)
        + b"Content-Type: application/octet-stream\r\n\r\n"
        + image
        for index, image in enumerate(images)
    ]
    if features:
        parts.append(b'Content-Disposition: form-data; name="features"\r\n\r\ntrue')
    delimiter = b"--" + boundary.encode()
    body = b"".join(delimiter + b"\r\n" + part + b"\r\n" for part in parts) + delimiter + b"--\r\n"
    return body, f"{MEDIA_TYPE}; boundary={boundary}"


def decode(body: bytes, content_type: str, max_images: int) -> tuple[list[bytes], bool]:
    """(image files in order, features asked for) from a body `encode` would write. Parts are found
    by offset and each image is copied out once (a request carries megabytes of images, parsed
    before any host thread can start on them)."""
    boundary = _param(content_type, "boundary")
    if not boundary or len(boundary) > 70:  # RFC 2046: 1 to 70 characters
        raise MalformedBody("The multipart Content-Type has no valid boundary.")
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    parts, position = [], len(delimiter) - 2  # the first delimiter opens the body, without its line break
    while body.startswith(delimiter[2:]) and (end := body.find(delimiter, position)) >= 0:
        parts.append((position, end))
        position = end + len(delimiter)
    if not parts or not body.startswith(b"--", position):
        raise MalformedBody("The body is not multipart/form-data with that boundary.")
    images: list[bytes] = []
    features: bool | None = None
    for start, end in parts:
        name, content = _part(body, start, end)
        if name == "image":
            if len(images) == max_images:
                raise MalformedBody(f"More than {max_images} images in one request.")
            images.append(content)
        elif features is None and content in (b"true", b"false"):
            features = content == b"true"
        else:
            raise MalformedBody("'features' must be given once, as true or false.")
    if not images:
        raise MalformedBody("The body has no 'image' part.")
    return images, bool(features)


def _part(body: bytes, start: int, end: int) -> tuple[str, bytes]:
    """The part between offsets `start` (just after its delimiter) and `end` (the next one)."""
    if not body.startswith(b"\r\n", start, end):
        raise MalformedBody("A multipart delimiter is not followed by a line break.")
    blank = body.find(b"\r\n\r\n", start + 2, end)
    if blank < 0:
        raise MalformedBody("A part has no blank line after its headers.")
    headers = {}
    for line in body[start + 2 : blank].split(b"\r\n"):
        key, colon, value = line.decode("latin-1").partition(":")
        if not colon:
            raise MalformedBody("A part header is not 'Name: value'.")
        headers[key.strip().lower()] = value.strip()
    disposition = headers.get("content-disposition", "")
    name = _param(disposition, "name")
    if not disposition.lower().startswith("form-data") or name not in FIELDS:
        raise MalformedBody(f"Unexpected part {name!r}: expected 'image' parts and an optional 'features'.")
    return name, body[blank + 4 : end]


def _param(header: str, name: str) -> str | None:
    message = Message()
    message["content-type"] = header
    value = message.get_param(name, header="content-type")
    return value if isinstance(value, str) else None
