"""A rate limit in DynamoDB, shared by every job and every Lambda, so a provider's limit (e.g. 5
input images per minute) holds across concurrent jobs, not just inside one.

Providers enforce "B per window" as a sliding window, so this limiter does too: with a burst of B
and a rate of one start per interval T, it admits at most B starts in any window of B·T seconds.
(A token bucket, GCRA, admits twice that: a full burst, then B more as it refills; the provider
answers the excess 429, and the edits refused together retry together.)

The bucket's item holds a log of recent starts, a map from a random id to the start's time, and
`gen`, which changes only when expired starts are removed. A start is one conditional update: add
this taker's entry, provided `gen` is the one of the taker's last view of the log and the map holds
no more than B - 1 entries besides that view's expired ones. Entries are only added under the same
`gen`, so the log still holds that view's expired entries, and the condition bounds the live ones
exactly: none is admitted twice, and takers racing for a window's free places do not refuse one
another (no read; one round trip each while places last, two for a taker's first, which guesses
a new log). A refused update returns the item as it
is, so the taker's next view costs no read: it retries at once while there is room (`gen` changed),
else sleeps until enough starts have left the window, up to a deadline. A taker whose view holds B
expired entries removes them in its start, with a new `gen` (so the log never holds more than
2·B - 1 entries). An entry stays in the window `margin_s` longer than B·T (1 % of it, at most 0.1 s):
workers' clocks differ by milliseconds, and one whose clock is ahead must not start early by the
provider's. A taker may also ask that `reserve` places stay free after its own (one per waiter ahead
of it in a fair queue, fair_turns.py): the same single update, its bound lowered by that many.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.dynamodb_items import conditional_check_failed, expression_values, from_item, to_item
from listing_vision.errors import RateLimited


class TokenBucket:
    """The shared limit on starts (still named for the token bucket it was: `burst` and the rate
    per minute keep their meaning, as settings and callers name them)."""

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
        self.interval = 60.0 / rate_per_minute  # seconds per start, on average
        self.burst = burst
        self.window_s = burst * self.interval  # at most `burst` starts in any window this long
        self.margin_s = min(0.1, 0.01 * self.window_s)
        self.table = table or get_settings().rate_limit_table
        self.clock, self.sleep = clock, sleep
        self.dynamodb = aws.client("dynamodb")
        self.waited_s = 0.0
        self._seen: dict[str, Any] | None = None  # the log as this taker last saw it (None: never)

    def acquire(self, timeout_s: float = 600.0) -> None:
        """Take one start, waiting for it if need be; RateLimited past the deadline."""
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
        """Start at `now`, provided `reserve` more places stay in the window (one for each taker ahead
        in a queue, fair_turns.py): None when taken, else the seconds until that many are free."""
        if reserve >= self.burst:  # more than the window holds: those ahead go first
            return (reserve - self.burst + 1) * self.interval
        while True:
            entry = uuid.uuid4().hex[:16]  # this start's key in the log
            seen = self._seen
            if seen is None or "starts" not in seen:  # no log yet, as far as we know: start one
                log = {"starts": {entry: round(now, 6)}, "gen": uuid.uuid4().hex[:8]}
                # (dropping the token bucket's time an item written before the log may hold)
                found = self._update(
                    "SET starts = :starts, gen = :gen REMOVE tat", "attribute_not_exists(starts)", {}, **log
                )
                if found is None:
                    self._seen = log
            else:
                found = self._add(seen, entry, now, reserve)
            if found is None:
                return None
            self._seen = found
            live = sorted(t for t in found.get("starts", {}).values() if t > self._expired_by(now))
            leaving = len(live) - (self.burst - 1 - reserve)  # starts that must leave the window first
            if leaving > 0:
                return max(live[leaving - 1] + self.window_s + self.margin_s - now, 0.001)
            # Room now: the refusal was a race lost to a clean-up, or the log was new to us: again.

    def _expired_by(self, now: float) -> float:
        """The latest start that has left the window at `now` (the margin kept for clocks that run ahead)."""
        return now - self.window_s - self.margin_s

    def _add(self, seen: dict[str, Any], entry: str, now: float, reserve: int) -> dict[str, Any] | None:
        """Add `entry` to the log as `seen` knew it; None when added, else the item as it is now."""
        expired = [key for key, t in seen["starts"].items() if t <= self._expired_by(now)]
        gen = seen["gen"]
        names = {"#e": entry}
        update = "SET starts.#e = :now"
        if len(expired) >= self.burst:  # clear them out, under a new gen: a view holding them is stale
            names.update({f"#x{n}": key for n, key in enumerate(expired)})
            update += ", gen = :next REMOVE " + ", ".join(f"starts.#x{n}" for n in range(len(expired)))
            gen = uuid.uuid4().hex[:8]
        # The view's expired entries are all still in the map under the same gen: the rest are live.
        found = self._update(
            update,
            "gen = :gen AND size(starts) <= :most AND attribute_not_exists(starts.#e)",
            names,
            now=round(now, 6),
            gen=seen["gen"],
            most=self.burst - 1 - reserve + len(expired),
            **({"next": gen} if gen != seen["gen"] else {}),
        )
        if found is None:
            kept = {k: t for k, t in seen["starts"].items() if gen == seen["gen"] or k not in expired}
            self._seen = {"starts": {**kept, entry: round(now, 6)}, "gen": gen}
        return found

    def _update(self, expression: str, condition: str, names: dict[str, str], **values: Any) -> dict[str, Any] | None:
        """None when the conditional update was applied, else the item as the refusal found it."""
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key=to_item({"bucket_id": self.name}),
                UpdateExpression=expression,
                ConditionExpression=condition,
                **({"ExpressionAttributeNames": names} if names else {}),
                ExpressionAttributeValues=expression_values(**values),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if conditional_check_failed(error):
                return from_item(error.response.get("Item", {}))  # type: ignore[arg-type]
            raise
        return None
