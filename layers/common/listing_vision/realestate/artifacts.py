"""Where migration artefacts live: `s3://bucket/key` or a local path, read and written alike.

An S3 location's key is everything after the bucket, verbatim: `#` and `?` are characters of S3 keys,
not a URL's fragment and query (read as a URL, `s3://b/k#x` would be `k`, another object)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from botocore.exceptions import ClientError

from listing_vision import aws

MISSING_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "404"})


class ArtifactNotFound(FileNotFoundError):
    """Nothing at that location: no such object or bucket in S3, no such file on disk."""


def s3_object(location: str) -> tuple[str, str] | None:
    """An `s3://bucket/key` location's bucket and key (the key verbatim), or None for a path."""
    if not location.startswith("s3://"):
        return None
    bucket, _, key = location.removeprefix("s3://").partition("/")
    return bucket, key


def write_bytes(location: str, data: bytes, content_type: str = "application/octet-stream") -> None:
    if where := s3_object(location):
        aws.client("s3").put_object(Bucket=where[0], Key=where[1], Body=data, ContentType=content_type)
        return
    path = Path(location)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.replace(path)  # a crash mid-write never leaves half a file under the real name


def read_bytes(location: str) -> bytes:
    if s3_object(location):
        return bytes(get_object(location)["Body"].read())
    try:
        return Path(location).read_bytes()
    except FileNotFoundError as error:
        raise ArtifactNotFound(f"No file at {location}.") from error


def get_object(location: str) -> dict[str, Any]:
    """An S3 location's GetObject answer (its Body, ETag, …); ArtifactNotFound when it is not there."""
    bucket, key = s3_object(location) or ("", "")
    try:
        return dict(aws.client("s3").get_object(Bucket=bucket, Key=key))
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in MISSING_CODES:
            raise ArtifactNotFound(f"No object at {location}.") from error
        raise


def write_stream(location: str, chunks: Iterable[bytes], content_type: str = "application/octet-stream") -> int:
    """Write chunks as they come, never the whole object in memory: spooled to a temporary file
    (Lambda's /tmp) and uploaded from it (multipart past 8 MB), or written to a path. Returns the size."""
    if where := s3_object(location):
        with tempfile.TemporaryFile() as spool:
            size = _copy(chunks, spool)
            spool.seek(0)
            aws.client("s3").upload_fileobj(spool, where[0], where[1], ExtraArgs={"ContentType": content_type})
        return size
    path = Path(location)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as out:
        size = _copy(chunks, out)
    partial.replace(path)
    return size


def read_chunks(location: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """The object's bytes a chunk at a time."""
    if s3_object(location):
        yield from get_object(location)["Body"].iter_chunks(chunk_size)
        return
    if not Path(location).is_file():
        raise ArtifactNotFound(f"No file at {location}.")
    with Path(location).open("rb") as source:
        while chunk := source.read(chunk_size):
            yield chunk


def _copy(chunks: Iterable[bytes], out: BinaryIO) -> int:
    size = 0
    for chunk in chunks:
        out.write(chunk)
        size += len(chunk)
    return size


def count_objects(bucket: str, prefix: str, max_pages: int) -> tuple[int, bool]:
    """How many objects lie under the prefix, read one ListObjectsV2 page (1,000 keys) after another,
    at most `max_pages`; and whether that is all of them (False: the count stopped at the bound)."""
    count = 0
    pages = aws.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    for number, page in enumerate(pages):
        if number == max_pages:
            return count, False
        count += int(page.get("KeyCount") or 0)
    return count, True


def map_results(map_output: Any) -> list[dict[str, Any]]:
    """The Map's per-batch results: inline (a list), or through its ResultWriter manifest in S3."""
    if isinstance(map_output, list):
        return [row for row in map_output if isinstance(row, dict)]
    details = (map_output or {}).get("ResultWriterDetails") if isinstance(map_output, dict) else None
    if not details:
        return []
    manifest = json.loads(read_bytes(f"s3://{details['Bucket']}/{details['Key']}"))
    rows: list[dict[str, Any]] = []
    for written in manifest.get("ResultFiles", {}).values():
        for entry in written:
            for result in json.loads(read_bytes(f"s3://{manifest['DestinationBucket']}/{entry['Key']}")):
                output = result.get("Output")
                rows.append(json.loads(output) if isinstance(output, str) else {"failed": True, "error": result})
    return rows
