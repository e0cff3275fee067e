"""Reviewers' verdicts on duplicate pairs: "same piece" or "not a duplicate", per storefront
(PUT /verdicts, GET /verdicts; the review console's buttons), exported as labels for calibration
(`python -m evaluation.calibrate --verdicts FILE | --verdicts-from-api URL`).

A verdict names a pair: the upload's image id (the SHA-256 of its bytes, as every image id) and the
matched image's id (`image_id` in a duplicate answer's results). The pair is unordered: it is kept in
the catalogue table under `verdict#<website>#<lower id>#<higher id>`, so recording it again, either
way round, replaces the verdict before (the last one counts). The matched image must be stored in the
storefront (404 `image_not_found` otherwise); the upload's id is checked for its form only, because a
duplicate upload is not stored (that is what the check answered), so the catalogue cannot know it.
The same id on both sides is refused (400 `same_image_pair`). A client of another storefront can
neither record nor list (403 `storefront_forbidden`), as for /images. A refused verdict writes nothing.

GET /verdicts is one Query of the catalogue table's `website-recorded` index
(resources.VERDICTS_BY_WEBSITE: partition `website`, sort `recorded_at`), newest first. Only verdicts
carry `recorded_at` in the catalogue table, so the index holds them and nothing else (a sparse
index), and every verdict recorded before the index existed is in it too: DynamoDB fills a new index
from the items already there. An `image_id` filter is a filter expression, so each request
evaluates at most `MAX_EVALUATED` verdicts (in at most `MAX_QUERIES` queries): a page can come back
short, even empty, with a `next_cursor`. Each query asks for no more than the page still lacks, so
the next page starts right after the last verdict read; the cursor carries that verdict's key (its
pair and `recorded_at`), tied to the storefront and to the `image_id` filter it was made with. A
verdict recorded (or recorded again) after a listing began comes before its cursor: that listing
shows no verdict twice, and the next listing shows it first.
"""

from __future__ import annotations

import time
from typing import Any, Literal, get_args

from listing_vision.api.access import Caller
from listing_vision.api.cursors import CursorKind
from listing_vision.config import Storefront
from listing_vision.dynamodb_items import expression_values, from_item, to_item
from listing_vision.errors import InvalidRequest, NotFound
from listing_vision.jewelry.claims import ContentClaims
from listing_vision.jewelry.image_ids import is_image_id
from listing_vision.observability import logger, metrics
from listing_vision.resources import VERDICTS_BY_WEBSITE

Verdict = Literal["same_piece", "not_duplicate"]
VERDICTS: tuple[str, ...] = get_args(Verdict)
VERDICT_PREFIX = "verdict#"  # never a storefront's content id (`<website>#<sha256>`): the reconciler skips it
DEFAULT_LIMIT, MAX_LIMIT = 50, 200
MAX_CURSOR_CHARS = 300
MAX_EVALUATED = 500  # verdicts read per request, whatever the image_id filter skips
MAX_QUERIES = 5
# A cursor's recorded_at is a verdict's (Unix seconds): one past this is no verdict's, and one of more
# than DynamoDB's 38 digits would fail in the query's serializer (a 500) rather than be refused
_MAX_RECORDED_AT = 2**63 - 1


def verdict_item_id(website: str, image_id: str, matched_image_id: str) -> str:
    low, high = sorted((image_id, matched_image_id))
    return f"{VERDICT_PREFIX}{website}#{low}#{high}"


