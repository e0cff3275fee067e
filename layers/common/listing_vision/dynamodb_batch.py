"""DynamoDB batch reads and writes at the API's limits, with what DynamoDB hands back unprocessed
(`UnprocessedKeys`, `UnprocessedItems`) retried with exponential backoff and jitter.

Keys and items are typed maps (`dynamodb_items.to_item` makes them from Python values,
`from_item` reads them back), so every store shares one loop instead of writing its own.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from listing_vision.errors import UpstreamError

GET_LIMIT = 100  # keys per BatchGetItem
WRITE_LIMIT = 25  # requests per BatchWriteItem
MAX_ROUNDS = 8


def _backoff(attempt: int) -> float:
    return min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0)


def batch_get(
    client: Any,
    table: str,
    keys: Sequence[dict[str, Any]],
    projection: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_unprocessed: Callable[[], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Every item found for `keys` (typed maps), read in chunks of 100; keys DynamoDB hands back
    unprocessed are asked again after a backoff, `cache_throttled` after MAX_ROUNDS rounds."""
    for start in range(0, len(keys), GET_LIMIT):
        request_of_table: dict[str, Any] = {"Keys": list(keys[start : start + GET_LIMIT])}
        if projection:
            request_of_table["ProjectionExpression"] = projection
        request: dict[str, Any] = {table: request_of_table}
        for attempt in range(MAX_ROUNDS):
            response = client.batch_get_item(RequestItems=request)
            yield from response.get("Responses", {}).get(table, [])
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
            if on_unprocessed:
                on_unprocessed()
            sleep(_backoff(attempt))
        else:
            raise UpstreamError(
                f"DynamoDB kept {len(request[table]['Keys'])} keys of {table} unprocessed after {MAX_ROUNDS} rounds.",
                code="cache_throttled",
            )


def batch_put(
    client: Any,
    table: str,
    items: Sequence[dict[str, Any]],
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Put every item (typed maps), 25 per request; unprocessed items are sent again after a
    backoff. Returns how many were written."""
    for start in range(0, len(items), WRITE_LIMIT):
        request: dict[str, Any] = {
            table: [{"PutRequest": {"Item": item}} for item in items[start : start + WRITE_LIMIT]]
        }
        for attempt in range(MAX_ROUNDS):
            request = client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
            if not request:
                break
            sleep(_backoff(attempt))
        else:
            raise UpstreamError(
                f"DynamoDB kept {len(request[table])} writes to {table} unprocessed after {MAX_ROUNDS} rounds.",
                code="cache_throttled",
            )
    return len(items)
