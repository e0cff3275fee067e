"""PNG encoding for the images the generation worker makes, 2.5× faster than Pillow's at the
same size.

Pillow picks a row filter per row by trying four of them, which is most of an encode's time and
cannot be turned off. Photographs and composites compress as well with the Up filter on every row,
which numpy applies to the whole image at once; what is left is zlib at level 1 with the
run-length strategy (filtered rows are mostly short runs), which releases the GIL while it
compresses. The container is PNG's own: signature, IHDR, one IDAT, IEND, each chunk with its CRC.
Measured on a 1,024 px composite (`make bench BENCH_ARGS=generation` measures the whole step):
36 ms and 1.73 MB, against Pillow's 92 ms and 1.71 MB at level 1 with Z_RLE, and 208 ms and
1.70 MB at its default level 6.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
from PIL import Image

SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOUR_TYPES = {"L": 0, "RGB": 2, "LA": 4, "RGBA": 6}  # 8 bits per channel
UP = 2  # PNG filter type: each byte minus the byte above it


def encode_png(image: Image.Image) -> bytes:
    """The image as PNG bytes (8 bits per channel; other modes are converted to RGB or RGBA)."""
    if image.mode not in COLOUR_TYPES:
        image = image.convert("RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB")
    pixels = np.asarray(image)
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1)
    filtered = np.empty((height, rows.shape[1] + 1), dtype=np.uint8)
    filtered[:, 0] = UP
    filtered[0, 1:] = rows[0]  # the row above the first is zeros
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # uint8: modulo 256, as PNG wants
    compressor = zlib.compressobj(1, zlib.DEFLATED, zlib.MAX_WBITS, 8, zlib.Z_RLE)
    data = compressor.compress(filtered.data) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, COLOUR_TYPES[image.mode], 0, 0, 0)
    return SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
