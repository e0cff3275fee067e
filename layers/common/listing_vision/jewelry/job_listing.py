"""GET /jobs: a storefront's generation jobs, newest first, a page at a time.

- One DynamoDB query of the jobs table's `website-created` index (resources.JOBS_BY_WEBSITE:
  partition `website`, sort `created_at`), read backwards. A `status` filter is a filter
  expression, so it costs the items it skips: each request evaluates at most MAX_EVALUATED items
  (in at most MAX_QUERIES queries) whatever the filter, and a page can hold fewer than `limit`
  jobs, even none, while `next_cursor` says there are more to look at.
- Each query asks for no more items than the page still lacks, so a page never overshoots and the
  next one starts exactly after the last item evaluated (DynamoDB's LastEvaluatedKey): no job is
  seen twice or skipped while jobs are added (new ones come before the first page).
- The cursor is opaque: that key, with a digest over it, the storefront and the filter, so a
  garbled cursor, or one from another storefront or status, is refused (`invalid_cursor`). It grants
  nothing (the storefront is checked against the caller on every page), so it is checked, not signed.
- Statuses are as recorded: a run past its deadline reads `running` until GET /jobs/{id} (or a
  regeneration) ends it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from listing_vision.api import query_parameters
from listing_vision.api.cursors import CursorKind
from listing_vision.dynamodb_items import expression_values, from_item, to_item
from listing_vision.errors import InvalidRequest
from listing_vision.jewelry.jobs import JOB_ID_PATTERN, STATUSES, JobStore, job_from_item
from listing_vision.resources import JOBS_BY_WEBSITE

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_EVALUATED = 500  # items read per request, whatever the filter skips
MAX_QUERIES = 5
MAX_CURSOR_CHARS = 400
# A cursor's created_at is a job's (Unix seconds): one past this is no job's, and one of more than
# DynamoDB's 38 digits would fail in the query's serializer (a 500) rather than be refused
_MAX_CREATED_AT = 2**63 - 1


_CURSORS = CursorKind(b"jobs-cursor", 1, MAX_CURSOR_CHARS, "listing", "storefront or status")


def _scope(website: str, status: str | None) -> bytes:
    return json.dumps([website, status or ""]).encode()


def encode_cursor(website: str, status: str | None, key: dict[str, Any]) -> str:
    """The cursor of the page after `key` (an item's key in the index, as DynamoDB gives it)."""
    values = from_item(key)
    return _CURSORS.seal(_scope(website, status), values["job_id"], int(values["created_at"]))


def decode_cursor(cursor: str, website: str, status: str | None) -> dict[str, Any]:
    """The index key a cursor of `encode_cursor` carries (DynamoDB's typed form); refuses one that
    is garbled, altered, or made for another storefront or status."""
    job_id, created_at = _CURSORS.unseal(cursor, _scope(website, status), arity=2)
    if (
        not isinstance(job_id, str)
        or not re.fullmatch(JOB_ID_PATTERN, job_id)
        or not isinstance(created_at, int)
        or isinstance(created_at, bool)
        or not 0 <= created_at <= _MAX_CREATED_AT
    ):
        raise _CURSORS.refuse("malformed")
    return to_item({"job_id": job_id, "website": website, "created_at": created_at})


PARAMETERS = ("website", "status", "cursor", "limit")


def check_parameters(parameters: Mapping[str, Sequence[str]]) -> None:
    """Refuse a query parameter the listing does not take (`unknown_parameter`), or one given twice."""
    query_parameters.check_parameters(parameters, PARAMETERS, "the job listing")


def check_status(status: str | None) -> str | None:
    if status is not None and status not in STATUSES:
        message = f"status is one of {', '.join(STATUSES)}."
        raise InvalidRequest(message, details={"fields": [{"field": "status", "problem": message}]})
    return status


def summary(item: dict[str, Any]) -> dict[str, Any]:
    """A job as the listing shows it: what it is and how it stands, not its images (GET /jobs/{id})."""
    job = job_from_item(item)
    delivered = sum(1 for r in job.results.values() if r.get("status") == "ok")
    return {
        "job_id": job.job_id,
        "website": job.website,
        "status": job.status,
        "product_type": job.product,
        "image_types": job.image_types,
        "delivered": delivered,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "status_url": f"/jobs/{job.job_id}",
    }


def page(
    store: JobStore, website: str, status: str | None = None, cursor: str | None = None, limit: int = DEFAULT_LIMIT
) -> dict[str, Any]:
    """One page of the storefront's jobs, newest first, and the cursor of the next (None after the last)."""
    status = check_status(status)
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(
            f"limit is a whole number from 1 to {MAX_LIMIT}.", details={"fields": [{"field": "limit"}]}
        )
    start = decode_cursor(cursor, website, status) if cursor else None
    found: list[dict[str, Any]] = []
    evaluated = 0
    for _ in range(MAX_QUERIES):
        request: dict[str, Any] = {
            "TableName": store.table,
            "IndexName": JOBS_BY_WEBSITE.name,
            "KeyConditionExpression": "website = :website",
            "ScanIndexForward": False,  # newest first
            # never more than the page lacks: the next page starts right after the last item read
            "Limit": min(limit - len(found), MAX_EVALUATED - evaluated),
        }
        values: dict[str, Any] = {"website": website}
        if status:
            request["FilterExpression"] = "#s = :status"
            request["ExpressionAttributeNames"] = {"#s": "status"}
            values["status"] = status
        request["ExpressionAttributeValues"] = expression_values(**values)
        if start:
            request["ExclusiveStartKey"] = start
        answer = store.dynamodb.query(**request)
        found += answer.get("Items", [])
        evaluated += int(answer.get("ScannedCount", 0))
        start = answer.get("LastEvaluatedKey")
        if not start or len(found) >= limit or evaluated >= MAX_EVALUATED:
            break
    return {
        "website": website,
        "status": status,
        "jobs": [summary(item) for item in found],
        "next_cursor": encode_cursor(website, status, start) if start else None,
    }
