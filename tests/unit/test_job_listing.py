"""The job listing's cursor and statuses, without a store: a cursor names the next page's key for
one storefront and one filter only, and the API's status enum is the job store's."""

from __future__ import annotations

import typing

import pytest

from functions.generate.handler import JobStatus
from listing_vision.dynamodb_items import to_item
from listing_vision.errors import InvalidRequest
from listing_vision.jewelry.job_listing import _CURSORS, _scope, decode_cursor, encode_cursor
from listing_vision.jewelry.jobs import STATUSES

KEY = to_item({"job_id": "ab" * 16, "website": "alya", "created_at": 1_780_000_000})


def test_the_api_offers_every_job_status() -> None:
    # Given the statuses a job can have, Then GET /jobs filters on exactly those
    assert set(typing.get_args(JobStatus)) == set(STATUSES)


def test_a_cursor_gives_back_its_key_for_its_own_storefront_and_status() -> None:
    # Given a cursor of alya's `done` jobs
    cursor = encode_cursor("alya", "done", KEY)
    # Then it decodes to the key it was made from, for that listing only
    assert decode_cursor(cursor, "alya", "done") == KEY
    for website, status in (("blysk", "done"), ("alya", None), ("alya", "failed")):
        with pytest.raises(InvalidRequest) as refused:
            decode_cursor(cursor, website, status)
        assert refused.value.code == "invalid_cursor"


@pytest.mark.parametrize("created_at", [10**40, 2**63, -1])
def test_a_cursor_whose_time_no_job_has_is_refused_not_failed_on(created_at: int) -> None:
    # Given a cursor with the listing's own digest (a check, not a secret: anyone can make one) over a
    # created_at no job has, one beyond DynamoDB's 38 digits included
    cursor = _CURSORS.seal(_scope("alya", None), "ab" * 16, created_at)
    # When it is decoded, Then it is refused as a cursor the listing never returned (not a 500)
    with pytest.raises(InvalidRequest) as refused:
        decode_cursor(cursor, "alya", None)
    assert refused.value.code == "invalid_cursor"
