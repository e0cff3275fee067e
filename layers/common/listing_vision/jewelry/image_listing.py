"""GET /images: a storefront's stored images, newest first, a page at a time.

- One Query of the catalogue table's `listed-created` index (resources.IMAGES_BY_WEBSITE: partition
  `listed_website`, sort `created_at`, Unix seconds; it holds the keys, status, path and name, not
  the records' verification features, so an item is a few hundred bytes), read backwards; images
  stored in the same second come in the index's own order (by content id), the same on every read.
  Only stored records carry `listed_website` (`claims.py`), so the index holds one storefront's
  listable images and nothing else: a listing reads none of another storefront's records, no claim
  in flight, no image being deleted, and its cost follows the page, not the table.
- Each query asks for one image more than the page still lacks: a page is full (`limit` images)
  unless the listing has ended, and it has a `next_cursor` exactly when another image follows it.
- The status is still checked (a filter): the index is updated a moment after the table, so it may
  for that moment show a record whose delete has begun. Such a record is skipped, and each request
  makes at most MAX_QUERIES queries: only a run of more than `MAX_QUERIES * (limit + 1)` records
  whose deletes began in that moment could make a page come back short with a cursor.
- Also because of that moment, an image stored a moment ago may not be listed yet; one stored (or
  stored again after a delete) while a listing is paged comes before its cursor: that listing shows
  no image twice, and the next one shows it first. A delete cancelled or undone puts the image back
  in its place (its `created_at` is kept).
- The cursor is opaque: the last listed image's id and `created_at`, with a digest over them and the
  storefront, so a garbled cursor, or one of another storefront's listing, is refused
  (`invalid_cursor`). It grants nothing (the storefront is checked against the caller on every page).
"""

from __future__ import annotations

from typing import Any

from listing_vision.api.cursors import CursorKind
from listing_vision.dynamodb_items import expression_values, from_item, to_item
from listing_vision.jewelry.claims import LISTED, STORED, ContentClaims, ContentRecord, content_id, record_from_item
from listing_vision.jewelry.image_ids import is_image_id
from listing_vision.resources import IMAGES_BY_WEBSITE

MAX_CURSOR_CHARS = 200
MAX_QUERIES = 5  # per request: more only when records whose deletes just began are skipped
# A cursor's created_at is a record's (Unix seconds): one past this is no record's, and one of more than
# DynamoDB's 38 digits would fail in the query's serializer (a 500) rather than be refused
_MAX_CREATED_AT = 2**63 - 1

# Version 2: the index's key; a version-1 cursor (a Scan's content id) is refused, so its listing starts again
_CURSORS = CursorKind(b"catalogue-cursor", 2, MAX_CURSOR_CHARS, "listing", "storefront")


def encode_cursor(website: str, sha256: str, created_at: int) -> str:
    return _CURSORS.seal(website.encode(), sha256, created_at)


def decode_cursor(cursor: str, website: str) -> dict[str, Any]:
    """The index key (DynamoDB's typed form) a cursor of `encode_cursor` carries; refuses
    (`invalid_cursor`) one that is garbled, altered, or made for another storefront's listing."""
    sha256, created_at = _CURSORS.unseal(cursor, website.encode(), arity=2)
    if (
        not isinstance(sha256, str)
        or not is_image_id(sha256)
        or not isinstance(created_at, int)
        or isinstance(created_at, bool)
        or not 0 <= created_at <= _MAX_CREATED_AT
    ):
        raise _CURSORS.refuse("malformed")
    return to_item({"content_id": content_id(website, sha256), LISTED: website, "created_at": created_at})


def stored_page(
    claims: ContentClaims, website: str, cursor: str | None, limit: int
) -> tuple[list[tuple[str, ContentRecord]], str | None]:
    """Up to `limit` stored images of the storefront, newest first, as (sha256, record), from the one
    after `cursor`'s; and the cursor of the next page (None: the listing has ended)."""
    start = decode_cursor(cursor, website) if cursor else None
    found: list[tuple[str, ContentRecord]] = []
    for _ in range(MAX_QUERIES):
        request: dict[str, Any] = {
            "TableName": claims.table,
            "IndexName": IMAGES_BY_WEBSITE.name,
            "KeyConditionExpression": f"{LISTED} = :website",
            "FilterExpression": "#s = :stored",
            "ExpressionAttributeNames": {"#s": "status", "#p": "path"},
            "ExpressionAttributeValues": expression_values(website=website, stored=STORED),
            # what the index holds (IMAGES_BY_WEBSITE.include and the keys): no features, so small reads
            "ProjectionExpression": f"content_id, #s, #p, image_name, created_at, {LISTED}",
            "ScanIndexForward": False,  # newest first
            # one more than the page lacks: whether another image follows is known without another read
            "Limit": limit - len(found) + 1,
        }
        if start:
            request["ExclusiveStartKey"] = start
        answer = claims.dynamodb.query(**request)
        for item in answer.get("Items", []):
            record = record_from_item(from_item(item))
            found.append((record.content_id.partition("#")[2], record))
        start = answer.get("LastEvaluatedKey")
        if len(found) > limit:  # the page is full, and an image follows it
            sha256, last = found[limit - 1]
            return found[:limit], encode_cursor(website, sha256, int(last.created_at or 0))
        if not start:
            return found, None
    # every query skipped records whose deletes had just begun: go on after the last one read
    assert start is not None  # the loop returns when a query reads to the end
    values = from_item(start)
    return found, encode_cursor(website, str(values["content_id"]).partition("#")[2], int(values["created_at"]))
