"""Product photos in each storefront's private bucket.

Keys are generated from the content (`catalogue/<sha256[:2]>/<sha256>.<ext>`), never from the
uploaded filename, so they are safe, and two identical uploads can only ever write one object.
The filename is kept as metadata (percent-encoded: S3 metadata is ASCII) and returned as
`image_name`. Callers get a presigned GET URL (or the plain object URL when configured).
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from listing_vision import aws
from listing_vision.config import Storefront, get_settings
from listing_vision.errors import InvalidRequest
from listing_vision.imaging.decode import MEDIA_TYPES

EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
CATALOGUE_PREFIX = "catalogue/"
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
# bidirectional controls reorder what a person reads ("ring\u202egpj.exe" shows as "ringexe.jpg").
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def check_filename(name: str | None) -> None:
    """Refuse a filename that would not fit S3's metadata limit (AWS would refuse the write: a 500),
    or that holds a control, bidirectional-control or surrogate character (refused, not stripped:
    a name silently changed is not the name sent)."""
    bad = sorted({c for c in name or "" if c in BIDI_CONTROLS or unicodedata.category(c) in ("Cc", "Cs")})
    if bad:
        shown = ", ".join(f"U+{ord(c):04X}" for c in bad[:5])
        raise InvalidRequest(
            f"The filename holds control or bidirectional-control characters ({shown}).",
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


def put_image(
    storefront: Storefront, data: bytes, sha256: str, image_format: str, original_name: str | None
) -> StoredImage:
    """Write the photo under its content key (idempotent: the same bytes always land on the same key)."""
    bucket = get_settings().bucket_for(storefront)
    key = catalogue_key(sha256, image_format)
    metadata = {"sha256": sha256, "website": storefront}
    if original_name:
        metadata["original-name"] = quote(original_name, safe="")
    aws.client("s3").put_object(
        Bucket=bucket,
        Key=key,
        Body=data,
        ContentType=MEDIA_TYPES.get(image_format, "application/octet-stream"),
        Metadata=metadata,
    )
    return StoredImage(bucket, key)


def delete_image(image: StoredImage) -> None:
    """Remove a stored photo (one that lost a near-duplicate race, before anyone was told of it)."""
    aws.client("s3").delete_object(Bucket=image.bucket, Key=image.key)


def original_name(metadata: dict[str, str]) -> str | None:
    value = metadata.get("original-name")
    return unquote(value) if value else None


def public_url(image: StoredImage) -> str:
    """What callers get for a stored image: a presigned GET URL, or the plain object URL."""
    settings = get_settings()
    s3 = aws.client("s3")
    if settings.presign_urls:
        return str(
            s3.generate_presigned_url(
                "get_object", Params={"Bucket": image.bucket, "Key": image.key}, ExpiresIn=settings.presign_expiry_s
            )
        )
    endpoint = settings.aws_endpoint_url or f"https://{image.bucket}.s3.{settings.aws_region}.amazonaws.com"
    if settings.aws_endpoint_url:
        return f"{endpoint.rstrip('/')}/{image.bucket}/{quote(image.key)}"
    return f"{endpoint}/{quote(image.key)}"


def storefront_of_bucket(bucket: str) -> Storefront | None:
    settings = get_settings()
    for storefront in ("alya", "blysk"):
        if settings.bucket_for(storefront) == bucket:  # type: ignore[arg-type]
            return storefront  # type: ignore[return-value]
    return None
