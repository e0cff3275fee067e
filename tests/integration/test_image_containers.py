"""Image containers the decoder must accept, through the local gateway and the real stores: what
phone cameras and editors write around an ordinary photo (MPO frames, large PNG metadata)."""

from __future__ import annotations

import io
from urllib.parse import urlsplit

import numpy as np
import pytest
import requests
from PIL import Image, PngImagePlugin

from listing_vision import aws
from local.stack import LocalStack


def photo(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A smooth random scene (as tests.images.fresh_image), as a Pillow image."""
    coarse = np.random.default_rng(seed).integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)


def mpo(first: Image.Image, *more: Image.Image) -> bytes:
    """A JPEG followed by more frames, as a phone camera writes it (Pillow reads it as MPO)."""
    buffer = io.BytesIO()
    first.save(buffer, "MPO", save_all=True, append_images=list(more), quality=92)
    return buffer.getvalue()


def png(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **options)
    return buffer.getvalue()


def search(local_stack: LocalStack, data: bytes, name: str) -> requests.Response:
    return requests.post(
        f"{local_stack.url}/image_similarity_search",
        files={"file": (name, data, "application/octet-stream")},
        data={"website": "alya"},
        timeout=60,
    )


def stored_content_type(s3_url: str) -> str:
    bucket, key = urlsplit(s3_url).path.lstrip("/").split("/", 1)
    return str(aws.client("s3").head_object(Bucket=bucket, Key=key)["ContentType"])


def test_an_mpo_jpeg_is_accepted_as_a_jpeg_of_its_first_frame(local_stack: LocalStack) -> None:
    # Given a phone camera's JPEG: the photo, then a second frame (a depth map or preview)
    first, second = photo(31_001), photo(31_002)
    data = mpo(first, second)
    assert Image.open(io.BytesIO(data)).format == "MPO"
    # When it is uploaded
    answer = search(local_stack, data, "phone.jpg")
    # Then it is stored as a JPEG, not refused as an unsupported format
    assert answer.status_code == 200, answer.text
    assert answer.json()["duplicate_found"] is False
    assert stored_content_type(answer.json()["s3_url"]) == "image/jpeg"
    # And it is the first frame that was indexed: the plain JPEG of that frame is its near duplicate
    plain = io.BytesIO()
    first.save(plain, "JPEG", quality=80)
    again = search(local_stack, plain.getvalue(), "plain.jpg").json()
    assert again["duplicate_found"] is True and again["results"][0]["match"] == "near"


@pytest.mark.parametrize("chunk", ["zTXt", "iTXt", "iCCP"])
def test_a_png_with_large_metadata_is_accepted(local_stack: LocalStack, chunk: str) -> None:
    # Given a PNG whose metadata chunk inflates to 3 MB (over Pillow's default 1 MB per chunk)
    image, large = photo(31_100 + ["zTXt", "iTXt", "iCCP"].index(chunk)), "metadata " * 350_000
    if chunk == "iCCP":
        data = png(image, icc_profile=large.encode())
    else:
        info = PngImagePlugin.PngInfo()
        (info.add_text if chunk == "zTXt" else info.add_itxt)("XML:com.adobe.xmp", large, zip=True)  # type: ignore[operator]
        data = png(image, pnginfo=info)
    assert chunk.encode() in data and len(data) < 1_000_000
    # When it is uploaded
    answer = search(local_stack, data, "editor.png")
    # Then it is stored, not called corrupt
    assert answer.status_code == 200, answer.text
    assert stored_content_type(answer.json()["s3_url"]) == "image/png"


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


CONTAINERS = {
    "apng": lambda a, b: (encoded(a, "PNG", save_all=True, append_images=[b]), "image/png"),
    "animated-webp": lambda a, b: (encoded(a, "WEBP", save_all=True, append_images=[b]), "image/webp"),
    "cmyk-jpeg": lambda a, b: (encoded(a.convert("CMYK"), "JPEG"), "image/jpeg"),
    "palette-with-transparency": lambda a, b: (encoded(a.quantize(64), "PNG", transparency=0), "image/png"),
    "gray-alpha-png": lambda a, b: (encoded(a.convert("LA"), "PNG"), "image/png"),
}


@pytest.mark.parametrize("kind", list(CONTAINERS))
def test_other_containers_of_an_accepted_format_are_stored_as_their_first_frame(
    local_stack: LocalStack, kind: str
) -> None:
    # Given a photo in a container cameras and editors write: animated (several frames), CMYK, a
    # palette with a transparent entry, grayscale with alpha
    seed = 31_200 + 2 * list(CONTAINERS).index(kind)
    data, media_type = CONTAINERS[kind](photo(seed), photo(seed + 1))
    # When it is uploaded
    answer = search(local_stack, data, f"{kind}.img")
    # Then it is accepted and stored under its format's media type
    assert answer.status_code == 200, answer.text
    assert answer.json()["duplicate_found"] is False
    assert stored_content_type(answer.json()["s3_url"]) == media_type
