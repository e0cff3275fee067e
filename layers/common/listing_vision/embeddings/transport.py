"""Images as sent to the embedding endpoint: no larger than the model side needs.

Used by Lambda before InvokeEndpoint (`sagemaker.py`) and by the GPU serving benchmark; it needs
Pillow alone.
"""

from __future__ import annotations

import io

from PIL import Image, ImageOps

from listing_vision.imaging.features import MODEL_SIDE_PX
from listing_vision.imaging.pixels import as_rgb, decode_image


def for_transport(image: bytes, max_side: int, max_pixels: int, short_side: int = MODEL_SIDE_PX) -> bytes:
    """The image as sent to the endpoint: unchanged when its short side is at most `short_side` and
    its long side at most `max_side`; otherwise downscaled until both hold (aspect kept, orientation
    applied) and re-encoded (PNG keeps transparency; everything else JPEG at quality 95). A JPEG is
    decoded at reduced scale when it is at least twice the size needed."""
    decoded = decode_image(image, max_pixels, reduce_to=short_side)
    reduced = decoded.size != Image.open(io.BytesIO(image)).size  # decoded at a DCT scale below 1
    upright = ImageOps.exif_transpose(decoded)
    width, height = upright.size
    scale = min(1.0, short_side / min(width, height), max_side / max(width, height))
    if scale == 1.0 and not reduced:
        return image
    if scale < 1.0:
        upright = upright.resize(
            (max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.LANCZOS
        )
    buffer = io.BytesIO()
    if upright.mode in ("RGBA", "LA", "P") and decoded.format == "PNG":
        upright.save(buffer, "PNG")
    else:
        as_rgb(upright).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()
