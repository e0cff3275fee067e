"""A generation worker dying right after each of its durable writes, with the stores kept, as AWS
fails (tests/crash.py kills the deployed function on the local stack).

A run's writes, recorded from a run that nobody kills: the claim of the run (jobs table), the
quota charge, the turn and the rate-limit token of the paid edit (rate-limit table), the edited
image (generated bucket), its result (jobs table), the white-background image and its result, the
ZIP, the end of the run. The worker dies right after each in turn; Lambda's own retry of the
asynchronous event follows (same request id), and then:

- the job ends (`done`), never stuck running;
- no image is stored twice (one object per type, and the ZIP), and every delivered image is kept;
- no paid edit is made twice: an edited image stored by the dead attempt is reused by the retry.

When every attempt dies (the retries spent), the run's deadline ends it `partial`, keeping what it
delivered, each undelivered type failed with `worker_timeout`, and a late result is refused.

Each kill point and what it left before the retry are printed as a table (`pytest -s`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from doubles.loopback import OPENAI_IMAGE_EDITS, LoopbackServer
from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.jewelry.generation import resolve_source
from listing_vision.jewelry.generation_worker import output_prefix
from listing_vision.jewelry.jobs import JobStore, RunJob
from local.stack import LocalStack
from tests.crash import dying, table
from tests.integration.test_generation import RESPOND_ASYNC, earring_photo, stored_source, wait
from tests.stores import settle

EDITS = OPENAI_IMAGE_EDITS
WORKER = "generate-worker"
TYPES = [1, 2]  # white background (rendered here) and hand holding (a paid edit)
RUN_WRITES = [
    "UpdateItem jobs",  # the claim
    "UpdateItem rate-limits",  # the run's day of charge (its first charge's: a retry after midnight keeps it)
    "UpdateItem rate-limits",  # the run's edits counted against its client's quota of that day
    "UpdateItem rate-limits",  # the edit's turn: its ticket in the queue
    "UpdateItem rate-limits",  # its look at the queue (its turn)
    "UpdateItem rate-limits",  # the edit's token
    "UpdateItem rate-limits",  # its ticket leaves the queue
    "PutObject generated/2-hand-holding.png",
    "UpdateItem jobs",  # its result
    "PutObject generated/1-white-background.png",
    "UpdateItem jobs",  # its result
    "PutObject generated/catalogue.zip",
    "UpdateItem jobs",  # the end of the run
    "PutEvents",  # its announcement (a retry finds the run ended: nothing is announced twice)
]


@pytest.fixture
def provider(edit_provider: Callable[..., None], image_server: LoopbackServer) -> LoopbackServer:
    """The loopback image-edit server as the paid provider; one type at a time, so a run's writes
    come in one order (the kill points)."""
    edit_provider(image_server, IMAGE_EDIT_CONCURRENCY="1")
    return image_server


def stored(job_id: str, website: str = "alya") -> list[str]:
    """The objects of a job in the generated bucket (its images and ZIP)."""
    prefix = f"{website}/{job_id}/"
    listing = aws.client("s3").list_objects_v2(Bucket=get_settings().generated_bucket, Prefix=prefix)
    return sorted(item["Key"].removeprefix(prefix) for item in listing.get("Contents", []))


def state(job_id: str, edits: LoopbackServer) -> dict[str, Any]:
    job = JobStore().get(job_id)
    return {
        "status": job.status,
        "results": {n: r["status"] for n, r in sorted(job.results.items())},
        "objects": stored(job_id),
        "edits": len(edits.calls(EDITS)),
    }


def submit(local_stack: LocalStack, source: str) -> str:
    answer = requests.post(
        f"{local_stack.url}/generate-images",
        timeout=30,
        headers=RESPOND_ASYNC,
        json={"s3_urls": source, "product_type": "ear", "image_types": TYPES},
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["job_id"])


class Submitted:
    """A job's id, known once the submission is answered. The worker runs as soon as the job is
    queued, so it can die (and the probe read what it left) before the test thread has the id:
    the probe waits for it."""

    def __init__(self) -> None:
        self._id = ""
        self._known = threading.Event()

    def set(self, job_id: str) -> None:
        self._id = job_id
        self._known.set()

    def id(self) -> str:
        assert self._known.wait(timeout=120), "the job's submission was never answered"
        return self._id


def test_a_worker_killed_after_any_write_ends_its_job_once_after_lambdas_retry(
    local_stack: LocalStack, provider: LoopbackServer
) -> None:
    source = stored_source(local_stack, earring_photo(27))
    # Given the worker's writes, recorded from a run that nobody kills
    with dying(WORKER, after=None) as recorded:
        clean = wait(local_stack, submit(local_stack, source))
    assert clean["status"] == "done" and recorded.writes == [RUN_WRITES]
    rows = []
    for kill_point in range(1, len(RUN_WRITES) + 1):
        job = Submitted()
        edits_before = len(provider.calls(EDITS))

        def probe(job: Submitted = job) -> dict[str, Any]:
            return state(job.id(), provider)

        # When a job's worker dies right after its k-th write, and Lambda retries the event
        with dying(WORKER, after=kill_point, probe=probe) as death:
            job.set(submit(local_stack, source))
            view = wait(local_stack, job.id())
        # Then the job ended, every type delivered, each image stored once, and the edit paid once
        assert death.died == 1 and death.writes[0] == RUN_WRITES[:kill_point]
        assert view["status"] == "done" and view["failed"] == [], view
        assert [g["image_type"] for g in view["gen_images"]] == TYPES
        assert stored(job.id()) == ["1-white-background.png", "2-hand-holding.png", "catalogue.zip"]
        paid = len(provider.calls(EDITS)) - edits_before
        assert paid == 1, f"the edit was paid {paid} times"
        left, retried = death.left[0], death.writes[1] if len(death.writes) > 1 else []
        rows.append(
            (
                str(kill_point),
                RUN_WRITES[kill_point - 1],
                f"{left['status']}, results {left['results'] or '{}'}, objects {left['objects'] or '[]'}",
                f"{view['status']}, the retry wrote {len(retried)}, edit paid {paid}x",
            )
        )
    print("\n" + table(rows, ("kill", "right after", "left before the retry", "after Lambda's retry")))


def test_a_run_whose_every_attempt_dies_ends_partial_at_its_deadline_keeping_what_it_delivered(
    local_stack: LocalStack, provider: LoopbackServer
) -> None:
    # Given a job whose run has a deadline a second away
    bucket, key = resolve_source(stored_source(local_stack, earring_photo(28)))
    jobs = JobStore()
    jobs.deadline_s = 1
    job = jobs.create("earring", "alya", bucket, key, TYPES, None)
    # When its worker dies right after recording the edited image, and its retry right after the claim
    recorded = RUN_WRITES.index("UpdateItem jobs", 1) + 1  # the edited image's result written
    with dying(WORKER, after=(recorded, 1)) as death:
        event = RunJob(job_id=job.job_id, run_id=job.run_id).model_dump()
        local_stack.router.invoke(WORKER, json.dumps(event), asynchronous=True)
        settle(local_stack)
    assert death.died == 2 and death.writes == [RUN_WRITES[:recorded], RUN_WRITES[:1]]
    assert jobs.get(job.job_id).status == "running"  # the retries are spent
    # Then once its deadline has passed, the job has ended partial, keeping the image it delivered
    while time.time() <= job.deadline_at:
        time.sleep(0.1)
    view = requests.get(f"{local_stack.url}/jobs/{job.job_id}", timeout=30).json()
    assert view["status"] == "partial", view
    assert [g["image_type"] for g in view["gen_images"]] == [2]
    assert [(f["image_type"], f["reason"]) for f in view["failed"]] == [(1, "worker_timeout")]
    assert requests.get(view["gen_images"][0]["image_url"], timeout=30).status_code == 200
    assert stored(job.job_id) == ["2-hand-holding.png"]
    # And a worker that comes back late cannot rewrite the ended run
    late = {"status": "ok", "key": f"{output_prefix(job)}1-white-background.png", "run_id": job.run_id}
    assert jobs.record(job.job_id, job.run_id, 1, late) is False
    assert jobs.get(job.job_id).results[1]["reason"] == "worker_timeout"
