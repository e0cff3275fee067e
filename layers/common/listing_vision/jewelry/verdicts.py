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

GET /verdicts reads a bounded part of the table per request (a Scan of at most `MAX_SCAN_PAGES`
pages, as GET /images does), so a page may come back short with a `next_cursor`; the cursor is tied
to the storefront and to the `image_id` filter it was made with.
"""

from __future__ import annotations

import re
import time
from typing import Any, Literal, get_args

from listing_vision.api.access import Caller
from listing_vision.api.cursors import CursorKind
from listing_vision.config import Storefront
from listing_vision.dynamodb_items import expression_values, from_item, to_item
from listing_vision.errors import InvalidRequest, NotFound
from listing_vision.jewelry.catalogue import IMAGE_ID_PATTERN
from listing_vision.jewelry.claims import ContentClaims
from listing_vision.observability import logger, metrics

Verdict = Literal["same_piece", "not_duplicate"]
VERDICTS: tuple[str, ...] = get_args(Verdict)
VERDICT_PREFIX = "verdict#"  # never a storefront's content id (`<website>#<sha256>`): the reconciler skips it
DEFAULT_LIMIT, MAX_LIMIT = 50, 200
MAX_CURSOR_CHARS = 300
MAX_SCAN_PAGES = 5
MIN_SCAN_ITEMS = 100
_FIELDS = "content_id, website, image_id, matched_image_id, verdict, recorded_at, recorded_by"


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
            if not re.fullmatch(IMAGE_ID_PATTERN, value):  # the route's pattern refuses it first; kept for callers
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
        """One page of the storefront's verdicts (all, or those on pairs holding `image_id`) in the
        table's order, and the cursor of the next page (None on the last)."""
        caller.require(website)
        scope = f"{website}\n{image_id or ''}".encode()
        after = _decode(cursor, scope) if cursor else None
        condition = "begins_with(content_id, :prefix)"
        values: dict[str, Any] = {"prefix": f"{VERDICT_PREFIX}{website}#"}
        if image_id:
            condition += " AND (image_id = :id OR matched_image_id = :id)"
            values["id"] = image_id
        found: list[dict[str, Any]] = []
        start: dict[str, Any] | None = to_item({"content_id": after}) if after else None
        for _ in range(MAX_SCAN_PAGES):
            request: dict[str, Any] = {
                "TableName": self.table,
                "FilterExpression": condition,
                "ExpressionAttributeValues": expression_values(**values),
                "ProjectionExpression": _FIELDS,
                "Limit": max(limit * 4, MIN_SCAN_ITEMS),
                "ConsistentRead": True,
            }
            if start:
                request["ExclusiveStartKey"] = start
            answer = self.dynamodb.scan(**request)
            items = answer.get("Items", [])
            for raw in items:
                found.append(from_item(raw))
                if len(found) == limit:
                    more = raw is not items[-1] or "LastEvaluatedKey" in answer
                    next_after = str(found[-1]["content_id"]) if more else None
                    return _page(found, scope, next_after)
            start = answer.get("LastEvaluatedKey")
            if not start:
                return _page(found, scope, None)
        return _page(found, scope, str(from_item(start)["content_id"]) if start else None)


def _shown(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "website": item["website"],
        "image_id": item["image_id"],
        "matched_image_id": item["matched_image_id"],
        "verdict": item["verdict"],
        "recorded_at": int(item["recorded_at"]),
        "recorded_by": item.get("recorded_by"),
    }


_CURSORS = CursorKind(b"verdicts-cursor", 1, MAX_CURSOR_CHARS, "listing", "storefront or image")


def _page(found: list[dict[str, Any]], scope: bytes, after: str | None) -> dict[str, Any]:
    return {"verdicts": [_shown(item) for item in found], "next_cursor": _CURSORS.seal(scope, after) if after else None}


def _decode(cursor: str, scope: bytes) -> str:
    (after,) = _CURSORS.unseal(cursor, scope, arity=1)
    # `after` is the key of the table's item the last read ended on: any item's, as for GET /images
    if not isinstance(after, str) or not after:
        raise _CURSORS.refuse("malformed")
    return after
