"""The bad-input corpus, part three: unicode in every text field (full-width forms, zero-width and
joiner characters, confusables, separators, decomposed letters, digits of other scripts), form
fields sent as files, repeated or missing, and numeric edges not covered in part two.

Each case is refused (4xx, a stable code) or, where the comment says so, accepted: an accepted
request here is one that passes the field and then stops at something else that writes nothing
(an empty file, an object that does not exist), so the corpus can still check that nothing was
written. Nothing is normalised (NFC/NFKC) on the way in: an enum value or id is ASCII and a
compatibility form of it is another string; a filename is kept as sent, byte for byte.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from tests.integration.bad_input.image_and_form_cases import JOB, PHOTO, Case, part

BOUNDARY = {"Content-Type": "multipart/form-data; boundary=corpusboundary"}

CYRILLIC = str.maketrans("aeoi", "\u0430\u0435\u043e\u0456")  # letters that look Latin and are not
# Text that is not the ASCII value it looks like: each refused wherever an enum value or an id is read.
LOOKALIKES = (
    ("fullwidth", lambda v: "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in v)),
    ("zero-width-joiner", lambda v: v[:2] + "\u200d" + v[2:]),
    ("zero-width-space", lambda v: v + "\u200b"),
    ("cyrillic", lambda v: v.translate(CYRILLIC)),
    ("bom-prefix", lambda v: "\ufeff" + v),
)


def multipart_form(
    file: tuple[str, bytes] | None, fields: list[tuple[str, str]], files: tuple[tuple[str, str, bytes], ...] = ()
) -> dict[str, Any]:
    """A multipart body by hand: the photo part (named `file`), text fields, then more file parts."""
    body = part("file", f'filename="{file[0]}"', file[1]) if file else b""
    body += b"".join(part(name, None, value.encode()) for name, value in fields)
    body += b"".join(part(name, f'filename="{filename}"', data) for name, filename, data in files)
    return {"data": body + b"--corpusboundary--\r\n", "headers": BOUNDARY}


def form_field_cases() -> list[Case]:
    cases = []
    photo = ("p.jpg", PHOTO)
    for route, extra in (("/image_similarity_search", []), ("/generate_caption", [("type", "ring")])):
        name = route[1:]
        fields = [("check_duplicate", "no"), *extra]
        forms: list[tuple[str, dict[str, Any], int, str]] = []
        # Text fields sent as file parts (a filename on a non-file field): a file is not a storefront.
        for field, value in [("website", "alya"), ("check_duplicate", "no"), ("scope", "storefront"), *extra]:
            rest = [(k, v) for k, v in fields if k != field]
            forms.append(
                (
                    f"{field}-sent-as-a-file",
                    multipart_form(photo, rest, ((field, "f.txt", value.encode()),)),
                    400,
                    "invalid_request",
                )
            )
        # An unknown part that is a file (a second image under another name): nothing takes it.
        forms.append(
            ("unknown-file-part", multipart_form(photo, fields, (("photo2", "b.jpg", PHOTO),)), 400, "invalid_request")
        )
        # Unknown text fields, a misspelt storefront among them: the default storefront must not take the photo.
        for field, value in (("websit", "blysk"), ("Website", "blysk"), ("check_duplicat", "no")):
            forms.append(
                (f"unknown-field-{field}", multipart_form(photo, [*fields, (field, value)]), 400, "invalid_request")
            )
        # The storefront in the query string of a form route: not where the route reads it, so refused.
        forms.append(
            (
                "website-in-the-query",
                {**multipart_form(photo, fields), "params": {"website": "blysk"}},
                400,
                "unknown_parameter",
            )
        )
        # Repeated fields: which of two storefronts or two answers is meant?
        for field, values in (("website", ("alya", "blysk")), ("website-same-twice", ("alya", "alya"))):
            repeated = [("website", v) for v in values]
            forms.append((field, multipart_form(photo, fields + repeated), 400, "invalid_request"))
        forms.append(
            (
                "check-duplicate-twice",
                multipart_form(photo, [*fields, ("check_duplicate", "yes")]),
                400,
                "invalid_request",
            )
        )
        forms.append(("only-fields-no-file", multipart_form(None, fields), 400, "invalid_request"))
        forms.append(("empty-file-part", multipart_form(("p.jpg", b""), fields), 400, "empty_file"))
        # Lookalikes of every enum value of the form.
        enums = [("website", "alya"), ("check_duplicate", "no"), ("scope", "all")]
        if route == "/generate_caption":
            enums.append(("type", "ring"))
        for field, value in enums:
            for look, change in LOOKALIKES:
                form = [(k, v) for k, v in fields if k != field] + [(field, change(value))]
                forms.append((f"{field}-{look}", multipart_form(photo, form), 400, "invalid_request"))
        # Filenames: separators and the replacement character are refused, plain or RFC 5987.
        for case, disposition in (
            ("filename-line-separator", 'filename="ring\u2028.jpg"'),
            ("filename-paragraph-separator", 'filename="ring\u2029.jpg"'),
            ("filename-replacement-character", 'filename="ring\ufffd.jpg"'),
            ("filename-star-line-separator", "filename*=UTF-8''ring%E2%80%A8.jpg"),
            ("filename-star-replacement-character", "filename*=UTF-8''ring%EF%BF%BD.jpg"),
        ):
            body = part("file", disposition, PHOTO) + b"".join(part(k, None, v.encode()) for k, v in fields)
            forms.append(
                (case, {"data": body + b"--corpusboundary--\r\n", "headers": BOUNDARY}, 400, "invalid_filename")
            )
        # Accepted filenames (each with an empty file, so the request stops at empty_file and writes
        # nothing): a decomposed é, an emoji joined by ZWJ, full-width letters, a right-to-left script
        # and a non-breaking space are what people name files; they are printable, keep no control and
        # are kept as sent (not normalised), percent-encoded in S3 metadata.
        for case, filename in (
            ("filename-nfd-accepted", "bague-e\u0301te\u0301.jpg"),
            ("filename-emoji-zwj-accepted", "ring-\U0001f469\u200d\U0001f4bb.jpg"),
            ("filename-fullwidth-accepted", "\uff52\uff49\uff4e\uff47.jpg"),
            ("filename-arabic-accepted", "\u062e\u0627\u062a\u0645.jpg"),
            ("filename-nbsp-accepted", "ring\u00a01.jpg"),
        ):
            disposition = f"filename*=UTF-8''{quote(filename)}"
            body = part("file", disposition, b"") + b"".join(part(k, None, v.encode()) for k, v in fields)
            forms.append((case, {"data": body + b"--corpusboundary--\r\n", "headers": BOUNDARY}, 400, "empty_file"))
        cases += [Case(f"{name}:{c}", "POST", route, s, code, route, kw) for c, kw, s, code in forms]
    return cases


def json_unicode_cases() -> list[Case]:
    upload_ok = {"website": "alya", "content_type": "image/png"}
    generate_ok = {"s3_urls": "s3://alyaimg/catalogue/none.jpg", "product_type": "ear", "image_types": [1]}
    regenerate_ok = {"job_id": JOB, "image_type": 1}
    changes: list[tuple[str, str, dict[str, Any], int, str]] = []
    for look, change in LOOKALIKES:
        changes += [
            ("/uploads", f"website-{look}", {**upload_ok, "website": change("alya")}, 400, "invalid_request"),
            (
                "/uploads",
                f"content-type-{look}",
                {**upload_ok, "content_type": change("image/png")},
                400,
                "invalid_request",
            ),
            (
                "/generate-images",
                f"product-{look}",
                {**generate_ok, "product_type": change("ear")},
                400,
                "unknown_product_type",
            ),
            (
                "/generate-images",
                f"bucket-{look}",
                {**generate_ok, "s3_urls": "s3://" + change("alyaimg") + "/x.jpg"},
                400,
                "source_not_allowed",
            ),
            (
                "/regenerate-image",
                f"job-id-{look}",
                {**regenerate_ok, "job_id": change("a" * 16 + "0" * 16)},
                400,
                "invalid_request",
            ),
        ]
    changes += [
        ("/uploads", "filename-line-separator", {**upload_ok, "filename": "a\u2028b.png"}, 400, "invalid_filename"),
        (
            "/uploads",
            "filename-paragraph-separator",
            {**upload_ok, "filename": "a\u2029b.png"},
            400,
            "invalid_filename",
        ),
        (
            "/uploads",
            "filename-replacement-character",
            {**upload_ok, "filename": "a\ufffdb.png"},
            400,
            "invalid_filename",
        ),
        ("/uploads", "content-type-uppercase", {**upload_ok, "content_type": "IMAGE/PNG"}, 400, "invalid_request"),
        (
            "/generate-images",
            "scheme-fullwidth",
            {**generate_ok, "s3_urls": "\uff53\uff13://alyaimg/x.jpg"},
            400,
            "source_not_allowed",
        ),
        # Hosts NFKC turns into a separator (U+FF0F ／, U+FF03 ＃, U+FF1A ：, U+2100 ℀ = a/c): urllib
        # refuses to split them (a ValueError that was a 500); not a storefront bucket.
        (
            "/generate-images",
            "host-fullwidth-solidus",
            {**generate_ok, "s3_urls": "s3://alyaimg\uff0fx.jpg"},
            400,
            "source_not_allowed",
        ),
        (
            "/generate-images",
            "host-fullwidth-number-sign",
            {**generate_ok, "s3_urls": "s3://alyaimg\uff03x.jpg"},
            400,
            "source_not_allowed",
        ),
        (
            "/generate-images",
            "host-fullwidth-colon",
            {**generate_ok, "s3_urls": "s3://aly\uff1aaimg/x.jpg"},
            400,
            "source_not_allowed",
        ),
        (
            "/generate-images",
            "host-account-of",
            {**generate_ok, "s3_urls": "s3://alyaimg\u2100/x.jpg"},
            400,
            "source_not_allowed",
        ),
        (
            "/generate-images",
            "https-host-fullwidth-solidus",
            {**generate_ok, "s3_urls": "https://alyaimg.s3.amazonaws.com\uff0fx.jpg"},
            400,
            "source_not_allowed",
        ),
        (
            "/generate-images",
            "bucket-uppercase",
            {**generate_ok, "s3_urls": "s3://ALYAIMG/x.jpg"},
            400,
            "source_not_allowed",
        ),
        (
            "/generate-images",
            "image-types-fullwidth-digit",
            {**generate_ok, "image_types": ["\uff11"]},
            400,
            "invalid_request",
        ),
        (
            "/regenerate-image",
            "job-id-arabic-indic-digits",
            {**regenerate_ok, "job_id": "\u0660" * 32},
            400,
            "invalid_request",
        ),
        (
            "/regenerate-image",
            "job-id-fullwidth-digits",
            {**regenerate_ok, "job_id": "\uff10" * 32},
            400,
            "invalid_request",
        ),
        (
            "/regenerate-image",
            "job-id-trailing-newline",
            {**regenerate_ok, "job_id": JOB + "\n"},
            400,
            "invalid_request",
        ),
        # Accepted: product_type is folded (trimmed, lower-cased) to one canonical product before
        # anything is stored, and Python trims Unicode spaces too; the request then stops at the
        # missing source object (404), which writes nothing.
        (
            "/generate-images",
            "product-unicode-space-accepted",
            {**generate_ok, "product_type": "\u3000EAR\u00a0"},
            404,
            "source_not_found",
        ),
        # Accepted: an S3 key is bytes; a decomposed é names another object than a composed one,
        # and the lookup says it does not exist (404) rather than guessing.
        (
            "/generate-images",
            "key-nfd-accepted",
            {**generate_ok, "s3_urls": "s3://alyaimg/catalogue/e\u0301.jpg"},
            404,
            "source_not_found",
        ),
    ]
    return [
        Case(f"{route[1:]}:{name}", "POST", route, s, code, route, {"json": body})
        for route, name, body, s, code in changes
    ] + [
        # A JSON route takes the storefront from its body: one in the query string is refused, not ignored.
        Case(
            f"{route[1:]}:website-in-the-query",
            "POST",
            route,
            400,
            "unknown_parameter",
            route,
            {"json": body, "params": {"website": "blysk"}},
        )
        for route, body in (("/uploads", upload_ok), ("/generate-images", generate_ok))
    ]


def numeric_edge_cases() -> list[Case]:
    generate_ok = {"s3_urls": "s3://alyaimg/catalogue/none.jpg", "product_type": "ear", "image_types": [1]}

    def raw(route: str, text: bytes) -> dict[str, Any]:
        return {"data": text, "headers": {"Content-Type": "application/json"}}

    def dimensions(width: str, height: str = "5") -> bytes:
        text = json.dumps({**generate_ok, "dimensions_mm": {"width": "@w", "height": "@h"}}).encode()
        return text.replace(b'"@w"', width.encode()).replace(b'"@h"', height.encode())

    regenerate = '{"job_id": "' + JOB + '", "image_type": @}'
    edges: list[tuple[str, str, bytes, int, str]] = [
        ("/generate-images", "width-just-over-500", dimensions("500.0000001"), 400, "invalid_request"),
        ("/generate-images", "width-just-under-0.01", dimensions("0.0099999"), 400, "invalid_request"),
        ("/generate-images", "width-negative-zero-int", dimensions("-0"), 400, "invalid_request"),
        ("/generate-images", "width-1e3", dimensions("1e3"), 400, "invalid_request"),
        # Accepted: the limits themselves (0.01 and 500 mm) and exponent forms of numbers inside
        # them are numbers in range; the request stops at the missing source (404, nothing written).
        ("/generate-images", "width-at-limits-accepted", dimensions("500", "0.01"), 404, "source_not_found"),
        ("/generate-images", "width-exponent-accepted", dimensions("1E2", "5e0"), 404, "source_not_found"),
        (
            "/generate-images",
            "image-types-exponent",
            json.dumps(generate_ok).encode().replace(b"[1]", b"[1e0]"),
            400,
            "invalid_request",
        ),
        (
            "/generate-images",
            "image-types-2-pow-64",
            json.dumps(generate_ok).encode().replace(b"[1]", str([2**64]).encode()),
            400,
            "unknown_image_type",
        ),
        ("/regenerate-image", "image-type-negative", regenerate.replace("@", "-1").encode(), 400, "invalid_request"),
        (
            "/regenerate-image",
            "image-type-2-pow-64-plus-1",
            regenerate.replace("@", str(2**64 + 1)).encode(),
            400,
            "invalid_request",
        ),
        ("/regenerate-image", "image-type-exponent", regenerate.replace("@", "1e0").encode(), 400, "invalid_request"),
        (
            "/regenerate-image",
            "image-type-fraction-zero",
            regenerate.replace("@", "1.0").encode(),
            400,
            "invalid_request",
        ),
    ]
    return [
        Case(f"{route[1:]}:{name}", "POST", route, s, code, route, raw(route, text))
        for route, name, text, s, code in edges
    ]


def path_unicode_cases() -> list[Case]:
    upload = "/uploads/{upload_id}"
    return [
        Case("jobs:fullwidth-digits", "GET", "/jobs/" + "%EF%BC%90" * 32, 400, "invalid_request", "/jobs/{job_id}"),
        Case("jobs:trailing-newline", "GET", "/jobs/" + "0" * 32 + "%0A", 400, "invalid_request", "/jobs/{job_id}"),
        Case("jobs:arabic-indic-digits", "GET", "/jobs/" + "%D9%A0" * 32, 400, "invalid_request", "/jobs/{job_id}"),
        Case("uploads-id:fullwidth-f", "GET", "/uploads/" + "%EF%BD%86" * 32, 400, "invalid_request", upload),
        Case(
            "uploads-id:website-zwj",
            "GET",
            "/uploads/" + "f" * 32,
            400,
            "invalid_request",
            upload,
            {"params": {"website": "al\u200dya"}},
        ),
        Case(
            "uploads-id:website-twice",
            "GET",
            "/uploads/" + "f" * 32 + "?website=alya&website=blysk",
            400,
            "invalid_request",
            upload,
        ),
    ]


def unicode_and_field_cases() -> list[Case]:
    return form_field_cases() + json_unicode_cases() + numeric_edge_cases() + path_unicode_cases()
