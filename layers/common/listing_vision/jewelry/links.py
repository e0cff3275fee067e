"""What a stored image's link is (`IMAGE_LINKS`), and which objects a CDN may serve.

- `cdn`: a stable URL, `<the bucket's CDN base URL>/<key>` (`CDN_URLS`, bucket → base URL): on AWS a
  CloudFront distribution per bucket with origin access control (infra/constructs/cdn.py), locally the
  local stack's CDN server (local/cdn.py). It does not expire, so a link kept today works tomorrow.
- `private`: an API path that checks the caller's key and answers 302 to a fresh presigned URL:
  `/images/{id}?website=` for a catalogue photo, `/jobs/{id}/images/{type}` and `/jobs/{id}/zip` for a
  job's outputs. It never expires either, and only the storefront's clients can follow it.
- `presigned`: a presigned GET URL (`PRESIGN_EXPIRY_S`), what every answer held before.

Only product photos meant to be shown are served: a storefront bucket's `catalogue/` prefix and the
generated bucket (a job's images and ZIP). Uploads in `incoming/` and anything else stay private: their
links are presigned in every mode. `READABLE_PREFIXES` is the one declaration: the CloudFront bucket
policies and the local CDN server are both made from it.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import quote, urlsplit

from listing_vision.config import Settings
from listing_vision.jewelry.image_ids import SHA256_HEX

LinkMode = Literal["cdn", "private", "presigned"]
CATALOGUE_PREFIX = "catalogue/"
STOREFRONT_PREFIXES: tuple[str, ...] = (CATALOGUE_PREFIX,)  # a storefront bucket: its catalogue, not uploads
GENERATED_PREFIXES: tuple[str, ...] = ("",)  # the generated bucket holds only a job's images and ZIP


def readable_prefixes(settings: Settings) -> dict[str, tuple[str, ...]]:
    """Bucket → the key prefixes a CDN may read from it ("" is the whole bucket)."""
    readable = {bucket: STOREFRONT_PREFIXES for bucket in settings.storefronts.values()}
    readable[settings.generated_bucket] = GENERATED_PREFIXES
    return readable


def is_readable(settings: Settings, bucket: str, key: str) -> bool:
    prefixes = readable_prefixes(settings).get(bucket, ())
    return bool(key) and ".." not in key.split("/") and any(key.startswith(prefix) for prefix in prefixes)


def cdn_url(settings: Settings, bucket: str, key: str) -> str | None:
    """The object's CDN URL, or None where no CDN serves it (no base URL for the bucket, or a key
    outside the readable prefixes)."""
    base = settings.cdn_urls.get(bucket)
    if not base or not is_readable(settings, bucket, key):
        return None
    return f"{base.rstrip('/')}/{quote(key)}"


def from_cdn_url(settings: Settings, url: str) -> tuple[str, str] | None:
    """(bucket, key) of a URL `cdn_url` made (a client sends back the link it was given), or None; the
    key as the URL spells it (percent-encoded, as `resolve_source` takes every URL's)."""
    for bucket, base in settings.cdn_urls.items():
        prefix = base.rstrip("/") + "/"
        if base and url.startswith(prefix):
            return bucket, urlsplit(url[len(prefix) :]).path
    return None


GENERATED_IMAGE = re.compile(r"(?P<website>[^/]+)/(?P<job>[^/]+)/(?P<type>\d+)-[^/]+")
GENERATED_ZIP = re.compile(r"(?P<website>[^/]+)/(?P<job>[^/]+)/catalogue\.zip")
CATALOGUE_PHOTO = re.compile(re.escape(CATALOGUE_PREFIX) + rf"[0-9a-f]{{2}}/(?P<id>{SHA256_HEX})\.\w+")


def private_path(settings: Settings, bucket: str, key: str) -> str | None:
    """The API path that redirects to the object (`private`), or None where no route serves it."""
    if bucket == settings.generated_bucket:
        if found := GENERATED_ZIP.fullmatch(key):
            return f"/jobs/{found['job']}/zip"
        if found := GENERATED_IMAGE.fullmatch(key):
            return f"/jobs/{found['job']}/images/{found['type']}"
        return None
    storefront = next((name for name, named in settings.storefronts.items() if named == bucket), None)
    found = CATALOGUE_PHOTO.fullmatch(key)
    return f"/images/{found['id']}?website={storefront}" if storefront and found else None


PRIVATE_PHOTO = re.compile(rf"(?:https?://[^?#\s]+)?/images/(?P<id>{SHA256_HEX})\?website=(?P<website>[a-z0-9-]+)")


def from_private_path(url: str) -> tuple[str, str] | None:
    """(website, image id) of a catalogue photo's private link (`private_path`; the API's URL before it
    allowed), or None."""
    found = PRIVATE_PHOTO.fullmatch(url)
    return (found["website"], found["id"]) if found else None
