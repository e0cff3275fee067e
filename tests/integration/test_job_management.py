"""Job management through the local gateway: GET /jobs lists a storefront's jobs newest first with a
checked cursor, DELETE /jobs/{id} cancels a job (no paid edit starts after it; what was delivered is
kept), and every run that ends is announced by exactly one EventBridge event on the jobs bus, read
here from moto's EventBridge through a rule that copies the bus to an SQS queue."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from doubles.loopback import OPENAI_IMAGE_EDITS, LoopbackServer, openai_image
from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.errors import Conflict
from listing_vision.jewelry.job_events import DETAIL_TYPE, SOURCE
from listing_vision.jewelry.jobs import JobStore, RunJob
from local.stack import LocalStack
from tests.integration.test_generation import RESPOND_ASYNC, earring_photo, stored_source, wait
from tests.stores import changed, fingerprint, settle

STOREFRONTS = ("alya", "blysk")


class FinishEvents:
    """What reaches an SQS queue subscribed to the jobs bus (every finish event, by job)."""

    def __init__(self) -> None:
        self.sqs = aws.client("sqs")
        self.events = aws.client("events")
        name = f"job-events-{uuid.uuid4().hex[:8]}"
        self.queue_url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]
        bus = get_settings().job_events_bus
        self.events.put_rule(
            Name=name, EventBusName=bus, EventPattern=json.dumps({"source": [SOURCE], "detail-type": [DETAIL_TYPE]})
        )
        self.events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn["QueueArn"]}])
        self.seen: list[dict[str, Any]] = []

    def of(self, job_id: str) -> list[dict[str, Any]]:
        """Every event put so far for the job (its detail), oldest first."""
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                break
            for message in messages:
                self.seen.append(json.loads(message["Body"])["detail"])
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return [event for event in self.seen if event["job_id"] == job_id]


@pytest.fixture(scope="module")
def finish_events(local_stack: LocalStack) -> FinishEvents:
    return FinishEvents()


@pytest.fixture
def slow_edits(edit_provider: Callable[..., None]) -> Iterator[LoopbackServer]:
    """The loopback images.edit server as the provider, each edit taking a second, one at a time."""
    server = LoopbackServer({OPENAI_IMAGE_EDITS: lambda request: openai_image(seed=7, delay_s=1.0)}).start()
    edit_provider(server, IMAGE_EDIT_CONCURRENCY="1", PROVIDER_MAX_RETRIES="0")
    yield server
    server.stop()


def submit(local_stack: LocalStack, website: str, seed: int, types: list[int]) -> str:
    # Seeds of their own: another module storing the same bytes first would make this upload a duplicate
    source = stored_source(local_stack, earring_photo(5_000 + seed), website)
    answer = requests.post(
        f"{local_stack.url}/generate-images",
        timeout=10,
        headers=RESPOND_ASYNC,
        json={"s3_urls": source, "product_type": "ear", "image_types": types},
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["job_id"])


def listing(local_stack: LocalStack, **params: Any) -> requests.Response:
    return requests.get(f"{local_stack.url}/jobs", params=params, timeout=10)


def every_page(local_stack: LocalStack, **params: Any) -> list[list[dict[str, Any]]]:
    pages, cursor = [], None
    while True:
        answer = listing(local_stack, **params, **({"cursor": cursor} if cursor else {}))
        assert answer.status_code == 200, answer.text
        pages.append(answer.json()["jobs"])
        cursor = answer.json()["next_cursor"]
        if cursor is None:
            return pages


@pytest.mark.parametrize("website", STOREFRONTS)
def test_a_storefronts_jobs_are_listed_newest_first_in_pages(
    local_stack: LocalStack, finish_events: FinishEvents, website: str
) -> None:
    # Given three finished jobs of the storefront, each created in a later second than the one before
    mine: list[str] = []
    for seed in (301, 302, 303):
        if mine:  # created_at is whole seconds, and the listing's order is created_at's
            previous = JobStore().get(mine[-1]).created_at
            while int(time.time()) <= previous:
                time.sleep(0.02)
        mine.append(submit(local_stack, website, seed + len(website), [1]))
        wait(local_stack, mine[-1])
    # When its jobs are listed two at a time
    pages = every_page(local_stack, website=website, limit=2)
    jobs = [job for page in pages for job in page]
    # Then every page holds at most two, each job is listed once, newest first, only this storefront's
    assert all(len(page) <= 2 for page in pages) and len(pages) >= 2
    ids = [job["job_id"] for job in jobs]
    assert len(ids) == len(set(ids)) and {job["website"] for job in jobs} == {website}
    assert [i for i in ids if i in mine] == mine[::-1]
    created = [job["created_at"] for job in jobs]
    assert created == sorted(created, reverse=True)
    # And each announced its end once
    assert [len(finish_events.of(job_id)) for job_id in mine] == [1, 1, 1]
    # The status filter keeps its own jobs only, paged the same way
    done = [job for page in every_page(local_stack, website=website, status="done", limit=2) for job in page]
    assert {job["status"] for job in done} == {"done"} and set(mine) <= {job["job_id"] for job in done}
    assert [
        job
        for page in every_page(local_stack, website=website, status="cancelled")
        for job in page
        if job["job_id"] in mine
    ] == []


def test_a_cursor_serves_only_its_own_storefront_and_status(local_stack: LocalStack) -> None:
    # Given a cursor of alya's jobs (two jobs at least: submitted here)
    for seed in (311, 312):
        wait(local_stack, submit(local_stack, "alya", seed, [1]))
    cursor = listing(local_stack, website="alya", limit=1).json()["next_cursor"]
    assert cursor
    before = fingerprint()
    # When it is used for blysk, for another status, or altered
    tampered = cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")
    answers = [
        listing(local_stack, website="blysk", limit=1, cursor=cursor),
        listing(local_stack, website="alya", status="done", limit=1, cursor=cursor),
        listing(local_stack, website="alya", limit=1, cursor=tampered),
    ]
    # Then each is refused, writing nothing
    assert [(a.status_code, a.json()["error"]["code"]) for a in answers] == [(400, "invalid_cursor")] * 3
    assert changed(before, fingerprint()) == []


@pytest.mark.parametrize("website", STOREFRONTS)
def test_a_cancel_stops_the_paid_edits_and_keeps_what_was_delivered(
    local_stack: LocalStack, slow_edits: LoopbackServer, finish_events: FinishEvents, website: str
) -> None:
    # Given a running job of three paid edits, made one at a time, the first under way
    job_id = submit(local_stack, website, 320 + len(website), [2, 4, 5])
    deadline = time.monotonic() + 300  # a hang guard, generous for a loaded machine
    while not slow_edits.calls(OPENAI_IMAGE_EDITS) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(slow_edits.calls(OPENAI_IMAGE_EDITS)) == 1
    # When it is cancelled
    cancelled = requests.delete(f"{local_stack.url}/jobs/{job_id}", params={"website": website}, timeout=10)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["reason"] == "cancelled"
    settle(local_stack)
    # Then no paid edit started after the cancel: the one under way is the only one made
    assert len(slow_edits.calls(OPENAI_IMAGE_EDITS)) == 1
    view = requests.get(f"{local_stack.url}/jobs/{job_id}", timeout=10).json()
    assert view["status"] == "cancelled"
    # and the image that edit paid for is kept (in the ZIP too), the others reported cancelled
    assert [g["image_type"] for g in view["gen_images"]] == [2]
    assert [(f["image_type"], f["reason"]) for f in view["failed"]] == [(4, "cancelled"), (5, "cancelled")]
    assert view["zip_url"] is not None
    # And the job announced its end once, as cancelled
    events = finish_events.of(job_id)
    assert [(e["status"], e["website"], e["reason"]) for e in events] == [("cancelled", website, "cancelled")]
    # Cancelling it again answers the same and announces nothing more
    again = requests.delete(f"{local_stack.url}/jobs/{job_id}", params={"website": website}, timeout=10)
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    assert len(finish_events.of(job_id)) == 1
    # The listing's status filter finds it
    found = every_page(local_stack, website=website, status="cancelled", limit=100)
    assert job_id in {job["job_id"] for page in found for job in page}


def test_a_finished_job_cannot_be_cancelled_and_nothing_is_written(
    local_stack: LocalStack, finish_events: FinishEvents
) -> None:
    # Given a finished job
    job_id = submit(local_stack, "alya", 330, [1])
    assert wait(local_stack, job_id)["status"] == "done"
    before = fingerprint()
    # When it is cancelled
    answer = requests.delete(f"{local_stack.url}/jobs/{job_id}", timeout=10)
    # Then it is a 409 that changes nothing and announces nothing
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "job_already_finished"
    assert answer.json()["error"]["details"] == {"status": "done"}
    assert changed(before, fingerprint()) == []
    assert [e["status"] for e in finish_events.of(job_id)] == ["done"]


def test_one_event_per_run_however_often_its_end_is_retried(
    local_stack: LocalStack, finish_events: FinishEvents
) -> None:
    # Given a job that finished, announced once with its counts
    job_id = submit(local_stack, "blysk", 340, [1, 2])  # 2 fails: no image-edit provider
    wait(local_stack, job_id)
    (event,) = finish_events.of(job_id)
    assert event["status"] == "partial" and event["counts"] == {"delivered": 1, "failed": 1, "pending": 0}
    job = JobStore().get(job_id)
    # When its run is ended again (a worker retried after its write, a deadline racing it) and its
    # worker's event is delivered again
    assert JobStore().finish(job_id, job.run_id, "failed", reason="worker_timeout") is False
    local_stack.router.call("generate-worker", RunJob(job_id=job_id, run_id=job.run_id).model_dump())
    settle(local_stack)
    # Then nothing more is announced
    assert len(finish_events.of(job_id)) == 1
    # While a regeneration is a new run, announced once when it ends
    again = requests.post(f"{local_stack.url}/regenerate-image", timeout=10, json={"job_id": job_id, "image_type": 1})
    assert again.status_code == 202
    wait(local_stack, job_id)
    runs = [e["run_id"] for e in finish_events.of(job_id)]
    assert len(runs) == 2 and runs[0] == job.run_id and runs[1] != job.run_id


def test_a_cancel_racing_the_workers_end_announces_the_job_once(
    local_stack: LocalStack, finish_events: FinishEvents
) -> None:
    # Given jobs in progress (recorded directly: no worker runs them)
    store = JobStore()
    jobs = [
        store.create("earring", "alya", get_settings().bucket_for("alya"), f"race/{n}.jpg", [1], None) for n in range(8)
    ]
    # When each is cancelled and ended by its worker at the same moment
    outcomes: dict[str, dict[str, Any]] = {}

    def cancel(job_id: str) -> None:
        try:
            outcomes.setdefault(job_id, {})["cancelled"] = JobStore().cancel(job_id)[1]
        except Conflict:
            outcomes.setdefault(job_id, {})["cancelled"] = False

    def finish(job_id: str, run_id: str) -> None:
        outcomes.setdefault(job_id, {})["finished"] = JobStore().finish(job_id, run_id, "done")

    with ThreadPoolExecutor(max_workers=8) as pool:
        for job in jobs:
            pool.submit(cancel, job.job_id)
            pool.submit(finish, job.job_id, job.run_id)
    # Then exactly one of the two ended each job, and that one alone announced it, with its status
    for job in jobs:
        won = outcomes[job.job_id]
        assert won["cancelled"] != won["finished"], won
        status = "cancelled" if won["cancelled"] else "done"
        assert store.get(job.job_id).status == status
        assert [e["status"] for e in finish_events.of(job.job_id)] == [status]
