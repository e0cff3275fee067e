"""The asynchronous paths end, and end where AWS would: every job ends (done, partial or failed
with a reason) whatever its worker meets; one regeneration of a job at a time; a redelivered run
does nothing; events that fail their retries reach the function's failure queue; generated
outputs never reach the catalogue index; the S3 wiring is the declared one."""

from __future__ import annotations

import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from PIL import Image

from functions.specs import spec
from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.jewelry import vector_index
from listing_vision.jewelry.jobs import JobStore
from local.lambda_runtime import invoke
from local.stack import LocalStack
from tests.integration.test_generation import RESPOND_ASYNC, earring_photo, stored_source, wait
from tests.stores import settle


def submit(local_stack: LocalStack, source: str, types: list[int]) -> dict[str, Any]:
    answer = requests.post(
        f"{local_stack.url}/generate-images",
        timeout=10,
        headers=RESPOND_ASYNC,
        json={"s3_urls": source, "product_type": "ear", "image_types": types},
    )
    assert answer.status_code == 202, answer.text
    return dict(answer.json())


def milvus_paths() -> set[str]:
    rows = vector_index.milvus_client().query(
        get_settings().milvus_collection, filter="id >= 0", output_fields=["path"], limit=16384
    )
    return {row["path"] for row in rows}


def test_a_finished_jobs_outputs_are_not_catalogue_photos(local_stack: LocalStack) -> None:
    # Given a stored blysk photo and a finished job on it
    source = stored_source(local_stack, earring_photo(21), website="blysk")
    indexed_before = milvus_paths()
    view = wait(local_stack, submit(local_stack, source, [1])["job_id"])
    settle(local_stack)
    assert view["status"] == "done"
    # Then its output lives in the generated bucket, and nothing generated was indexed
    settings = get_settings()
    assert f"/{settings.generated_bucket}/" in view["gen_images"][0]["image_url"]
    assert milvus_paths() == indexed_before
    storefront = aws.client("s3").list_objects_v2(Bucket=settings.bucket_for("blysk")).get("Contents", [])
    assert not [o for o in storefront if "generated" in o["Key"]]
    # And the white-background image, uploaded as a product photo, is new, not "a duplicate of generated/…"
    white = requests.get(view["gen_images"][0]["image_url"], timeout=10).content
    answer = requests.post(
        f"{local_stack.url}/image_similarity_search",
        files={"file": ("white.png", white, "image/png")},
        data={"website": "blysk"},
        timeout=30,
    ).json()
    assert "generated" not in json.dumps(answer)


def test_a_worker_that_raises_ends_its_job_failed(local_stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a job whose outputs cannot be written (the generated bucket does not exist: as AccessDenied would)
    source = stored_source(local_stack, earring_photo(22))
    store = JobStore()
    job = store.create("earring", "alya", *source_location(source), [1], None)
    monkeypatch.setenv("GENERATED_BUCKET", "no-such-bucket")
    get_settings.cache_clear()
    assert local_stack.recorder is not None
    try:
        # When the worker runs it (as its asynchronous invocation would; misconfigured, so not recorded)
        with local_stack.recorder.paused():
            result = invoke(
                local_stack.router.handler_for("generate-worker"),
                "generate-worker",
                {"operation": "run_job", "job_id": job.job_id, "run_id": job.run_id},
            )
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    # Then the run ended failed, with a reason, and the job says so
    assert result["status"] == "failed"
    view = requests.get(f"{local_stack.url}/jobs/{job.job_id}", timeout=10).json()
    assert view["status"] == "failed" and view["failed"][0]["reason"] == "internal_error"
    # And a redelivery of the same event does nothing
    again = invoke(
        local_stack.router.handler_for("generate-worker"),
        "generate-worker",
        {"operation": "run_job", "job_id": job.job_id, "run_id": job.run_id},
    )
    assert again["status"] == "skipped"


def test_a_source_that_cannot_be_decoded_ends_the_job_failed(local_stack: LocalStack) -> None:
    # Given a storefront object that is a truncated JPEG (the trigger marks it invalid; a job may still name it)
    key = f"console/broken-{time.time_ns()}.jpg"
    aws.client("s3").put_object(Bucket="alyaimg", Key=key, Body=earring_photo(23)[:300])
    settle(local_stack)
    view = wait(local_stack, submit(local_stack, f"s3://alyaimg/{key}", [1, 2])["job_id"])
    assert view["status"] == "failed" and view["reason"] == "corrupt_image"
    assert {f["reason"] for f in view["failed"]} == {"corrupt_image"}


def test_a_run_past_its_deadline_is_reported_failed(local_stack: LocalStack) -> None:
    # Given a job whose worker never ran (its event was lost) and whose deadline has passed
    source = stored_source(local_stack, earring_photo(24))
    store = JobStore()
    store.deadline_s = 0
    job = store.create("earring", "alya", *source_location(source), [1], None)
    time.sleep(0.01)
    # When anyone looks at it, it has ended, with the reason
    view = requests.get(f"{local_stack.url}/jobs/{job.job_id}", timeout=10).json()
    assert view["status"] == "failed" and view["reason"] == "worker_timeout"
    # And the late worker, should it come, does nothing
    result = invoke(
        local_stack.router.handler_for("generate-worker"),
        "generate-worker",
        {"operation": "run_job", "job_id": job.job_id, "run_id": job.run_id},
    )
    assert result["status"] == "skipped"


def test_five_concurrent_regenerations_accept_exactly_one(local_stack: LocalStack) -> None:
    # Given a finished job
    source = stored_source(local_stack, earring_photo(25))
    job_id = submit(local_stack, source, [1])["job_id"]
    wait(local_stack, job_id)

    # When five regenerations of it arrive at once
    def regenerate(_: int) -> requests.Response:
        return requests.post(
            f"{local_stack.url}/regenerate-image", json={"job_id": job_id, "image_type": 1}, timeout=10
        )

    with ThreadPoolExecutor(max_workers=5) as pool:
        answers = list(pool.map(regenerate, range(5)))
    # Then one is accepted and the others are refused with 409, the job in progress
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [202, 409, 409, 409, 409]
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 409} == {"job_in_progress"}
    assert wait(local_stack, job_id)["status"] == "done"


