"""Events that do not come over HTTP, typed: Step Functions tasks and direct invokes are parsed into
pydantic models with Powertools' parser (a malformed one is an `invalid_event` error naming its
fields, not a stack trace); S3 notifications are read through Powertools' `S3Event` data class.

(Powertools' strict `S3Model` also requires `userIdentity`, `requestParameters` and
`responseElements`, which the local emulator's notifications leave out; the data class reads
what the platform uses, the same way on both.)"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import S3Event
from aws_lambda_powertools.utilities.parser import parse
from pydantic import ValidationError

from listing_vision.errors import InvalidRequest


def parse_event(event: Any, model: Any) -> Any:
    """`event` as `model` (a pydantic model or an annotated union of them)."""
    try:
        return parse(event=event, model=model)
    except ValidationError as error:
        fields = [
            {"field": ".".join(str(part) for part in err.get("loc", ())) or "event", "problem": err.get("msg", "")}
            for err in error.errors()[:20]
        ]
        raise InvalidRequest(
            "The event is not valid: " + "; ".join(f"{f['field']}: {f['problem']}" for f in fields),
            code="invalid_event",
            details={"fields": fields},
        ) from error


def is_s3_event(event: Any) -> bool:
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list) or not records:
        return False
    return all(isinstance(r, dict) and r.get("eventSource") == "aws:s3" for r in records)


def s3_objects(event: Any) -> list[tuple[str, str]]:
    """(bucket, key) of each record of an S3 notification, the key URL-decoded as S3 encodes it."""
    return [(record.s3.bucket.name, unquote_plus(record.s3.get_object.key)) for record in S3Event(event).records]


def s3_removed(event: Any) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The records of an S3 notification split in two: objects created and objects removed
    (`ObjectRemoved:*`), each as (bucket, key) as `s3_objects` gives them."""
    created: list[tuple[str, str]] = []
    removed: list[tuple[str, str]] = []
    for record in S3Event(event).records:
        found = (record.s3.bucket.name, unquote_plus(record.s3.get_object.key))
        (removed if record.event_name.startswith("ObjectRemoved") else created).append(found)
    return created, removed
