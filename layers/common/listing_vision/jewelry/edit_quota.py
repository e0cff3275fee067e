"""Each client key's image edits per UTC day (IMAGE_EDITS_PER_CLIENT_PER_DAY, stage context
`image_edits_per_client_per_day`), counted in the rate-limit table.

A run charges all its edits at once, before its first paid call: one conditional update adds them
to the client's count of the day and the run's id to the day's runs, provided the count stays within
the quota and the run was not charged already. A refused charge spends nothing, and the run ends
`failed` with `quota_exceeded` (generation_worker.py); a retry of a charged run (Lambda's, after a
worker died) finds its id there and is not charged twice. The day is the run's, not the retry's: a
run's first charge records the day it is charged on (`edit-charge#<run id>`, first writer wins), and
its retries charge that day, so a run charged before UTC midnight and retried after is not charged
again on the new day. Edits that then fail still count: the quota bounds what clients may start, not
what the provider delivers. Both items expire (`expires_at`, the table's TTL) KEPT_DAYS after their day.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from botocore.exceptions import ClientError

from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.dynamodb_items import conditional_check_failed, expression_values, from_item, to_item

KEPT_DAYS = 2  # a day's count and its runs' charge days stay this long after the day ends (then TTL)


def day_of(now: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(now))


def quota_key(client: str, now: float) -> str:
    return f"edit-quota#{client}#{day_of(now)}"


def _expires_at(now: float) -> int:
    return (int(now) // 86400 + 1 + KEPT_DAYS) * 86400


class EditQuota:
    def __init__(self, per_day: int | None = None, table: str | None = None, clock: Callable[[], float] = time.time):
        settings = get_settings()
        self.per_day = settings.image_edits_per_client_per_day if per_day is None else per_day
        self.table = table or settings.rate_limit_table
        self.clock = clock
        self.dynamodb = aws.client("dynamodb")

    def charge(self, client: str, run_id: str, edits: int) -> bool:
        """Count a run's edits against the client's quota of the day: False when they do not fit."""
        if edits <= 0:
            return True
        if edits > self.per_day:
            return False  # more than a day's quota: never charged
        now = self.clock()
        # the run's day: the one its first charge recorded (a retry after midnight charges that day)
        marked = self.dynamodb.update_item(
            TableName=self.table,
            Key=to_item({"bucket_id": f"edit-charge#{run_id}"}),
            UpdateExpression="SET charge_day = if_not_exists(charge_day, :day), "
            "expires_at = if_not_exists(expires_at, :expires)",
            ExpressionAttributeValues=expression_values(day=day_of(now), expires=_expires_at(now)),
            ReturnValues="ALL_NEW",
        )
        day = str(from_item(marked["Attributes"])["charge_day"])
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key=to_item({"bucket_id": f"edit-quota#{client}#{day}"}),
                UpdateExpression="ADD used :edits, runs :run SET expires_at = if_not_exists(expires_at, :expires)",
                ConditionExpression="(attribute_not_exists(used) OR used <= :room) "
                "AND (attribute_not_exists(runs) OR NOT contains(runs, :run_id))",
                ExpressionAttributeValues=expression_values(
                    edits=edits, run={run_id}, room=self.per_day - edits, run_id=run_id, expires=_expires_at(now)
                ),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not conditional_check_failed(error):
                raise
            found = from_item(error.response.get("Item") or {})  # type: ignore[arg-type]
            return run_id in found.get("runs", set())  # charged already: this is its retry
        return True

    def used(self, client: str) -> int:
        """Edits the client has started today."""
        item = self.dynamodb.get_item(
            TableName=self.table, Key=to_item({"bucket_id": quota_key(client, self.clock())}), ConsistentRead=True
        ).get("Item")
        return int(from_item(item).get("used", 0)) if item else 0
