"""A presigned upload form is one-shot: a second post of it never replaces or adds a catalogue photo.

The policy pins a key, not a single use (on AWS as locally), so the form's `incoming/<id>` key is only
an inbox: the indexer copies a valid photo to its content key and claims the upload id once
(listing_vision/jewelry/upload_claims.py). Through the local gateway and the local S3, which
enforces the POST policy as AWS does."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import requests

from listing_vision import aws
from listing_vision.jewelry import backfill, storage
from local.stack import LocalStack
from tests.images import fresh_image
from tests.integration.dedupe.conftest import catalogue_record, milvus_rows, tags
from tests.stores import settle


def grant(local_stack: LocalStack, website: str = "alya") -> dict[str, Any]:
    asked = {"website": website, "content_type": "image/jpeg"}
    answer = requests.post(f"{local_stack.url}/uploads", json=asked, timeout=10)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def post_with(form: dict[str, Any], data: bytes) -> None:
    files = {"file": ("piece.jpg", data, "image/jpeg")}
    posted = requests.post(form["url"], data=form["fields"], files=files, timeout=30)
    assert posted.status_code in (200, 204), posted.text


def status(local_stack: LocalStack, form: dict[str, Any], website: str = "alya") -> dict[str, Any]:
    answer = requests.get(f"{local_stack.url}/uploads/{form['upload_id']}", params={"website": website}, timeout=10)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def catalogue_uri(data: bytes, bucket: str = "alyaimg") -> str:
    return f"s3://{bucket}/{storage.catalogue_key(storage.sha256_hex(data), 'JPEG')}"


def test_a_form_used_twice_keeps_the_first_photo_and_records_the_second_as_form_reused(
    local_stack: LocalStack,
) -> None:
    s3 = aws.client("s3")
    first, second = fresh_image(27_301), fresh_image(27_302)
    # Given a form whose photo was catalogued (by its copy under its content key)
    form = grant(local_stack)
    post_with(form, first)
    settle(local_stack)
    answered = status(local_stack, form)
    assert answered["status"] == "indexed" and requests.get(answered["s3_url"], timeout=30).content == first
    record = catalogue_record("alya", storage.sha256_hex(first))
    assert record["path"]["S"] == catalogue_uri(first)
    # When the same form posts another photo
    post_with(form, second)
    settle(local_stack)
    # Then the first photo, its record and its vector are unchanged, and the status still answers it
    copy = storage.StoredImage.from_uri(catalogue_uri(first))
    assert s3.get_object(Bucket=copy.bucket, Key=copy.key)["Body"].read() == first
    assert catalogue_record("alya", storage.sha256_hex(first)) == record
    assert milvus_rows(storage.sha256_hex(first), "alya") == 1
    again = status(local_stack, form)
    assert again == {**answered, "s3_url": again["s3_url"], "reason": "form_reused"}
    assert requests.get(again["s3_url"], timeout=30).content == first
    # And the second photo is neither stored nor indexed: its inbox object says form_reused (and expires)
    assert catalogue_record("alya", storage.sha256_hex(second)) == {}
    assert milvus_rows(storage.sha256_hex(second), "alya") == 0
    assert (
        s3.list_objects_v2(Bucket="alyaimg", Prefix=storage.catalogue_key(storage.sha256_hex(second), "JPEG"))[
            "KeyCount"
        ]
        == 0
    )
    assert tags("alyaimg", form["key"]) == {"dedupe-status": "form_reused", "reason": "form_reused"}


def test_a_form_whose_first_post_was_broken_can_post_the_photo_again(local_stack: LocalStack) -> None:
    photo = fresh_image(27_311)
    # Given a form whose first post was not an image (refused: it spends nothing)
    form = grant(local_stack)
    post_with(form, b"\xff\xd8\xff not really a jpeg")
    settle(local_stack)
    assert status(local_stack, form) == {"upload_id": form["upload_id"], "status": "invalid", "reason": "corrupt_image"}
    # When the same form posts the real photo
    post_with(form, photo)
    settle(local_stack)
    # Then the photo is catalogued, and the form's status says so
    answered = status(local_stack, form)
    assert answered["status"] == "indexed" and requests.get(answered["s3_url"], timeout=30).content == photo
    assert catalogue_record("alya", storage.sha256_hex(photo))["path"]["S"] == catalogue_uri(photo)
    assert milvus_rows(storage.sha256_hex(photo), "alya") == 1


def test_a_form_posted_twice_at_once_catalogues_one_photo(local_stack: LocalStack) -> None:
    # Given forms, each posted with two different photos at the same moment
    forms = [grant(local_stack) for _ in range(3)]
    photos = [(fresh_image(27_320 + 2 * i), fresh_image(27_321 + 2 * i)) for i in range(len(forms))]
    start = threading.Barrier(2 * len(forms))
    errors: list[BaseException] = []

    def send(form: dict[str, Any], data: bytes) -> None:
        try:
            start.wait()
            post_with(form, data)
        except BaseException as error:  # noqa: BLE001 - reported by the test's thread, not swallowed
            errors.append(error)

    posts = [(form, data) for form, pair in zip(forms, photos, strict=True) for data in pair]
    threads = [threading.Thread(target=send, args=post) for post in posts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    settle(local_stack)
    assert errors == []
    # Then each form catalogued exactly one of its two photos, the one its status answers
    for form, pair in zip(forms, photos, strict=True):
        stored = [data for data in pair if catalogue_record("alya", storage.sha256_hex(data))]
        assert len(stored) == 1, form["upload_id"]
        assert sum(milvus_rows(storage.sha256_hex(data), "alya") for data in pair) == 1
        answered = status(local_stack, form)
        assert answered["status"] == "indexed" and requests.get(answered["s3_url"], timeout=30).content == stored[0]


@pytest.mark.parametrize("website", ["alya", "blysk"])  # each storefront's bucket: the role's grant on each
def test_the_backfill_catalogues_an_inbox_upload_by_its_copy(local_stack: LocalStack, website: str) -> None:
    s3, photo = aws.client("s3"), fresh_image(27_331 if website == "blysk" else 27_332)
    bucket = f"{website}img"
    # Given a presigned upload that arrived while the upload trigger was off
    form = grant(local_stack, website)
    saved = s3.get_bucket_notification_configuration(Bucket=bucket)
    saved.pop("ResponseMetadata", None)
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    try:
        post_with(form, photo)
    finally:
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=saved)
    # When the backfill function indexes the inbox
    pages = list(backfill.pages(website, "", 10, form["key"], via_lambda="dedupe-backfill"))
    # Then the photo is catalogued under its content key, and the form is spent
    assert pages[0]["counts"] == {"indexed": 1}
    assert catalogue_record(website, storage.sha256_hex(photo))["path"]["S"] == catalogue_uri(photo, bucket)
    assert status(local_stack, form, website)["status"] == "indexed"
