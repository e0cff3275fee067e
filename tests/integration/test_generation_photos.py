"""Many photos in one POST /generate-images (`s3_urls` as a list): a job per photo, answered together
as `photos`, one failing photo never failing the others; a single string is answered as before."""

from __future__ import annotations

import io
import time
import uuid
from urllib.parse import urlsplit

import requests
from PIL import Image

from listing_vision import aws
from local.stack import LocalStack
from tests.integration.test_generation import RESPOND_ASYNC, earring_photo, stored_source, wait
from tests.stores import changed, fingerprint, settle


def flat_photo() -> bytes:
    """A photo with no piece in it: one colour all over."""
    buffer = io.BytesIO()
    Image.new("RGB", (600, 600), (236, 234, 230)).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def test_each_photo_of_a_list_gets_its_own_results_and_a_failing_photo_fails_alone(local_stack: LocalStack) -> None:
    # Given two stored earring photos, a storefront object with no piece in it, a missing object and a foreign URL
    first, second = stored_source(local_stack, earring_photo(81)), stored_source(local_stack, earring_photo(82))
    blank_key = f"console/flat-{time.time_ns()}.jpg"
    aws.client("s3").put_object(Bucket="alyaimg", Key=blank_key, Body=flat_photo())
    settle(local_stack)
    urls = [first, "s3://alyaimg/catalogue/missing.jpg", f"s3://alyaimg/{blank_key}", "file:///etc/passwd", second]
    # When they are submitted in one request, the original synchronous way (no Prefer header)
    answer = requests.post(
        f"{local_stack.url}/generate-images",
        json={"s3_urls": urls, "product_type": "ear", "image_types": [1]},
        timeout=60,
    )
    # Then the answer holds one entry per photo, in the request's order, once every job has ended
    assert answer.status_code == 200, answer.text
    photos = answer.json()["photos"]
    assert [p["s3_url"] for p in photos] == urls
    # Each good photo has its own job and images, in the single-photo shape
    for entry in (photos[0], photos[4]):
        assert entry["status"] == "done" and [g["image_type"] for g in entry["gen_images"]] == [1]
        assert entry["original_image_url"] and entry["zip_url"] and entry["failed"] == []
    assert photos[0]["job_id"] != photos[4]["job_id"]
    # The missing and the foreign photo carry their error and started nothing
    assert photos[1]["status"] == "failed" and photos[1]["error"]["code"] == "source_not_found"
    assert photos[3]["status"] == "failed" and photos[3]["error"]["code"] == "source_not_allowed"
    assert "job_id" not in photos[1] and "job_id" not in photos[3]
    # The photo with no piece (one flat colour) is a job that ended failed with its reason, the others untouched
    assert photos[2]["status"] == "failed" and photos[2]["gen_images"] == []
    assert [f["reason"] for f in photos[2]["failed"]] == ["blank_image"]
    # And each job is its own, reported by GET /jobs/{id} as the entry said
    job = requests.get(f"{local_stack.url}/jobs/{photos[4]['job_id']}", timeout=10).json()
    assert job["status"] == "done" and job["original_image_url"].split("?")[0] == second.split("?")[0]


def test_a_list_asked_asynchronously_is_answered_at_once_with_a_job_per_photo(local_stack: LocalStack) -> None:
    # Given two stored photos
    urls = [stored_source(local_stack, earring_photo(83)), stored_source(local_stack, earring_photo(84))]
    # When they are submitted with `Prefer: respond-async`
    answer = requests.post(
        f"{local_stack.url}/generate-images",
        headers=RESPOND_ASYNC,
        json={"s3_urls": urls, "product_type": "ear", "image_types": [1]},
        timeout=30,
    )
    # Then it is a 202 at once, each photo with its job to follow (no single Location for several jobs)
    assert answer.status_code == 202, answer.text
    assert answer.headers["Preference-Applied"] == "respond-async" and "Location" not in answer.headers
    photos = answer.json()["photos"]
    assert [p["s3_url"] for p in photos] == urls
    assert all(p["status"] in ("queued", "running") and p["status_url"] == f"/jobs/{p['job_id']}" for p in photos)
    # And every job finishes on its own
    for entry in photos:
        assert wait(local_stack, entry["job_id"])["status"] == "done"


def test_a_list_that_cannot_be_a_batch_writes_nothing(local_stack: LocalStack) -> None:
    # Given a stored photo named twice, in two URL forms
    source = stored_source(local_stack, earring_photo(85))
    bucket, key = urlsplit(source).path.lstrip("/").split("/", 1)  # the local stack's path-style URL
    settle(local_stack)
    before = fingerprint()
    # When it is submitted with another good photo
    answer = requests.post(
        f"{local_stack.url}/generate-images",
        json={"s3_urls": [source, f"s3://{bucket}/{key}"], "product_type": "ear"},
        timeout=30,
    )
    # Then the request is refused whole, and no job was written or started
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "duplicate_photos"
    assert answer.json()["error"]["details"] == {"positions": [0, 1]}  # not the URLs: they may be signed
    settle(local_stack)
    assert changed(before, fingerprint()) == []


def test_a_retried_list_with_its_idempotency_key_starts_no_job_twice(local_stack: LocalStack) -> None:
    # Given a list of two photos sent with an Idempotency-Key, asynchronously
    urls = [stored_source(local_stack, earring_photo(86)), stored_source(local_stack, earring_photo(87))]
    headers = {**RESPOND_ASYNC, "Idempotency-Key": str(uuid.uuid4())}
    body = {"s3_urls": urls, "product_type": "ear", "image_types": [1]}
    first = requests.post(f"{local_stack.url}/generate-images", headers=headers, json=body, timeout=30)
    assert first.status_code == 202, first.text
    jobs = [p["job_id"] for p in first.json()["photos"]]
    for job_id in jobs:
        wait(local_stack, job_id)
    settle(local_stack)
    before = fingerprint()
    # When the client retries it (it lost the answer)
    again = requests.post(f"{local_stack.url}/generate-images", headers=headers, json=body, timeout=30)
    settle(local_stack)
    assert changed(before, fingerprint()) == []  # no job, no image, no record written
    # Then it is answered for the same jobs, now ended, and no job was started for the retry
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true", again.text
    assert [p["job_id"] for p in again.json()["photos"]] == jobs
    assert all(p["status"] == "done" and p["gen_images"] for p in again.json()["photos"])
