"""A token bucket in DynamoDB, shared by every job and every Lambda, so a provider's rate limit
(e.g. 5 input images per minute) holds across concurrent jobs, not just inside one.

The bucket is kept as GCRA (the generic cell rate algorithm, a token bucket stated as one time):
the item holds `tat`, the moment the bucket is next full again. Taking a token is a single
conditional update, evaluated atomically by DynamoDB on the current value: from a full bucket,
`tat = now + interval`; otherwise `tat = tat + interval`, provided that stays within the burst.
Concurrent takers therefore never read-then-write (no lost races to retry, one round trip each
while tokens last), and none spends a token twice. A taker that finds the bucket empty learns
from the refused update when the next token is due, sleeps until then and tries again, up to a
deadline. Workers' clocks (and the moments they read them) differ by milliseconds: a taker whose
`now` is a little behind the one that restarted the schedule would find the burst spent by that
margin, so a token may be granted up to `skew_s` early (1 % of an interval, at most 0.1 s).
A taker may also ask that `reserve` tokens stay after its own (one per waiter ahead of it in a
fair queue, fair_turns.py): the same single update, its bound lowered by that many intervals.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

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
        self.interval = 60.0 / rate_per_minute  # seconds per token
        self.skew_s = min(0.1, 0.01 * self.interval)
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
            wait = self._take(now)
            if wait is None:
                return
            if now + wait > deadline:
                raise RateLimited(
                    f"The {self.name} rate limit leaves no capacity within {timeout_s:.0f} s.", code="rate_limited"
                )
            pause = wait + random.uniform(0, 0.05)  # spread waiters so they do not all retry at once
            self.waited_s += pause
            self.sleep(pause)

    def _take(self, now: float, reserve: int = 0) -> float | None:
        """Take a token at `now`, provided `reserve` more stay in the bucket (one for each taker ahead
        in a queue, fair_turns.py): None when taken, else the seconds until that many are due."""
        if reserve >= self.burst:  # more than the bucket holds: those ahead go first
            return (reserve - self.burst + 1) * self.interval
        key = to_item({"bucket_id": self.name})
        # A full bucket (or a new one): the schedule restarts from now.
        found = self._update(
            key, "SET tat = :next", "attribute_not_exists(tat) OR tat <= :now", next=now + self.interval, now=now
        )
        if found is None:
            return None
        # The latest schedule that still leaves a token, and the reserve after it.
        latest = now + (self.burst - 1 - reserve) * self.interval + self.skew_s
        if found["tat"] <= latest:
            found = self._update(
                key, "SET tat = tat + :interval", "tat <= :latest", interval=self.interval, latest=latest
            )
            if found is None:
                return None
        return max(found["tat"] - latest, 0.001)

    def _update(self, key: dict[str, Any], expression: str, condition: str, **values: float) -> dict[str, Any] | None:
        """None when the conditional update was applied, else the item as the refusal found it."""
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key=key,
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeValues=expression_values(**{k: round(v, 6) for k, v in values.items()}),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if conditional_check_failed(error):
                return from_item(error.response["Item"])  # type: ignore[typeddict-item]
            raise
        return None
