"""A corpus of bad input, through the local gateway to every route: each case is refused with a 4xx
and a stable code that the route declares (functions/routes.py), and writes nothing anywhere (every
bucket's objects and tags, every table's items, Milvus rows, OpenSearch documents, Step Functions
executions: tests/stores.py). Broken images sent through a presigned upload end `invalid`.

Classes: image bytes (truncated, fake headers, formats, sizes, blank, 16-bit), multipart framing,
form fields, JSON shapes and depth, strict types, enum values, ids, URLs, filenames, encodings,
unknown routes and methods.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import requests
from PIL import Image

from functions.routes import ROUTES
from listing_vision.api.error_codes import CODES
from local.stack import LocalStack
from tests.images import encode, fresh_image
from tests.stores import changed, fingerprint

JOB = "0" * 32  # well-formed ids of nothing
UPLOAD = "f" * 32


def png_header(width: int, height: int, idat: bytes = b"") -> bytes:
    """A PNG that declares width × height (and carries `idat` as its only data chunk)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    head = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return head + (chunk(b"IDAT", idat) if idat else b"") + chunk(b"IEND", b"")


def with_chunk(png: bytes, kind: bytes, data: bytes) -> bytes:
    """The PNG with one more chunk right after its IHDR (where metadata chunks sit)."""
    end_of_ihdr = 8 + 8 + 13 + 4
    return png[:end_of_ihdr] + _chunk(kind, data) + png[end_of_ihdr:]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def jpeg_header(width: int, height: int) -> bytes:
    """The start of a baseline JPEG whose frame header declares width × height, and nothing more."""
    return (
        b"\xff\xd8\xff\xc0\x00\x11\x08"
        + struct.pack(">HH", height, width)
        + b"\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    )


def flat(
    colour: str | tuple[int, ...], size: tuple[int, int] = (400, 300), mode: str = "RGB", fmt: str = "PNG"
) -> bytes:
    return encode(Image.new(mode, size, colour), fmt)


def sixteen_bit_flat() -> bytes:
    return encode(Image.fromarray(np.full((64, 64), 40_000, dtype=np.uint16)), "PNG")


PHOTO = fresh_image(9_001, (320, 240))  # an acceptable photo: where a case needs one, the fault is elsewhere
PNG = fresh_image(9_002, (320, 240), "PNG")
ZTXT_3MB = b"Comment\x00\x00" + zlib.compress(b"x" * 3_000_000)  # keyword, NUL, method 0, deflate
ZTXT_17MB = b"Comment\x00\x00" + zlib.compress(b"x" * 17_000_000)  # a zlib bomb in metadata

# Image bytes every image route must refuse: (case, bytes, filename, status, code)
IMAGES: list[tuple[str, bytes, str, int, str]] = [
    ("empty", b"", "a.jpg", 400, "empty_file"),
    ("text", b"just some text, not an image\n" * 10, "a.jpg", 400, "not_an_image"),
    ("html-as-jpg", b"<!doctype html><html><body>hi</body></html>", "a.jpg", 400, "not_an_image"),
    ("svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="99" height="99"/>', "a.svg", 400, "not_an_image"),
    ("pdf", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", "a.pdf", 400, "not_an_image"),
    ("jpeg-cut-in-header", PHOTO[:200], "a.jpg", 400, "corrupt_image"),
    ("jpeg-cut-in-half", PHOTO[: len(PHOTO) // 2], "a.jpg", 400, "corrupt_image"),
    ("png-cut", PNG[: len(PNG) // 3], "a.png", 400, "corrupt_image"),
    ("png-bad-data", png_header(64, 64, b"\x00garbage, not zlib"), "a.png", 400, "corrupt_image"),
    ("webp-cut", fresh_image(9_003, (320, 240), "WEBP")[:60], "a.webp", 400, "corrupt_image"),
    ("jpeg-declares-65000x65000", jpeg_header(65_000, 65_000), "a.jpg", 413, "decompression_bomb"),
    (
        "png-declares-65000x65000",
        png_header(65_000, 65_000, zlib.compress(b"\x00" * 64)),
        "a.png",
        413,
        "decompression_bomb",
    ),
    ("jpeg-declares-8000x8000", jpeg_header(8_000, 8_000), "a.jpg", 413, "decompression_bomb"),
    (  # metadata Pillow now inflates past 1 MB does not lift the pixel limit
        "png-declares-65000x65000-with-3mb-ztxt",
        with_chunk(png_header(65_000, 65_000, zlib.compress(b"\x00" * 64)), b"zTXt", ZTXT_3MB),
        "a.png",
        413,
        "decompression_bomb",
    ),
    (  # a tEXt chunk whose length runs past its data into the next chunk
        "png-truncated-ancillary-chunk",
        PNG[:33] + struct.pack(">I", 100) + b"tEXtComment\x00hi" + PNG[33:],
        "a.png",
        400,
        "corrupt_image",
    ),
    (
        "png-ancillary-chunk-bad-crc",
        PNG[:33] + _chunk(b"tEXt", b"Comment\x00hi")[:-4] + b"\0\0\0\0" + PNG[33:],
        "a.png",
        400,
        "corrupt_image",
    ),
    ("png-signature-only", b"\x89PNG\r\n\x1a\n", "a.png", 400, "corrupt_image"),
    ("jpeg-without-end-marker", PHOTO[:-2], "a.jpg", 400, "corrupt_image"),
    ("png-ztxt-inflating-past-16mb", with_chunk(PNG, b"zTXt", ZTXT_17MB), "a.png", 400, "corrupt_image"),
    ("gif", fresh_image(9_004, (64, 64), "GIF"), "a.gif", 415, "unsupported_image_format"),
    ("tiff", fresh_image(9_005, (64, 64), "TIFF"), "a.tif", 415, "unsupported_image_format"),
    ("bmp", fresh_image(9_006, (64, 64), "BMP"), "a.bmp", 415, "unsupported_image_format"),
    ("1x1", flat("red", (1, 1)), "a.png", 422, "image_too_small"),
    ("2x2", flat("red", (2, 2)), "a.png", 422, "image_too_small"),
    ("15x300", fresh_image(9_007, (15, 300), "PNG"), "a.png", 422, "image_too_small"),
    ("blank-white", flat("white"), "a.png", 422, "blank_image"),
    ("blank-black", flat("black"), "a.png", 422, "blank_image"),
    ("blank-white-jpeg", flat("white", fmt="JPEG"), "a.jpg", 422, "blank_image"),
    ("blank-transparent", flat((0, 0, 0, 0), mode="RGBA"), "a.png", 422, "blank_image"),
    ("blank-16-bit-gray", sixteen_bit_flat(), "a.png", 422, "blank_image"),
    ("over-max-upload-bytes", PHOTO + b"\0" * 4_600_000, "a.jpg", 413, "file_too_large"),
]


def multipart(fields: list[tuple[str, str | None, bytes]], boundary: str = "corpusboundary") -> bytes:
    """A multipart body by hand: (name, filename or None, value)."""
    out = b""
    for name, filename, value in fields:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def part(name: str, disposition: str | None, value: bytes, boundary: str = "corpusboundary") -> bytes:
    """One multipart part whose Content-Disposition carries `disposition` as written (a filename
    parameter, quoted or RFC 5987), for names a client library would escape."""
    params = f'form-data; name="{name}"' + (f"; {disposition}" if disposition else "")
    return f"--{boundary}\r\nContent-Disposition: {params}\r\n\r\n".encode() + value + b"\r\n"


@dataclass
class Case:
    id: str
    method: str
    path: str
    status: int
    code: str
    route: str | None = None  # the declared route it reaches (None: no route)
    kwargs: dict[str, Any] = field(default_factory=dict)


def image_cases() -> list[Case]:
    cases = []
    for route, extra in (("/image_similarity_search", {}), ("/generate_caption", {"type": "ring"})):
        for name, data, filename, status, code in IMAGES:
            form = {"check_duplicate": "no", **extra}
            cases.append(
                Case(
                    f"{route[1:]}:{name}",
                    "POST",
                    route,
                    status,
                    code,
                    route,
                    {"files": {"file": (filename, data, "application/octet-stream")}, "data": form},
                )
            )
    return cases


def form_cases() -> list[Case]:
    cases = []
    photo = ("p.jpg", PHOTO, "image/jpeg")
    bad_utf8 = multipart([("file", "p.jpg", PHOTO), ("website", None, b"\xff\xfe\xfa")])
    for route, extra in (("/image_similarity_search", {}), ("/generate_caption", {"type": "ring"})):
        name = route[1:]
        forms: list[tuple[str, dict[str, Any], int, str]] = [
            (
                "no-file",
                {"files": {k: (None, v) for k, v in {"website": "alya", **extra}.items()}},
                400,
                "invalid_request",
            ),
            ("file-as-plain-field", {"files": {"file": (None, "not a file")}, "data": extra}, 400, "invalid_request"),
            (
                "unknown-website",
                {"files": {"file": photo}, "data": {"website": "amazon", **extra}},
                400,
                "invalid_request",
            ),
            ("website-case", {"files": {"file": photo}, "data": {"website": "ALYA", **extra}}, 400, "invalid_request"),
            (
                "check-duplicate-maybe",
                {"files": {"file": photo}, "data": {"check_duplicate": "maybe", **extra}},
                400,
                "invalid_request",
            ),
            (
                "check-duplicate-true",
                {"files": {"file": photo}, "data": {"check_duplicate": "true", **extra}},
                400,
                "invalid_request",
            ),
            (
                "unknown-scope",
                {"files": {"file": photo}, "data": {"scope": "everything", **extra}},
                400,
                "invalid_request",
            ),
            ("two-files", {"files": [("file", photo), ("file", photo)], "data": extra}, 400, "invalid_request"),
            ("json-body", {"json": {"file": "x", **extra}}, 415, "unsupported_content_type"),
            ("urlencoded-body", {"data": {"file": "x", **extra}}, 415, "unsupported_content_type"),
            (
                "text-body",
                {"data": b"file=x", "headers": {"Content-Type": "text/plain"}},
                415,
                "unsupported_content_type",
            ),
            ("no-content-type", {"data": b"--x\r\n", "headers": {"Content-Type": ""}}, 415, "unsupported_content_type"),
            (
                "multipart-without-boundary",
                {"data": multipart([("file", "p.jpg", PHOTO)]), "headers": {"Content-Type": "multipart/form-data"}},
                400,
                "malformed_multipart",
            ),
            (
                "multipart-empty-boundary",
                {"data": b"--\r\n", "headers": {"Content-Type": "multipart/form-data; boundary="}},
                400,
                "malformed_multipart",
            ),
            (
                "multipart-wrong-boundary",
                {
                    "data": multipart([("file", "p.jpg", PHOTO)]),
                    "headers": {"Content-Type": "multipart/form-data; boundary=other"},
                },
                400,
                "malformed_multipart",
            ),
            (
                "multipart-boundary-over-70",
                {
                    "data": multipart([("file", "p.jpg", PHOTO)], "b" * 80),
                    "headers": {"Content-Type": "multipart/form-data; boundary=" + "b" * 80},
                },
                400,
                "malformed_multipart",
            ),
            (
                "multipart-field-not-utf8",
                {"data": bad_utf8, "headers": {"Content-Type": "multipart/form-data; boundary=corpusboundary"}},
                400,
                "malformed_multipart",
            ),
        ]
        for case, disposition, code in (
            ("filename-nul", 'filename="ring\x00.jpg"', "invalid_filename"),
            ("filename-rtl-override", 'filename="ring\u202egpj.jpg"', "invalid_filename"),
            ("filename-newline", "filename*=UTF-8''ring%0D%0AX-Evil%3A%201.jpg", "invalid_filename"),
            ("filename-star-nul", "filename*=UTF-8''ring%00.jpg", "invalid_filename"),
            ("filename-star-rtl-override", "filename*=UTF-8''ring%E2%80%AEgpj.jpg", "invalid_filename"),
            ("filename-star-not-utf8", "filename*=UTF-8''ring%FF.jpg", "malformed_multipart"),
            ("filename-star-unknown-charset", "filename*=KOI8-R''ring.jpg", "malformed_multipart"),
        ):
            body = part("file", disposition, PHOTO) + b"".join(
                part(k, None, v.encode()) for k, v in {"check_duplicate": "no", **extra}.items()
            )
            headers = {"Content-Type": "multipart/form-data; boundary=corpusboundary"}
            forms.append((case, {"data": body + b"--corpusboundary--\r\n", "headers": headers}, 400, code))
        if route == "/generate_caption":
            forms += [
                ("no-type", {"files": {"file": photo}}, 400, "invalid_request"),
                ("unknown-type", {"files": {"file": photo}, "data": {"type": "watch"}}, 400, "invalid_request"),
            ]
        cases += [
            Case(f"{name}:{case}", "POST", route, status, code, route, kwargs) for case, kwargs, status, code in forms
        ]
    return cases


def deep(levels: int) -> bytes:
    return ("[" * levels + "]" * levels).encode()


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def json_cases() -> list[Case]:
    upload_ok = {"website": "alya", "content_type": "image/png"}
    generate_ok = {"s3_urls": "s3://alyaimg/catalogue/none.jpg", "product_type": "ear", "image_types": [1]}
    regenerate_ok = {"job_id": JOB, "image_type": 1}
    cases = []
    for route, valid in (
        ("/uploads", upload_ok),
        ("/generate-images", generate_ok),
        ("/regenerate-image", regenerate_ok),
    ):
        name = route[1:]
        shapes: list[tuple[str, dict[str, Any], int, str]] = [
            ("nested-100000", {"data": deep(100_000)}, 400, "malformed_json"),
            ("nested-40", {"data": deep(40)}, 400, "malformed_json"),
            (
                "nested-object-in-field",
                {"data": json.dumps({**valid, "x": nested(35)}).encode()},
                400,
                "malformed_json",
            ),
            ("syntax", {"data": b'{"website": '}, 400, "malformed_json"),
            (  # ambiguous (parsers disagree on which wins), even where both values are the same
                "duplicate-key",
                {
                    "data": json.dumps(valid).encode()[:-1]
                    + b", "
                    + json.dumps(dict([next(iter(valid.items()))]))[1:].encode()
                },
                400,
                "invalid_request",
            ),
            ("nan", {"data": json.dumps({**valid, "n": float("nan")}).encode()}, 400, "malformed_json"),
            (
                "utf-16",
                {"data": json.dumps(valid).encode("utf-16"), "headers": {"Content-Type": "application/json"}},
                400,
                "malformed_json",
            ),
            ("array", {"json": [valid]}, 400, "invalid_request"),
            ("string", {"json": "hello"}, 400, "invalid_request"),
            ("unknown-field", {"json": {**valid, "surprise": 1}}, 400, "invalid_request"),
            ("multipart", {"files": {k: (None, str(v)) for k, v in valid.items()}}, 415, "unsupported_content_type"),
            ("urlencoded", {"data": {k: str(v) for k, v in valid.items()}}, 415, "unsupported_content_type"),
            (
                "text-plain",
                {"data": json.dumps(valid).encode(), "headers": {"Content-Type": "text/plain"}},
                415,
                "unsupported_content_type",
            ),
        ]
        cases += [
            Case(f"{name}:{case}", "POST", route, status, code, route, kwargs) for case, kwargs, status, code in shapes
        ]
    fields: list[tuple[str, str, dict[str, Any], int, str]] = [
        ("/uploads", "website-unknown", {"website": "amazon"}, 400, "invalid_request"),
        ("/uploads", "website-null", {"website": None}, 400, "invalid_request"),
        ("/uploads", "content-type-gif", {"content_type": "image/gif"}, 400, "invalid_request"),
        ("/uploads", "filename-number", {"filename": 12}, 400, "invalid_request"),
        ("/uploads", "filename-256-chars", {"filename": "a" * 252 + ".png"}, 400, "invalid_request"),
        ("/uploads", "filename-nul", {"filename": "ring\x00.png"}, 400, "invalid_filename"),
        ("/uploads", "filename-rtl-override", {"filename": "ring\u202egnp.exe"}, 400, "invalid_filename"),
        ("/uploads", "filename-lone-surrogate", {"filename": "ring\ud800.png"}, 400, "invalid_request"),
        ("/generate-images", "image-types-empty", {"image_types": []}, 400, "invalid_request"),
        ("/generate-images", "image-types-bool", {"image_types": [True]}, 400, "invalid_request"),
        ("/generate-images", "image-types-strings", {"image_types": ["1"]}, 400, "invalid_request"),
        ("/generate-images", "image-types-float", {"image_types": [1.0]}, 400, "invalid_request"),
        ("/generate-images", "image-types-six", {"image_types": [1, 2, 3, 4, 5, 1]}, 400, "invalid_request"),
        ("/generate-images", "image-types-zero", {"image_types": [0]}, 400, "unknown_image_type"),
        ("/generate-images", "image-types-nine", {"image_types": [9]}, 400, "unknown_image_type"),
        ("/generate-images", "product-watch", {"product_type": "watch"}, 400, "unknown_product_type"),
        ("/generate-images", "product-number", {"product_type": 5}, 400, "invalid_request"),
        ("/generate-images", "no-s3-urls", {"s3_urls": None}, 400, "invalid_request"),
        ("/generate-images", "s3-urls-list", {"s3_urls": ["s3://alyaimg/a.jpg"]}, 400, "invalid_request"),
        (
            "/generate-images",
            "url-metadata-service",
            {"s3_urls": "http://169.254.169.254/latest/meta-data/"},
            400,
            "source_not_allowed",
        ),
        ("/generate-images", "url-file", {"s3_urls": "file:///etc/passwd"}, 400, "source_not_allowed"),
        ("/generate-images", "url-other-bucket", {"s3_urls": "s3://generated/alya/x.png"}, 400, "source_not_allowed"),
        (
            "/generate-images",
            "url-dot-dot",
            {"s3_urls": "s3://alyaimg/catalogue/../../x.jpg"},
            400,
            "source_not_allowed",
        ),
        (
            "/generate-images",
            "url-plain-http-s3",
            {"s3_urls": "http://alyaimg.s3.amazonaws.com/x.jpg"},
            400,
            "source_not_allowed",
        ),
        ("/generate-images", "url-2049-chars", {"s3_urls": "s3://alyaimg/" + "a" * 2040}, 400, "invalid_request"),
        ("/generate-images", "url-missing-object", {}, 404, "source_not_found"),
        (
            "/generate-images",
            "dimensions-negative",
            {"dimensions_mm": {"width": -1, "height": 5}},
            400,
            "invalid_request",
        ),
        (
            "/generate-images",
            "dimensions-string",
            {"dimensions_mm": {"width": "5", "height": 5}},
            400,
            "invalid_request",
        ),
        ("/generate-images", "dimensions-huge", {"dimensions_mm": {"width": 1e9, "height": 5}}, 400, "invalid_request"),
        (
            "/generate-images",
            "dimensions-1e-300",
            {"dimensions_mm": {"width": 1e-300, "height": 5}},
            400,
            "invalid_request",
        ),
        ("/generate-images", "dimensions-zero", {"dimensions_mm": {"width": 5, "height": 0}}, 400, "invalid_request"),
        ("/regenerate-image", "image-type-true", {"image_type": True}, 400, "invalid_request"),
        ("/regenerate-image", "image-type-string", {"image_type": "1"}, 400, "invalid_request"),
        ("/regenerate-image", "image-type-zero", {"image_type": 0}, 400, "invalid_request"),
        ("/regenerate-image", "image-type-float", {"image_type": 1.5}, 400, "invalid_request"),
        ("/regenerate-image", "job-id-short", {"job_id": "abc"}, 400, "invalid_request"),
        ("/regenerate-image", "job-id-upper", {"job_id": "A" * 32}, 400, "invalid_request"),
        ("/regenerate-image", "job-id-number", {"job_id": 7}, 400, "invalid_request"),
        ("/regenerate-image", "job-unknown", {}, 404, "job_not_found"),
    ]
    valid_of: dict[str, dict[str, Any]] = {
        "/uploads": upload_ok,
        "/generate-images": generate_ok,
        "/regenerate-image": regenerate_ok,
    }
    dimensions = json.dumps({**generate_ok, "dimensions_mm": {"width": 5, "height": 5}}).encode()
    cases.append(
        Case(
            "generate-images:duplicate-key-nested",
            "POST",
            "/generate-images",
            400,
            "invalid_request",
            "/generate-images",
            {"data": dimensions.replace(b'"width": 5', b'"width": 5, "width": 6')},
        )
    )
    # Numbers at the edges, in every numeric field, as raw JSON text (json.dumps cannot write 1e400):
    # what overflows to infinity or underflows to zero is out of range; what is not a number is not JSON.
    numeric_fields = (
        ("/generate-images", "width", {**generate_ok, "dimensions_mm": {"width": "@", "height": 5}}),
        ("/generate-images", "height", {**generate_ok, "dimensions_mm": {"width": 5, "height": "@"}}),
        ("/generate-images", "image-types", {**generate_ok, "image_types": ["@"]}),
        ("/regenerate-image", "image-type", {**regenerate_ok, "image_type": "@"}),
    )
    edges = (
        ("1e400", b"1e400", 400, "invalid_request"),
        ("-1e400", b"-1e400", 400, "invalid_request"),
        ("1e-400", b"1e-400", 400, "invalid_request"),
        ("minus-zero", b"-0.0", 400, "invalid_request"),
        ("infinity", b"Infinity", 400, "malformed_json"),
        ("nan", b"NaN", 400, "malformed_json"),
        ("5000-digits", b"9" * 5000, 400, "malformed_json"),  # over Python's int-parsing limit
        ("hex", b"0x10", 400, "malformed_json"),
        ("leading-plus", b"+1", 400, "malformed_json"),
    )
    for route, name, template in numeric_fields:
        text = json.dumps(template).encode()
        for edge, literal, status, code in edges:
            raw = text.replace(b'"@"', literal)
            cases.append(Case(f"{route[1:]}:{name}-{edge}", "POST", route, status, code, route, {"data": raw}))
    for route, case, change, status, code in fields:
        body = {**valid_of[route], **change}
        body = {k: v for k, v in body.items() if v is not None or case.endswith("null")}
        cases.append(Case(f"{route[1:]}:{case}", "POST", route, status, code, route, {"json": body}))
    return cases


def path_cases() -> list[Case]:
    jobs = [
        ("short", "abc", 400, "invalid_request"),
        ("upper", "A" * 32, 400, "invalid_request"),
        ("33-chars", "0" * 33, 400, "invalid_request"),
        ("2000-chars", "0" * 2000, 400, "invalid_request"),
        ("unicode", "%C3%A9" * 16, 400, "invalid_request"),
        ("dot-dot", "..%2F..%2Fetc", 400, "invalid_request"),
        ("unknown", JOB, 404, "job_not_found"),
    ]
    uploads = [
        ("short", "nope", 400, "invalid_request"),
        ("2000-chars", "f" * 2000, 400, "invalid_request"),
        ("glob", "*", 400, "invalid_request"),
        ("unknown", UPLOAD, 404, "upload_not_found"),
    ]
    cases = [Case(f"jobs:{n}", "GET", f"/jobs/{i}", s, c, "/jobs/{job_id}") for n, i, s, c in jobs]
    cases += [Case(f"uploads-id:{n}", "GET", f"/uploads/{i}", s, c, "/uploads/{upload_id}") for n, i, s, c in uploads]
    cases += [
        Case(
            "uploads-id:unknown-website",
            "GET",
            f"/uploads/{UPLOAD}",
            400,
            "invalid_request",
            "/uploads/{upload_id}",
            {"params": {"website": "amazon"}},
        ),
        Case("route:unknown", "GET", "/nope", 404, "route_not_found"),
        Case("route:get-on-post", "GET", "/image_similarity_search", 404, "route_not_found"),
        Case("route:delete-job", "DELETE", f"/jobs/{JOB}", 404, "route_not_found"),
        Case("route:post-health", "POST", "/health", 404, "route_not_found"),
        Case("route:trailing-segment", "GET", f"/jobs/{JOB}/x", 404, "route_not_found"),
    ]
    return cases


CASES = image_cases() + form_cases() + json_cases() + path_cases()
DECLARED = {route.path: set(route.errors) for route in ROUTES}


def test_the_corpus_is_large_and_covers_every_route() -> None:
    # Given the corpus, then it has at least 80 cases and reaches every declared route
    assert len(CASES) >= 80
    assert {case.route for case in CASES} >= set(DECLARED)
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.fixture(scope="module")
def settled(local_stack: LocalStack) -> Callable[[], dict[str, Any]]:
    def snapshot() -> dict[str, Any]:
        local_stack.router.drain()  # no asynchronous work left that could write after the case
        return fingerprint(with_tags=True)

    return snapshot


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_refused_with_a_declared_code_and_writes_nothing(
    local_stack: LocalStack, settled: Callable[[], dict[str, Any]], case: Case
) -> None:
    # Given every store as it is
    before = settled()
    # When the bad request arrives
    answer = requests.request(case.method, f"{local_stack.url}{case.path}", timeout=60, **case.kwargs)
    # Then it is refused with the expected status and stable code, in the one error shape
    assert answer.status_code == case.status, answer.text[:500]
    error = answer.json()["error"]
    assert error["code"] == case.code, answer.text[:500]
    assert isinstance(error["message"], str) and error["message"]
    # And the code is one the route declares (the OpenAPI document and the README list it), at its status
    if case.route is not None:
        assert case.code in DECLARED[case.route]
        assert CODES[case.code].status == case.status
    # And nothing was written anywhere, nothing started
    assert changed(before, settled()) == []


BROKEN_UPLOADS = [
    ("jpeg-cut-in-header", PHOTO[:200], "image/jpeg", "corrupt_image"),
    ("jpeg-declares-65000x65000", jpeg_header(65_000, 65_000), "image/jpeg", "decompression_bomb"),
    ("png-1x1", flat("red", (1, 1)), "image/png", "image_too_small"),
    ("png-blank-white", flat("white"), "image/png", "blank_image"),
    ("not-an-image", b"hello", "image/png", "not_an_image"),
    # a real photo, but a PNG under a form that declared JPEG: served as what it is not
    ("png-declared-jpeg", PNG, "image/jpeg", "content_type_mismatch"),
]


@pytest.mark.parametrize(
    ("data", "content_type", "reason"),
    [case[1:] for case in BROKEN_UPLOADS],
    ids=[case[0] for case in BROKEN_UPLOADS],
)
def test_broken_bytes_through_a_presigned_upload_end_invalid(
    local_stack: LocalStack, data: bytes, content_type: str, reason: str
) -> None:
    # Given an upload granted through the API, and broken bytes posted straight to S3 with it
    grant = requests.post(
        f"{local_stack.url}/uploads", json={"website": "alya", "content_type": content_type}, timeout=10
    ).json()
    local_stack.router.drain()
    before = fingerprint()
    posted = requests.post(grant["url"], data=grant["fields"], files={"file": ("x", data, content_type)}, timeout=30)
    assert posted.status_code in (200, 204), posted.text
    local_stack.router.drain()
    # When its status is asked for
    status = requests.get(f"{local_stack.url}/uploads/{grant['upload_id']}", params={"website": "alya"}, timeout=10)
    # Then it ended invalid with the decoder's reason, not pending
    assert status.status_code == 200, status.text
    assert status.json() == {"upload_id": grant["upload_id"], "status": "invalid", "reason": reason}
    # And nothing was indexed or recorded: only the uploaded object itself is new
    after = fingerprint()
    assert changed(before, after) == ["s3:alyaimg"]
    assert {o[0] for o in after["s3:alyaimg"]} - {o[0] for o in before["s3:alyaimg"]} == {grant["key"]}
