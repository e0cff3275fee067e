"""Decoding uploads safely, with the platform's error codes (one decoder: the serving core's)."""

from __future__ import annotations

from PIL import Image

from listing_vision.embeddings.clip_onnx import DEFAULT_MAX_PIXELS, InvalidImageError, decode_image
from listing_vision.errors import InvalidRequest, PayloadTooLarge, UnsupportedMedia, VisionError

# Media type of each accepted format (Pillow's format names), for uploads, stores and providers.
MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


def image_error(error: InvalidImageError) -> VisionError:
    """The domain error for a rejected image, keeping its stable code."""
    if error.code == "unsupported_image_format":
        return UnsupportedMedia(str(error), code=error.code)
    if error.code == "decompression_bomb":
        return PayloadTooLarge(str(error), code=error.code)
    return InvalidRequest(str(error), code=error.code)


def load_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode an upload or raise the matching domain error (nothing is decoded past the pixel limit)."""
    try:
        return decode_image(data, max_pixels)
    except InvalidImageError as error:
        raise image_error(error) from error
