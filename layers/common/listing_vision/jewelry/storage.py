"""Product photos in each storefront's private bucket.

Keys are generated from the content (`catalogue/<sha256[:2]>/<sha256>.<ext>`), never from the
uploaded filename, so they are safe, and two identical uploads can only ever write one object.
The filename is kept as metadata (percent-encoded: S3 metadata is ASCII) and returned as
`image_name`. Callers get a stable CDN URL or a presigned GET URL (`links.py`).
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from botocore.exceptions import ClientError

from listing_vision import aws
from listing_vision.config import Settings, Storefront, get_settings
from listing_vision.errors import InvalidRequest
from listing_vision.imaging.decode import MEDIA_TYPES
from listing_vision.jewelry import links
from listing_vision.jewelry.links import CATALOGUE_PREFIX

EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
# A filename is kept as S3 user metadata, which AWS caps at 2 KB (keys and values, UTF-8) and which
# percent-encoding can triple: 255 UTF-8 bytes (a file system's own limit) fits with room to spare.
MAX_FILENAME_BYTES = 255


@dataclass(frozen=True)
class StoredImage:
    bucket: str
    key: str

    @property
    def s3_uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @classmethod
    def from_uri(cls, uri: str) -> StoredImage:
        parts = urlsplit(uri)
        if parts.scheme != "s3" or not parts.netloc or not parts.path.strip("/"):
            raise InvalidRequest(f"Not an S3 location: {uri!r}.", code="invalid_s3_location")
        return cls(parts.netloc, parts.path.lstrip("/"))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def catalogue_key(sha256: str, image_format: str) -> str:
    return f"{CATALOGUE_PREFIX}{sha256[:2]}/{sha256}.{EXTENSIONS.get(image_format, 'bin')}"


# Characters a filename may not hold: they are echoed into responses and S3 metadata, where control
# characters (NUL, newlines: Cc) cut or forge text, lone surrogates (Cs) are not UTF-8 at all, and
# bidirectional controls reorder what a person reads ("ring\u202egpj.exe" shows as "ringexe.jpg"),
# the line and paragraph separators U+2028/U+2029 (Zl, Zp) break lines as a newline does (in logs, in
# JavaScript before ES2019), and U+FFFD is what a decoder puts where bytes were lost: a name holding
# it is not the name the client has (the gateway turns a JSON body's invalid UTF-8 into U+FFFD).
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
NOT_A_NAME = BIDI_CONTROLS | {"\ufffd"}
REFUSED_CATEGORIES = ("Cc", "Cs", "Zl", "Zp")


def check_filename(name: str | None) -> None:
    """Refuse a filename that would not fit S3's metadata limit (AWS would refuse the write: a 500),
    or that holds a control, bidirectional-control, line- or paragraph-separator, surrogate or
    replacement character (refused, not stripped: a name silently changed is not the name sent)."""
    bad = sorted({c for c in name or "" if c in NOT_A_NAME or unicodedata.category(c) in REFUSED_CATEGORIES})
    if bad:
        shown = ", ".join(f"U+{ord(c):04X}" for c in bad[:5])
        raise InvalidRequest(
            f"The filename holds control, bidirectional-control or separator characters ({shown}).",
            code="invalid_filename",
            details={"fields": [{"field": "filename", "problem": f"holds {shown}"}]},
        )
    if name is not None and len(name.encode("utf-8", errors="surrogatepass")) > MAX_FILENAME_BYTES:
        raise InvalidRequest(
            f"The filename is {len(name.encode('utf-8', errors='surrogatepass')):,} bytes long; "
            f"at most {MAX_FILENAME_BYTES} bytes (UTF-8) are accepted.",
            code="filename_too_long",
            details={"fields": [{"field": "filename", "problem": f"longer than {MAX_FILENAME_BYTES} bytes"}]},
        )


def original_name(metadata: dict[str, str]) -> str | None:
    value = metadata.get("original-name")
    return unquote(value) if value else None


MISSING = ("404", "NoSuchKey", "NotFound")


class ImageStore:
    """The storefronts' buckets (and the generated images' bucket): every S3 call the jewelry
    services make goes through here, so a service is handed its object storage rather than
    building a client."""

    def __init__(self, s3: Any, settings: Settings):
        self.s3 = s3
        self.settings = settings

    @classmethod
    def from_settings(cls) -> ImageStore:
        return cls(aws.client("s3"), get_settings())

    # --- where -------------------------------------------------------------------------------
    def bucket_for(self, storefront: Storefront) -> str:
        return self.settings.bucket_for(storefront)

    def storefront_of_bucket(self, bucket: str) -> Storefront | None:
        for storefront in self.settings.storefront_names:
            if self.settings.bucket_for(storefront) == bucket:
                return storefront
        return None

    # --- catalogue photos ------------------------------------------------------------------------
    def put_image(
        self,
        storefront: Storefront,
        data: bytes,
        sha256: str,
        image_format: str,
        original_name: str | None,
        upload_id: str | None = None,
    ) -> StoredImage:
        """Write the photo under its content key (idempotent: the same bytes always land on the same key).
        A presigned upload's copy names its upload id, so a retry knows the object as its own."""
        image = StoredImage(self.bucket_for(storefront), catalogue_key(sha256, image_format))
        metadata = {"sha256": sha256, "website": storefront}
        if original_name:
            metadata["original-name"] = quote(original_name, safe="")
        if upload_id:
            metadata["upload-id"] = upload_id
        self.put(image, data, MEDIA_TYPES.get(image_format, "application/octet-stream"), metadata)
        return image

    def put(self, image: StoredImage, data: bytes, content_type: str, metadata: dict[str, str] | None = None) -> None:
        self.s3.put_object(
            Bucket=image.bucket, Key=image.key, Body=data, ContentType=content_type, Metadata=metadata or {}
        )

    def delete(self, image: StoredImage) -> None:
        """Remove a stored photo (one that lost a near-duplicate race, before anyone was told of it)."""
        self.s3.delete_object(Bucket=image.bucket, Key=image.key)

    def head(self, image: StoredImage) -> dict[str, Any] | None:
        """The object's size, metadata and type; None when it is not there."""
        try:
            return dict(self.s3.head_object(Bucket=image.bucket, Key=image.key))
        except ClientError as error:
            if error.response["Error"]["Code"] in MISSING:
                return None
            raise

    def read(self, image: StoredImage) -> bytes:
        return bytes(self.s3.get_object(Bucket=image.bucket, Key=image.key)["Body"].read())

    def read_with_etag(self, image: StoredImage) -> tuple[bytes, str]:
        """The object's bytes and the ETag of that version (`overwrites.py` tells by it whether the key
        still holds them)."""
        response = self.s3.get_object(Bucket=image.bucket, Key=image.key)
        return bytes(response["Body"].read()), str(response.get("ETag", ""))

    def first_key(self, bucket: str, prefix: str) -> str | None:
        keys, _ = self.list_page(bucket, prefix, "", 1)
        return keys[0] if keys else None

    def keys(self, bucket: str, prefix: str) -> Iterator[str]:
        """Every key under `prefix`, in key order, a page at a time."""
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            yield from (str(item["Key"]) for item in page.get("Contents", []))

    def list_page(self, bucket: str, prefix: str, start_after: str, max_keys: int) -> tuple[list[str], bool]:
        """Up to `max_keys` keys after `start_after`, in key order, and whether more follow."""
        listed = self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix, StartAfter=start_after, MaxKeys=max_keys)
        return [str(item["Key"]) for item in listed.get("Contents", [])], bool(listed.get("IsTruncated"))

    # --- tags: what became of an object indexed where it lies ------------------------------------
    def tags(self, image: StoredImage) -> dict[str, str]:
        tag_set = self.s3.get_object_tagging(Bucket=image.bucket, Key=image.key)["TagSet"]
        return {t["Key"]: t["Value"] for t in tag_set}

    def tag(self, image: StoredImage, tags: dict[str, str]) -> None:
        self.s3.put_object_tagging(
            Bucket=image.bucket,
            Key=image.key,
            Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]},
        )

    # --- what callers get -------------------------------------------------------------------------
    def url(self, image: StoredImage) -> str:
        """What callers get for a stored image (`links.py`): its stable CDN URL (`image_links` `cdn`) or API
        path (`private`) where one serves it, else a presigned GET URL, or the plain object URL."""
        settings = self.settings
        stable = None
        if settings.image_links == "cdn":
            stable = links.cdn_url(settings, image.bucket, image.key)
        elif settings.image_links == "private":
            stable = links.private_path(settings, image.bucket, image.key)
        if stable:
            return stable
        if settings.presign_urls:
            return self.presigned_url(image)
        if settings.aws_endpoint_url:
            return f"{settings.aws_endpoint_url.rstrip('/')}/{image.bucket}/{quote(image.key)}"
        return f"https://{image.bucket}.s3.{settings.aws_region}.amazonaws.com/{quote(image.key)}"

    def presigned_url(self, image: StoredImage) -> str:
        """A presigned GET URL, good for `presign_expiry_s` (what a private link redirects to)."""
        return str(
            self.s3.generate_presigned_url(
                "get_object",
                Params={"Bucket": image.bucket, "Key": image.key},
                ExpiresIn=self.settings.presign_expiry_s,
            )
        )

    def presigned_post(
        self, image: StoredImage, fields: dict[str, str], conditions: list[Any], expires_in: int
    ) -> dict[str, Any]:
        return dict(
            self.s3.generate_presigned_post(
                Bucket=image.bucket, Key=image.key, Fields=fields, Conditions=conditions, ExpiresIn=expires_in
            )
        )
