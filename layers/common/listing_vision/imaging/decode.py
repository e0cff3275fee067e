"""Decoding uploads safely, with the platform's error codes: the one decoding path of every route,
trigger and worker (the serving core's decoder, then the checks for content we can work with)."""

from __future__ import annotations

from typing import Any

from PIL import Image

from listing_vision.errors import InvalidRequest, PayloadTooLarge, Unprocessable, UnsupportedMedia, VisionError
from listing_vision.imaging.pixels import DEFAULT_MAX_PIXELS, InvalidImageError, as_rgb, decode_image

# Media type of each accepted format (Pillow's format names), for uploads, stores and providers.
MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
MIN_IMAGE_SIDE = 16  # px; below this nothing can be measured, segmented or recognised
BLANK_SPREAD = 8  # grey levels: an image whose (reduced) pixels all lie within this is blank
BLANK_PROBE_PX = 256  # blank is judged on a copy this large (camera noise averages out)


def image_error(error: InvalidImageError) -> VisionError:
    """The domain error for a rejected image, keeping its stable code."""
    if error.code == "unsupported_image_format":
        return UnsupportedMedia(str(error), code=error.code)
    if error.code == "decompression_bomb":
        return PayloadTooLarge(str(error), code=error.code)
    return InvalidRequest(str(error), code=error.code)


def load_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode an upload or raise the matching domain error (nothing is decoded past the pixel limit).

    The image comes back fully loaded, at most 8 bits per channel (16-bit grayscale scaled), at
    least `MIN_IMAGE_SIDE` px on each side (`image_too_small`, 422) and not blank: an image of one
    flat colour (all white, all black) has no product to find, describe or match, so it is refused
    (`blank_image`, 422) rather than embedded as a vector that matches nothing or captioned as a
    piece filling the frame."""
    try:
        image = decode_image(data, max_pixels)
    except InvalidImageError as error:
        raise image_error(error) from error
    width, height = image.size
    if min(width, height) < MIN_IMAGE_SIDE:
        raise Unprocessable(
            f"The image is {width}×{height} px; each side must be at least {MIN_IMAGE_SIDE} px.",
            code="image_too_small",
            details={"width": width, "height": height, "min_side": MIN_IMAGE_SIDE},
        )
    if is_blank(image):
        raise Unprocessable("The image is one flat colour: there is no product in it.", code="blank_image")
    return image


def is_blank(image: Image.Image) -> bool:
    """True when every pixel of the image as it is seen (reduced, transparency composited onto white
    by `as_rgb`, as every embedding and measurement sees it) lies within `BLANK_SPREAD` levels of the
    others in each channel. Judging the raw bands instead would call a white image with a varying
    alpha channel a photo, and a palette image whose every colour is transparent one too: both show
    as plain white."""
    probe = image.copy()
    probe.thumbnail((BLANK_PROBE_PX, BLANK_PROBE_PX))  # a palette image stays one (nearest neighbour)
    bands: Any = as_rgb(probe).getextrema()
    return all(high - low <= BLANK_SPREAD for low, high in bands)  # one (low, high) per band
