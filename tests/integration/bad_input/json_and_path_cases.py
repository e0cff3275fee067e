"""The bad-input corpus, part two: JSON shapes and depth, duplicate keys, strict types, numbers at the
edges, enum values, URLs and filenames on the JSON routes; ids in paths, unknown routes and methods;
the catalogue listing's limits and cursors;
`Idempotency-Key` values on the three paid routes."""

from __future__ import annotations

import json
from typing import Any

from listing_vision.jewelry.catalogue import MAX_CURSOR_CHARS, MAX_LIMIT
from listing_vision.jewelry.image_listing import encode_cursor
from tests.integration.bad_input.image_and_form_cases import JOB, PHOTO, UPLOAD, Case


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
        ("/generate-images", "s3-urls-empty-list", {"s3_urls": []}, 400, "invalid_request"),
        ("/generate-images", "s3-urls-non-string", {"s3_urls": ["s3://alyaimg/a.jpg", 5]}, 400, "invalid_request"),
        ("/generate-images", "s3-urls-null-item", {"s3_urls": [None]}, 400, "invalid_request"),
        ("/generate-images", "s3-urls-nested-list", {"s3_urls": [["s3://alyaimg/a.jpg"]]}, 400, "invalid_request"),
        (
            "/generate-images",
            "s3-urls-item-2049-chars",
            {"s3_urls": ["s3://alyaimg/" + "a" * 2040]},
            400,
            "invalid_request",
        ),
        (
            "/generate-images",
            "s3-urls-eleven",
            {"s3_urls": [f"s3://alyaimg/catalogue/{n}.jpg" for n in range(11)]},
            400,
            "too_many_photos",
        ),
        (
            "/generate-images",
            "s3-urls-duplicate",
            {"s3_urls": ["s3://alyaimg/a.jpg", "s3://alyaimg/b.jpg", "s3://alyaimg/a.jpg"]},
            400,
            "duplicate_photos",
        ),
        (
            "/generate-images",
            "s3-urls-same-object-two-forms",
            {"s3_urls": ["s3://alyaimg/a.jpg", "https://alyaimg.s3.amazonaws.com/a.jpg"]},
            400,
            "duplicate_photos",
        ),
        (
            "/generate-images",
            "s3-urls-list-unknown-product",
            {"s3_urls": ["s3://alyaimg/a.jpg"], "product_type": "tiara"},
            400,
            "unknown_product_type",
        ),
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
    unknown_image = "0" * 64  # no photo's SHA-256 here
    images = [
        ("short", "abc", 400, "invalid_request"),
        ("upper", "A" * 64, 400, "invalid_request"),
        ("65-chars", "0" * 65, 400, "invalid_request"),
        ("dot-dot", "..%2F..%2Fetc", 400, "invalid_request"),
        ("unknown", unknown_image, 404, "image_not_found"),
    ]
    cases = [Case(f"jobs:{n}", "GET", f"/jobs/{i}", s, c, "/jobs/{job_id}") for n, i, s, c in jobs]
    for name, ident, status, code in images:
        cases += [
            Case(
                f"image-caption:{name}", "GET", f"/images/{ident}/caption", status, code, "/images/{image_id}/caption"
            ),
            Case(
                f"image-captions:{name}",
                "GET",
                f"/images/{ident}/captions",
                status,
                code,
                "/images/{image_id}/captions",
            ),
            Case(
                f"image-recaption:{name}",
                "POST",
                f"/images/{ident}/caption",
                status,
                code,
                "/images/{image_id}/caption",
                {"json": {"type": "ring"}},
            ),
        ]
        cases.append(Case(f"image-delete:{name}", "DELETE", f"/images/{ident}", status, code, "/images/{image_id}"))
    cases.append(
        Case(
            "image-delete:website-unknown",
            "DELETE",
            f"/images/{unknown_image}",
            400,
            "invalid_request",
            "/images/{image_id}",
            {"params": {"website": "amazon"}},
        )
    )
    cases += catalogue_listing_cases()
    recaption = f"/images/{unknown_image}/caption"
    for name, kwargs in (
        ("type-unknown", {"json": {"type": "tiara"}}),
        ("type-missing", {"json": {}}),
        ("unknown-field", {"json": {"type": "ring", "surprise": 1}}),
        ("website-unknown", {"json": {"type": "ring"}, "params": {"website": "amazon"}}),
    ):
        cases.append(
            Case(
                f"image-recaption:{name}",
                "POST",
                recaption,
                400,
                "invalid_request",
                "/images/{image_id}/caption",
                kwargs,
            )
        )
    cases.append(
        Case(
            "image-caption:website-unknown",
            "GET",
            f"/images/{unknown_image}/caption",
            400,
            "invalid_request",
            "/images/{image_id}/caption",
            {"params": {"website": "amazon"}},
        )
    )
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
        Case("route:put-job", "PUT", f"/jobs/{JOB}", 404, "route_not_found"),
        Case("route:delete-jobs", "DELETE", "/jobs", 404, "route_not_found"),
        Case("route:post-health", "POST", "/health", 404, "route_not_found"),
        Case("route:trailing-segment", "GET", f"/jobs/{JOB}/x", 404, "route_not_found"),
    ]
    return cases


