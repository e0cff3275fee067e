"""The worker's PNG encoder: what Pillow (and so every browser and storefront) decodes from it is
exactly the image encoded, whatever its mode and size."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from listing_vision.imaging.png import encode_png

PHOTO = Path(__file__).resolve().parents[1] / "data" / "photos" / "image1.jpg"


def noisy(mode: str, size: tuple[int, int], seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    bands = len(Image.new(mode, (1, 1)).getbands())
    pixels = rng.integers(0, 256, (size[1], size[0], bands), dtype=np.uint8)
    return Image.fromarray(pixels[:, :, 0] if bands == 1 else pixels, mode)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
@pytest.mark.parametrize("size", [(1, 1), (1, 7), (13, 1), (257, 129)], ids=str)
def test_every_pixel_comes_back_as_encoded(mode: str, size: tuple[int, int]) -> None:
    # Given an image of random pixels (every byte value, every filter difference wrapping)
    image = noisy(mode, size)
    # When it is encoded and decoded by Pillow
    decoded = Image.open(io.BytesIO(encode_png(image)))
    decoded.load()  # checks every chunk's CRC and the zlib stream's checksum
    # Then it is a PNG of the same mode, size and pixels
    assert (decoded.format, decoded.mode, decoded.size) == ("PNG", mode, size)
    assert np.array_equal(np.asarray(decoded), np.asarray(image))


def test_other_modes_are_converted_keeping_their_colours() -> None:
    # Given a palette image, one with transparency, and a one-bit image
    palette = noisy("RGB", (31, 17)).convert("P")
    transparent = palette.copy()
    transparent.info["transparency"] = 0
    bits = noisy("L", (31, 17)).convert("1")
    for image, mode in ((palette, "RGB"), (transparent, "RGBA"), (bits, "RGB")):
        decoded = Image.open(io.BytesIO(encode_png(image)))
        # Then each comes back as what Pillow converts it to
        assert decoded.mode == mode
        assert np.array_equal(np.asarray(decoded), np.asarray(image.convert(mode)))


def test_a_photograph_compresses_like_pillows_own_encoder() -> None:
    # Given a photograph scaled to the worker's canvas
    photo = Image.open(PHOTO).convert("RGB").resize((1024, 1024))
    ours = len(encode_png(photo))
    buffer = io.BytesIO()
    photo.save(buffer, "PNG", compress_level=1)
    # Then it is no more than a quarter larger than Pillow's level 1 (one filter, not four tried per row)
    assert ours <= 1.25 * len(buffer.getvalue())