class Verdicts:
    def __init__(self, claims: ContentClaims):
        self.claims = claims
        self.table = claims.table
        self.dynamodb = claims.dynamodb

    # --- PUT /verdicts ---------------------------------------------------------------------------------
    def record(
        self, caller: Caller, website: Storefront, image_id: str, matched_image_id: str, verdict: Verdict
    ) -> dict[str, Any]:
        """Record (or replace) the verdict on the pair; the verdict as stored."""
        caller.require(website)
        for field, value in (("image_id", image_id), ("matched_image_id", matched_image_id)):
            if not is_image_id(value):  # the route's pattern refuses it first; kept for callers
                raise InvalidRequest(f"{field} is not an image id.", details={"fields": [field]})
        if image_id == matched_image_id:
            raise InvalidRequest(
                "A verdict needs two different images: image_id and matched_image_id are the same.",
                code="same_image_pair",
            )
        record = self.claims.get(website, matched_image_id)
        if record is None or not record.stored:
            raise NotFound(
                f"No image {matched_image_id} in {website}.",
                code="image_not_found",
                details={"field": "matched_image_id"},
            )
        item = {
            "content_id": verdict_item_id(website, image_id, matched_image_id),
            "website": website,
            "image_id": image_id,
            "matched_image_id": matched_image_id,
            "verdict": verdict,
            "recorded_at": int(time.time()),
            "recorded_by": caller.client_id,
        }
        self.dynamodb.put_item(TableName=self.table, Item=to_item(item))
        metrics.add_metric(name="VerdictsRecorded", unit="Count", value=1)
        logger.info("verdict recorded", extra={"website": website, "verdict": verdict})
        return _shown(item)

    # --- GET /verdicts ---------------------------------------------------------------------------------
    def page(
        self, caller: Caller, website: Storefront, image_id: str | None, cursor: str | None, limit: int
    ) -> dict[str, Any]:
        """One page of the storefront's verdicts (all, or those on pairs holding `image_id`), newest
        first, and the cursor of the next page (None on the last)."""
        caller.require(website)
        scope = _scope(website, image_id)
        start = _decode(cursor, scope, website) if cursor else None
        values: dict[str, Any] = {"website": website}
        request: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": VERDICTS_BY_WEBSITE.name,
            "KeyConditionExpression": "website = :website",
            "ScanIndexForward": False,  # newest first
        }
        if image_id:
            request["FilterExpression"] = "image_id = :id OR matched_image_id = :id"
            values["id"] = image_id
        request["ExpressionAttributeValues"] = expression_values(**values)
        found: list[dict[str, Any]] = []
        evaluated = 0
        for _ in range(MAX_QUERIES):
            # never more than the page lacks: the next page starts right after the last verdict read
            request["Limit"] = min(limit - len(found), MAX_EVALUATED - evaluated)
            if start:
                request["ExclusiveStartKey"] = start
            answer = self.dynamodb.query(**request)
            found += [from_item(raw) for raw in answer.get("Items", [])]
            evaluated += int(answer.get("ScannedCount", 0))
            start = answer.get("LastEvaluatedKey")
            if not start or len(found) >= limit or evaluated >= MAX_EVALUATED:
                break
        return {
            "verdicts": [_shown(item) for item in found],
            "next_cursor": _encode(start, scope, website) if start else None,
        }


def _shown(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "website": item["website"],
        "image_id": item["image_id"],
        "matched_image_id": item["matched_image_id"],
        "verdict": item["verdict"],
        "recorded_at": int(item["recorded_at"]),
        "recorded_by": item.get("recorded_by"),
    }


# Version 2: the index's key (version 1, a table Scan's, is refused as another version's)
_CURSORS = CursorKind(b"verdicts-cursor", 2, MAX_CURSOR_CHARS, "listing", "storefront or image")


def _scope(website: str, image_id: str | None) -> bytes:
    return f"{website}\n{image_id or ''}".encode()


def _encode(key: dict[str, Any], scope: bytes, website: str) -> str:
    """The cursor of the page after `key` (a verdict's key in the index, as DynamoDB gives it): its
    pair (the table key is made from it and the storefront) and its `recorded_at`."""
    values = from_item(key)
    prefix = f"{VERDICT_PREFIX}{website}#"
    low, high = str(values["content_id"]).removeprefix(prefix).split("#")
    return _CURSORS.seal(scope, low, high, int(values["recorded_at"]))


def _decode(cursor: str, scope: bytes, website: str) -> dict[str, Any]:
    """The index key a cursor of `_encode` carries (DynamoDB's typed form); refuses one that is
    garbled, altered, or made for another storefront or image."""
    low, high, recorded_at = _CURSORS.unseal(cursor, scope, arity=3)
    if (
        not all(is_image_id(image) for image in (low, high))
        or not low < high
        or not isinstance(recorded_at, int)
        or isinstance(recorded_at, bool)
        or not 0 <= recorded_at <= _MAX_RECORDED_AT
    ):
        raise _CURSORS.refuse("malformed")
    key = {"content_id": verdict_item_id(website, low, high), "website": website, "recorded_at": recorded_at}
    return to_item(key)
