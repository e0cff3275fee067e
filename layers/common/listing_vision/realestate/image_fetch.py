"""Listing images fetched only from allowed sources: the URL prefixes of LISTING_IMAGE_SOURCES.

No request goes anywhere else (no server-side request forgery): S3 objects are read with the
function's own credentials, HTTP(S) images without following redirects, and both are capped at
MAX_LISTING_IMAGE_BYTES.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import requests

from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.errors import InvalidRequest


def allowed(url: str, sources: str) -> bool:
    prefixes = [p.strip() for p in sources.split(",") if p.strip()]
    try:
        path = urlsplit(url).path
    except ValueError:  # a host urllib refuses (one NFKC turns into a separator): not a source we allow
        return False
    return any(url.startswith(prefix) for prefix in prefixes) and ".." not in path


def fetch_image(url: str) -> bytes:
    """The image bytes, from an allowed S3 bucket or host only."""
    settings = get_settings()
    if not allowed(url, settings.listing_image_sources):
        raise InvalidRequest(f"Images may not be fetched from {url!r}.", code="image_source_not_allowed")
    parts = urlsplit(url)
    limit = settings.max_listing_image_bytes
    if parts.scheme == "s3":
        body = aws.client("s3").get_object(Bucket=parts.netloc, Key=parts.path.lstrip("/"))["Body"]
        data = body.read(limit + 1)
    else:
        with requests.get(url, timeout=(5, 20), stream=True, allow_redirects=False) as response:
            response.raise_for_status()
            data = response.raw.read(limit + 1, decode_content=True)
    if len(data) > limit:
        raise InvalidRequest(f"{url} is larger than {limit:,} bytes.", code="image_too_large")
    return bytes(data)
