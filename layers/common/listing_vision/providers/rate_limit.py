"""A token bucket in DynamoDB, shared by every job and every Lambda, so a provider's rate limit
(e.g. 5 input images per minute) holds across concurrent jobs, not just inside one.

Taking a token is a conditional write on the bucket's last state (optimistic concurrency), so two
workers never spend the same token; a worker that finds the bucket empty sleeps until the next
token is due and tries again, up to a deadline.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from botocore.exceptions import ClientError

from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.dynamodb_items import conditional_check_failed, expression_values, from_item, to_item
from listing_vision.errors import RateLimited


class TokenBucket:
    def __init__(
        self,
        name: str,
        rate_per_minute: float,
        burst: int,
        table: str | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.name = name
        self.rate = rate_per_minute / 60.0  # tokens per second
        self.burst = burst
        self.table = table or get_settings().rate_limit_table
        self.clock, self.sleep = clock, sleep
        self.dynamodb = aws.client("dynamodb")
        self.waited_s = 0.0

    def acquire(self, timeout_s: float = 600.0) -> None:
        """Take one token, waiting for it if need be; RateLimited past the deadline."""
        deadline = self.clock() + timeout_s
        while True:
            now = self.clock()
            item = self.dynamodb.get_item(
                TableName=self.table, Key=to_item({"bucket_id": self.name}), ConsistentRead=True
            ).get("Item")
            state = from_item(item) if item else None
            tokens = float(state["tokens"]) if state else float(self.burst)
            updated = float(state["updated_at"]) if state else now
            available = min(float(self.burst), tokens + (now - updated) * self.rate)
            if available >= 1.0:
                if self._take(available - 1.0, now, state["updated_at"] if state else None):
                    return
                continue  # someone else took a token in between: read again
            wait = (1.0 - available) / self.rate
            if now + wait > deadline:
                raise RateLimited(
                    f"The {self.name} rate limit leaves no capacity within {timeout_s:.0f} s.", code="rate_limited"
                )
            pause = wait + random.uniform(0, 0.05)  # spread waiters so they do not all retry at once
            self.waited_s += pause
            self.sleep(pause)

    def _take(self, remaining: float, now: float, previous: float | None) -> bool:
        """Write the bucket's new state, provided nobody wrote it since we read it (`previous`)."""
        condition = "attribute_not_exists(bucket_id)" if previous is None else "updated_at = :previous"
        values = expression_values(previous=previous) if previous is not None else {}
        try:
            self.dynamodb.put_item(
                TableName=self.table,
                Item=to_item({"bucket_id": self.name, "tokens": round(remaining, 6), "updated_at": round(now, 6)}),
                ConditionExpression=condition,
                **({"ExpressionAttributeValues": values} if values else {}),
            )
        except ClientError as error:
            if conditional_check_failed(error):
                return False
            raise
        return True