def catalogue_listing_cases() -> list[Case]:
    """GET /images: limits out of bounds, cursors garbled, altered, too long or another storefront's."""
    alya_cursor = encode_cursor("alya", "0" * 64, 1_700_000_000)
    altered = encode_cursor("alya", "1" * 64, 1_700_000_000).split(".")[0] + "." + alya_cursor.split(".")[1]
    listing: list[tuple[str, dict[str, str], str]] = [
        ("limit-zero", {"limit": "0"}, "invalid_request"),
        ("limit-negative", {"limit": "-1"}, "invalid_request"),
        ("limit-over-max", {"limit": str(MAX_LIMIT + 1)}, "invalid_request"),
        ("limit-huge", {"limit": "9" * 40}, "invalid_request"),
        ("limit-fraction", {"limit": "1.5"}, "invalid_request"),
        ("limit-text", {"limit": "ten"}, "invalid_request"),
        ("limit-empty", {"limit": ""}, "invalid_request"),
        ("website-unknown", {"website": "amazon"}, "invalid_request"),
        ("cursor-garbled", {"cursor": "not-a-cursor"}, "invalid_cursor"),
        ("cursor-two-dots", {"cursor": "a.b.c"}, "invalid_cursor"),
        ("cursor-not-base64", {"cursor": "!!!!.AAAA"}, "invalid_cursor"),
        ("cursor-altered", {"cursor": altered}, "invalid_cursor"),
        ("cursor-other-storefront", {"cursor": alya_cursor, "website": "blysk"}, "invalid_cursor"),
        ("cursor-too-long", {"cursor": "A" * (MAX_CURSOR_CHARS + 1)}, "invalid_request"),
        ("cursor-unicode", {"cursor": "é.é"}, "invalid_cursor"),
    ]
    return [
        Case(f"images-list:{name}", "GET", "/images", 400, code, "/images", {"params": params})
        for name, params, code in listing
    ]


# Idempotency-Key values refused before anything is read or written: 1 to 255 visible ASCII characters.
BAD_IDEMPOTENCY_KEYS: list[tuple[str, str | bytes]] = [
    ("256-chars", "k" * 256),
    ("4000-chars", "k" * 4000),
    ("space-inside", "order 42"),
    ("tab-inside", "order\t42"),
    ("latin-1-obs-text", "cl\xe9".encode("latin-1")),
    ("utf-8-bytes", "ключ".encode()),
    ("empty", ""),
]


def idempotency_key_cases() -> list[Case]:
    requests_by_route: dict[str, dict[str, Any]] = {
        "/generate-images": {"json": {"s3_urls": "s3://alyaimg/catalogue/none.jpg", "product_type": "ear"}},
        "/regenerate-image": {"json": {"job_id": JOB, "image_type": 1}},
        "/generate_caption": {
            "files": {"file": ("ring.jpg", PHOTO, "image/jpeg")},
            "data": {"type": "ring", "check_duplicate": "no"},
        },
        "/images/{image_id}/caption": {"json": {"type": "ring"}},
    }
    return [
        Case(
            f"{route[1:]}:idempotency-key-{name}",
            "POST",
            route.replace("{image_id}", "0" * 64),
            400,
            "invalid_idempotency_key",
            route,
            {**request, "headers": {"Idempotency-Key": key}},
        )
        for route, request in requests_by_route.items()
        for name, key in BAD_IDEMPOTENCY_KEYS
    ]
