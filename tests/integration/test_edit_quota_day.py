"""A client's daily edit quota (jewelry/edit_quota.py) against the UTC day's edge, and its items' expiry,
in the local stack's rate-limit table (its TTL declared once in listing_vision.resources)."""

from __future__ import annotations

import calendar
import uuid

from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.dynamodb_items import from_item, to_item
from listing_vision.jewelry.edit_quota import EditQuota
from local.stack import LocalStack

MIDNIGHT = calendar.timegm((2026, 12, 8, 0, 0, 0))


def test_a_run_charged_before_midnight_and_retried_after_is_charged_once(local_stack: LocalStack) -> None:
    # Given a run of 3 edits charged to its client a second before UTC midnight
    client, run = f"client-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    before, after = EditQuota(per_day=5, clock=lambda: MIDNIGHT - 1), EditQuota(per_day=5, clock=lambda: MIDNIGHT + 1)
    assert before.charge(client, run, 3)
    # When the run is retried (its worker died) a second after midnight
    assert after.charge(client, run, 3)
    # Then it counts on the day it was first charged only: the new day is whole
    assert (before.used(client), after.used(client)) == (3, 0)
    assert after.charge(client, uuid.uuid4().hex, 5)  # a new run of the new day gets all of it


def test_quota_items_expire(local_stack: LocalStack) -> None:
    # Given a charged run
    client, run = f"client-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    assert EditQuota(per_day=5, clock=lambda: MIDNIGHT - 1).charge(client, run, 2)
    # Then the day's count and the run's charge day carry an expiry after the day, which the table's TTL reads
    table = get_settings().rate_limit_table
    dynamodb = aws.client("dynamodb")
    ttl = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
    for key in (f"edit-quota#{client}#2026-12-07", f"edit-charge#{run}"):
        item = from_item(dynamodb.get_item(TableName=table, Key=to_item({"bucket_id": key}))["Item"])
        assert MIDNIGHT < int(item["expires_at"]) <= MIDNIGHT + 3 * 86400, key
