"""S3 event notifications: the (bucket, key) of each record, the key URL-decoded as S3 encodes it."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import S3Event


def is_s3_event(event: dict[str, Any]) -> bool:
    records = event.get("Records") or []
    return bool(records) and all(r.get("eventSource") == "aws:s3" for r in records)


def object_records(event: dict[str, Any]) -> list[tuple[str, str]]:
    return [(record.s3.bucket.name, unquote_plus(record.s3.get_object.key)) for record in S3Event(event).records]
