"""A catalogue photo's id: the SHA-256 of its bytes, in lowercase hex (`storage.sha256_hex`).

Routes, links, S3 keys and the catalogue table's items all carry it; every pattern that finds one is
built from `SHA256_HEX`, so they cannot disagree on what an id is.
"""

from __future__ import annotations

import re

SHA256_HEX = "[0-9a-f]{64}"
IMAGE_ID_PATTERN = rf"^{SHA256_HEX}$"  # a whole value: a route's path or query parameter
_IMAGE_ID = re.compile(SHA256_HEX)


def is_image_id(value: object) -> bool:
    """A string that is an id, and nothing else."""
    return isinstance(value, str) and _IMAGE_ID.fullmatch(value) is not None
