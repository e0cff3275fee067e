"""The bad-input corpus, part one: the Case shape, image bytes every image route must refuse
(truncated, fake headers, broken PNG chunks and metadata bombs, formats, sizes, blank, 16-bit), and
multipart framing and form fields (tests/integration/bad_input/test_bad_input_corpus.py sends them)."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from tests.images import encode, fresh_image

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


def png_raw(colour: int, depth: int, row_bytes: int, before: bytes = b"", after_ihdr: bytes = b"") -> bytes:
    """A 64×64 PNG written by hand with any colour type and bit depth (legal or not), noisy rows of
    `row_bytes`, and chunks `before` its IHDR or right `after_ihdr` it."""
    rows = np.random.default_rng(colour * 100 + depth).integers(0, 256, (64, row_bytes), dtype=np.uint8)
    raw = b"".join(b"\0" + row.tobytes() for row in rows)
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, depth, colour, 0, 0, 0))
    body = before + ihdr + after_ihdr + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def transparent(pixels: np.ndarray, mode: str, **options: object) -> bytes:
    return encode(Image.fromarray(pixels, mode), "PNG", **options)


NOISE = np.random.default_rng(9_010).integers(0, 256, (300, 400), dtype=np.uint8)
PALETTE = bytes(np.random.default_rng(9_011).integers(0, 256, 768, dtype=np.uint8))


def palette_all_transparent() -> bytes:
    """Noise through a random palette, every entry of which is fully transparent: plain white on screen."""
    image = Image.fromarray(NOISE, "P")
    image.putpalette(PALETTE)
    return encode(image, "PNG", transparency=bytes(256))


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
    # Blank as seen, whatever hides under transparency: white with a varying alpha (white on white),
    # noise under alpha 0, a palette whose every colour is transparent, grey+alpha noise under alpha 0.
    (
        "blank-white-with-varying-alpha",
        transparent(np.dstack([np.full((300, 400, 3), 255, np.uint8), NOISE]), "RGBA"),
        "a.png",
        422,
        "blank_image",
    ),
    (
        "blank-noise-under-alpha-0",
        transparent(np.dstack([NOISE, NOISE[::-1], NOISE[:, ::-1], np.zeros_like(NOISE)]), "RGBA"),
        "a.png",
        422,
        "blank_image",
    ),
    ("blank-palette-all-transparent", palette_all_transparent(), "a.png", 422, "blank_image"),
    (
        "blank-gray-alpha-noise-under-alpha-0",
        transparent(np.dstack([NOISE, np.zeros_like(NOISE)]), "LA"),
        "a.png",
        422,
        "blank_image",
    ),
    # PNG structure Pillow is lenient with or trips on: refused as corrupt, never decoded as garbage.
    ("png-palette-without-plte", png_raw(3, 8, 64), "a.png", 400, "corrupt_image"),
    ("png-palette-16-bit", png_raw(3, 16, 128, after_ihdr=_chunk(b"PLTE", PALETTE)), "a.png", 400, "corrupt_image"),
    (
        "png-first-chunk-not-ihdr",
        png_raw(2, 8, 192, before=_chunk(b"tEXt", b"Comment\x00hi")),
        "a.png",
        400,
        "corrupt_image",
    ),
    ("png-ihdr-twice", png_raw(2, 8, 192, after_ihdr=PNG[8:33]), "a.png", 400, "corrupt_image"),
    ("png-colour-type-5", png_raw(5, 8, 192), "a.png", 400, "corrupt_image"),
    ("png-rgb-4-bit", png_raw(2, 4, 96), "a.png", 400, "corrupt_image"),
    ("png-gray-3-bit", png_raw(0, 3, 24), "a.png", 400, "corrupt_image"),
    ("png-zero-width", png_header(0, 64, zlib.compress(b"\x00")), "a.png", 400, "corrupt_image"),
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
