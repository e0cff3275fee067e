"""Where migration artefacts live: `s3://bucket/key` or a local path, read and written alike."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from listing_vision import aws


def write_bytes(location: str, data: bytes, content_type: str = "application/octet-stream") -> None:
    parts = urlsplit(location)
    if parts.scheme == "s3":
        aws.client("s3").put_object(
            Bucket=parts.netloc, Key=parts.path.lstrip("/"), Body=data, ContentType=content_type
        )
        return
    path = Path(location)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.replace(path)  # a crash mid-write never leaves half a file under the real name


def read_bytes(location: str) -> bytes:
    parts = urlsplit(location)
    if parts.scheme == "s3":
        return bytes(aws.client("s3").get_object(Bucket=parts.netloc, Key=parts.path.lstrip("/"))["Body"].read())
    return Path(location).read_bytes()
