"""Images made for tests: unrelated to each other and to the real photos, reproducible by seed."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def fresh_image(seed: int, size: tuple[int, int] = (320, 240), fmt: str = "JPEG") -> bytes:
    """A smooth random scene (low-frequency content, like a photo): distinct seeds are unrelated."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)
    return encode(image, fmt)


def encode(image: Image.Image, fmt: str = "JPEG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def resized_copy(data: bytes, factor: float = 0.5, quality: int = 30) -> bytes:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    small = image.resize((max(1, int(image.width * factor)), max(1, int(image.height * factor))))
    return encode(small, "JPEG", quality=quality)
