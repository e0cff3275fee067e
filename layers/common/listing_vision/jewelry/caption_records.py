"""Captions kept as data: each one stored with its photo's catalogue record (`claims.py`).

A stored record (`<website>#<sha256>`) holds its captions, oldest first, in `captions` (a list of
maps: the `Caption` fields, the jewelry type asked for, the provider and model that wrote it, when,
and its number), and how many were ever written in `caption_count`. The record is the image: the
image id of the API (`/images/{id}`) is its sha256, the SHA-256 of the photo's bytes, whichever way
it arrived (the API, a presigned form, a straight S3 upload).

- A caption of a new upload is written with the record itself, in the write that completes it
  (`ContentClaims.complete`), so a stored photo captioned on arrival never lacks its caption.
- A re-caption appends to the list under a condition on `caption_count` (optimistic: two at once
  both land, one after the other, each with its own number).
- The newest `MAX_KEPT` captions are kept (a record stays far under DynamoDB's 400 KB item limit);
  numbers keep counting, so a client can tell that older ones were dropped.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.dynamodb_items import conditional_check_failed, expression_values, from_item, to_item
from listing_vision.errors import Conflict
from listing_vision.jewelry.caption_prompts import JewelryType
from listing_vision.jewelry.caption_schema import Caption, Captioner
from listing_vision.jewelry.claims import STORED, content_id

MAX_KEPT = 20
CAPTIONS, COUNT = "captions", "caption_count"
WRITE_ATTEMPTS = 5  # re-captions of one image at the same moment: each retry reads the other's write


def caption_entry(caption: Caption, captioner: Captioner, jewelry_type: JewelryType) -> dict[str, Any]:
    """One stored caption: what it says and who wrote it, when."""
    return {
        "number": 1,  # until appended: `append` numbers it
        **caption.model_dump(),
        "type": jewelry_type,
        "provider": captioner.name,
        "model": captioner.model,
        "created_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }


def first_caption_attributes(entry: dict[str, Any]) -> dict[str, Any]:
    """The attributes a new record is completed with when its photo was captioned on arrival."""
    return {CAPTIONS: [{**entry, "number": 1}], COUNT: 1}


class CaptionRecords:
    """Reads and appends the captions of stored catalogue records."""

    def __init__(self, table: str | None = None):
        self.table = table or get_settings().catalogue_table
        self.dynamodb = aws.client("dynamodb")

    def image(self, website: str, sha256: str) -> dict[str, Any] | None:
        """The stored record's path and captions (newest last); None when no photo with this id is stored."""
        item = self.dynamodb.get_item(
            TableName=self.table,
            Key=to_item({"content_id": content_id(website, sha256)}),
            ConsistentRead=True,
            ProjectionExpression="#s, #p, image_name, captions, caption_count",
            ExpressionAttributeNames={"#s": "status", "#p": "path"},
        ).get("Item")
        record = from_item(item) if item else None
        if record is None or record.get("status") != STORED or not record.get("path"):
            return None
        return record

    def append(self, website: str, sha256: str, entry: dict[str, Any]) -> dict[str, Any] | None:
        """Add a caption to a stored record; returns it with its number, or None when the record is no
        longer stored (deleted meanwhile)."""
        for _ in range(WRITE_ATTEMPTS):
            record = self.image(website, sha256)
            if record is None:
                return None
            count = int(record.get(COUNT, 0))
            numbered = {**entry, "number": count + 1}
            kept = [*record.get(CAPTIONS, []), numbered][-MAX_KEPT:]
            condition = f"#s = :stored AND {'attribute_not_exists(#n)' if count == 0 else '#n = :count'}"
            values: dict[str, Any] = {"stored": STORED, "captions": kept, "next": count + 1}
            if count:
                values["count"] = count
            try:
                self.dynamodb.update_item(
                    TableName=self.table,
                    Key=to_item({"content_id": content_id(website, sha256)}),
                    UpdateExpression="SET #c = :captions, #n = :next",
                    ConditionExpression=condition,
                    ExpressionAttributeNames={"#s": "status", "#c": CAPTIONS, "#n": COUNT},
                    ExpressionAttributeValues=expression_values(**values),
                )
            except ClientError as error:
                if conditional_check_failed(error):
                    continue  # another caption landed (or the record went): read again
                raise
            return numbered
        raise Conflict("Other captions of this image are being written; try again.", code="caption_in_progress")


def latest(record: dict[str, Any]) -> dict[str, Any] | None:
    captions = record.get(CAPTIONS) or []
    return dict(captions[-1]) if captions else None


def newest_first(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(entry) for entry in reversed(record.get(CAPTIONS) or [])]