# An event each asynchronously invoked function cannot handle.
UNHANDLED = {
    "dedupe-indexer": {"Records": [{"eventSource": "aws:s3", "s3": {"bucket": {"name": "alyaimg"}}}]},
    "generate-worker": {"operation": "run_job", "job_id": "not-a-job"},
    "listing-ingest": {"Records": [{"eventSource": "aws:s3", "s3": {"bucket": {"name": "listing-uploads"}}}]},
    "webhook-delivery": {"source": "elsewhere", "detail-type": "Something else", "detail": {}},
}


@pytest.mark.parametrize("function", sorted(UNHANDLED))
def test_an_event_that_fails_its_retries_reaches_the_failure_queue(local_stack: LocalStack, function: str) -> None:
    # Given an asynchronous function invoked with an event it cannot handle
    declared = spec(function)
    assert declared.asynchronous is not None and declared.failure_queue
    sqs = aws.client("sqs")
    queue = sqs.get_queue_url(QueueName=declared.failure_queue)["QueueUrl"]
    event = UNHANDLED[function]
    aws.client("lambda").invoke(FunctionName=function, InvocationType="Event", Payload=json.dumps(event).encode())
    settle(local_stack)
    # Then after its declared retries the event is in the function's failure queue, with the error
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    records = [json.loads(m["Body"]) for m in messages]
    (record,) = [r for r in records if r["requestPayload"] == event]
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == declared.asynchronous.retry_attempts + 1
    assert record["responsePayload"]["errorType"]


def test_the_uploads_trigger_takes_listing_documents_only(local_stack: LocalStack) -> None:
    # Given a photo dropped into the uploads bucket (not a .json listing document)
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 180, 40)).save(buffer, "JPEG")
    key = f"photos/{time.time_ns()}.jpg"
    before = local_stack.router.invocations.get("listing-ingest", 0)
    aws.client("s3").put_object(Bucket="listing-uploads", Key=key, Body=buffer.getvalue())
    settle(local_stack)
    # Then the ingest function was not invoked (the suffix filter, as declared and as on AWS)
    assert local_stack.router.invocations.get("listing-ingest", 0) == before
    # while a listing document is
    document = {"zpid": f"z{time.time_ns()}", "image_urls": [f"s3://listing-uploads/{key}"]}
    aws.client("s3").put_object(
        Bucket="listing-uploads", Key=f"listings/{document['zpid']}.json", Body=json.dumps(document)
    )
    settle(local_stack)
    assert local_stack.router.invocations.get("listing-ingest", 0) == before + 1


def source_location(s3_url: str) -> tuple[str, str]:
    from listing_vision.jewelry.generation import resolve_source

    return resolve_source(s3_url)


@pytest.mark.parametrize("website", ["alya", "blysk"])
def test_a_presigned_upload_is_indexed_in_either_storefront(local_stack: LocalStack, website: str) -> None:
    # Given an upload granted for a storefront, and a photo posted straight to S3 with it
    grant = requests.post(
        f"{local_stack.url}/uploads", json={"website": website, "content_type": "image/jpeg"}, timeout=10
    ).json()
    photo = earring_photo(30 if website == "alya" else 31)
    posted = requests.post(
        grant["url"], data=grant["fields"], files={"file": ("p.jpg", photo, "image/jpeg")}, timeout=30
    )
    assert posted.status_code in (200, 204), posted.text
    settle(local_stack)
    # Then its status is known through the API, in that storefront only
    status = requests.get(f"{local_stack.url}/uploads/{grant['upload_id']}", params={"website": website}, timeout=10)
    assert status.json()["status"] in ("indexed", "duplicate"), status.text
