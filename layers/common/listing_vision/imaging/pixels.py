"""Decoding untrusted image bytes into 8-bit pixels, and the one conversion to RGB.

Every path that reads an image starts here: the API's uploads (`decode.load_image` adds the
platform's error codes), the Lambda embedder, and the SageMaker container, which copies this module
(`serving/clip/package.py`). So it depends only on numpy and Pillow.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence

import numpy as np
from PIL import ExifTags, Image, ImageOps, PngImagePlugin, UnidentifiedImageError

ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP"})
DEFAULT_MAX_PIXELS = 40_000_000  # ~ 8000 × 5000; larger claims are refused before decoding
# PNG metadata: Pillow inflates every text (tEXt/zTXt/iTXt) and ICC profile (iCCP) chunk when it opens
# a file, and refuses one over PngImagePlugin.MAX_TEXT_CHUNK (1 MB) as if the image were broken;
# editors and cameras write XMP and profiles larger than that. Nothing here reads them, so the caps
# are what a real file carries; they still bound a zlib bomb hidden in metadata (a chunk inflating
# past them is refused), and the pixel limits (max_pixels, Pillow's own) are untouched.
PNG_MAX_METADATA_CHUNK = 16 * 1024 * 1024
PNG_MAX_METADATA = 64 * 1024 * 1024  # all of a file's text chunks together
PngImagePlugin.MAX_TEXT_CHUNK = PNG_MAX_METADATA_CHUNK
PngImagePlugin.MAX_TEXT_MEMORY = PNG_MAX_METADATA
# A JPEG with more frames after the photo (depth maps, previews: what phone cameras write) is MPO to
# Pillow; its first frame is the photo, and it is a JPEG to everything that reads it.
JPEG_WITH_FRAMES = "MPO"


class InvalidImageError(ValueError):
    """The bytes are not an image we accept (undecodable, truncated, unsupported, too many pixels).

    `code` is stable for callers; `status_code` is the HTTP status a server answers with."""

    status_code = 400

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, reduce_to: int | None = None) -> Image.Image:
    """Decode and fully load an image, refusing decompression bombs before any pixel is decoded.

    `reduce_to`: a JPEG is decoded at the smallest of libjpeg's DCT scales (1/2, 1/4, 1/8) that
    keeps both sides at least this many pixels, which is several times cheaper than decoding every
    pixel and then throwing most away; the model side uses it, other formats decode in full.

    Untrusted bytes make Pillow's parsers fail in many ways (OSError for a header cut short,
    SyntaxError, ValueError, struct errors, EOFError, even IndexError): any failure to parse what
    claims to be an image is `corrupt_image`, never an unexpected error."""
    if not data:
        raise InvalidImageError("The file is empty.", "empty_file")
    if data.startswith(PNG_SIGNATURE) and (problem := png_structure_problem(data)):
        raise InvalidImageError(f"The PNG is malformed: {problem}.", "corrupt_image")
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only
    except UnidentifiedImageError as error:
        if claims_accepted_format(data):  # Pillow says "unidentified" for a PNG whose chunks are broken
            raise InvalidImageError("The image header is truncated or corrupt.", "corrupt_image") from error
        raise InvalidImageError("The file is not an image we can read.", "not_an_image") from error
    except Image.DecompressionBombError as error:
        raise InvalidImageError(str(error), "decompression_bomb") from error
    except Exception as error:
        raise InvalidImageError("The image header is truncated or corrupt.", "corrupt_image") from error
    if image.format == JPEG_WITH_FRAMES:
        image.format = "JPEG"  # frame 0, the photo, is what is decoded (Image.open leaves it there)
    if image.format not in ACCEPTED_FORMATS:
        raise InvalidImageError(
            f"{image.format or 'This'} images are not accepted; send JPEG, PNG or WebP.", "unsupported_image_format"
        )
    width, height = image.size
    if width * height > max_pixels:
        raise InvalidImageError(
            f"The image claims {width}×{height} pixels, more than the {max_pixels:,} allowed.", "decompression_bomb"
        )
    if reduce_to is not None and image.format == "JPEG":
        image.draft(image.mode, (reduce_to, reduce_to))
    try:
        image.load()
    except Image.DecompressionBombError as error:
        raise InvalidImageError(str(error), "decompression_bomb") from error
    except Exception as error:
        raise InvalidImageError("The image is truncated or corrupt.", "corrupt_image") from error
    return to_8bit(image)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG's colour types and the bit depths each allows (PNG spec, 11.2.2 IHDR).
PNG_DEPTHS = {0: {1, 2, 4, 8, 16}, 2: {8, 16}, 3: {1, 2, 4, 8}, 4: {8, 16}, 6: {8, 16}}


def png_structure_problem(data: bytes) -> str | None:
    """What breaks the PNG's structure up to its first image data, or None: IHDR must come first
    (13 bytes, once), with a colour type and bit depth the format defines and compression, filter and
    interlace methods it knows; a palette image needs its PLTE before the data. Pillow is lenient
    with some of these: it decodes a palette image without PLTE through a made-up grey palette and
    skips chunks before IHDR, so such a file would be answered as if its pixels were known. Only
    chunk headers are read (each chunk's data skipped by its length), up to the first IDAT; a file
    cut short before it is left to the decoder, which calls it corrupt."""
    if data[12:16] != b"IHDR" or data[8:12] != struct.pack(">I", 13) or len(data) < 8 + 8 + 13:
        return "the first chunk is not a 13-byte IHDR"
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if not width or not height:
        return f"it declares {width}×{height} pixels"
    if depth not in PNG_DEPTHS.get(colour, ()):
        return f"colour type {colour} with bit depth {depth} is not a PNG pixel format"
    if compression or filtering or interlace > 1:
        return "unknown compression, filter or interlace method"
    position, palette = 8 + 8 + 13 + 4, False
    while position + 8 <= len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        if kind == b"IHDR":
            return "IHDR appears twice"
        palette = palette or kind == b"PLTE"
        if kind == b"IDAT":
            return "a palette image has no PLTE before its data" if colour == 3 and not palette else None
        position += 12 + length
    return None


def claims_accepted_format(data: bytes) -> bool:
    """Whether the bytes start with the signature of a format we accept (PNG, JPEG, WebP): such a
    file that cannot be opened is a broken image, not something else."""
    return (
        data.startswith(PNG_SIGNATURE)
        or data.startswith(b"\xff\xd8\xff")
        or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")
    )


def to_8bit(image: Image.Image) -> Image.Image:
    """16-bit (and 32-bit integer) grayscale scaled to 8 bits, everything else as it is. Pillow's
    own conversion clips instead of scaling, which turns a 16-bit PNG export of a photo white.
    Every decoded image passes here (`decode_image`), so nothing downstream sees more than 8 bits."""
    if not (image.mode.startswith("I;16") or image.mode == "I"):
        return image
    if image.mode == "I":  # 32-bit integer pixels (how Pillow loads some 16-bit PNGs): 16-bit values
        pixels = np.asarray(image, dtype=np.float64)
    else:
        pixels = np.asarray(image.convert("I"), dtype=np.float64)
    scaled = Image.fromarray(np.clip(pixels / 257.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    scaled.format = image.format  # keep what was decoded (PNG): stores and media types read it
    scaled.info = dict(image.info)
    return scaled


def decode_images(blobs: Sequence[bytes], max_pixels: int = DEFAULT_MAX_PIXELS) -> list[Image.Image]:
    """`decode_image` for each; the error names the index of the first file refused."""
    images = []
    for index, blob in enumerate(blobs):
        try:
            images.append(decode_image(blob, max_pixels))
        except InvalidImageError as error:
            raise indexed(error, index) from error
    return images


def indexed(error: InvalidImageError, index: int) -> InvalidImageError:
    """The same refusal, naming which image of a batch it was."""
    return InvalidImageError(f"Image {index}: {error}", error.code)


TRANSPARENT_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
BACKDROP = (255, 255, 255)  # what shows through transparency: white, like a product page


def as_rgb(image: Image.Image) -> Image.Image:
    """EXIF orientation applied, 8-bit RGB (16-bit grayscale scaled by `to_8bit`, not clipped),
    transparency composited onto white. Dropping alpha instead would reveal whatever colour the
    transparent pixels happen to hold, which no viewer shows: two uploads that look identical
    would embed differently (and be stored twice). Every embedding, feature and measurement path
    converts here."""
    if image.mode == "RGB" and "transparency" not in image.info and not _turned(image):
        return image  # already upright RGB: no copy (the model side converts each image twice)
    upright = to_8bit(ImageOps.exif_transpose(image))
    if upright.mode not in TRANSPARENT_MODES and "transparency" not in upright.info:
        return upright.convert("RGB")
    rgba = upright.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (*BACKDROP, 255)), rgba).convert("RGB")


def _turned(image: Image.Image) -> bool:
    """An EXIF orientation that `ImageOps.exif_transpose` applies (2 to 8; 1 is upright)."""
    return image.getexif().get(ExifTags.Base.Orientation, 1) in range(2, 9)
