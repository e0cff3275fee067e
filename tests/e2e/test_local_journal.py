"""The local stack's durable queue of asynchronous events against its snapshots: an event's effects
survive a kill -9 only once a snapshot begun after its delivery is saved, so its journal entry is kept
until then, and a kill in between redelivers the event (as Lambda may) instead of losing what it wrote.
Also the router on its own (a real LambdaRouter and journal folder; its handler a plain function)."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from doubles.loopback import LoopbackServer, Reply
from local import snapshot
from local.lambda_runtime import LambdaRouter
from tests.local_process import local_stack_process

HOOK = "/hook"


def test_the_router_keeps_a_delivered_events_entry_until_a_later_snapshot_is_saved(tmp_path: Path) -> None:
    # Given a router holding delivered events for the snapshots, and an event it delivered
    journal = tmp_path / "lambda-queue"
    ran: list[dict[str, Any]] = []
    router = LambdaRouter(retry_delays_s=(0.01,), journal=journal)
    router.hold_until_saved = True
    router.register("writer", lambda event, context: ran.append(event))
    before_delivery = time.time()
    router.invoke("writer", json.dumps({"n": 1}), asynchronous=True)
    assert router.drain(30) and ran == [{"n": 1}]
    try:
        # When a snapshot begun before the delivery is saved, then the entry is still there
        assert router.saved(before_delivery - 1) == 0
        assert len(list(journal.glob("*.delivered"))) == 1 and not list(journal.glob("*.json"))
        # And a restart before a later snapshot runs the event again
        again: list[dict[str, Any]] = []
        restarted = LambdaRouter(retry_delays_s=(0.01,), journal=journal)
        restarted.register("writer", lambda event, context: again.append(event))
        assert restarted.replay_journal() == 1 and restarted.drain(30) and again == [{"n": 1}]
        restarted.uninstall()
        # When a snapshot begun after the delivery is saved, then the entry goes
        assert router.saved(time.time()) == 1
        assert not list(journal.iterdir())
    finally:
        router.uninstall()


def delivered(api: str, job_id: str) -> list[str]:
    """The statuses of the job's deliveries (polled: a read that times out counts as none yet)."""
    try:
        answer = requests.get(f"{api}/webhooks/deliveries", params={"website": "blysk"}, timeout=10)
    except requests.Timeout:
        return []
    assert answer.status_code == 200, answer.text
    return [d["status"] for d in answer.json()["deliveries"] if d["job_id"] == job_id]


@pytest.mark.e2e
def test_a_kill_between_a_delivery_and_the_next_snapshot_redelivers_the_event(tmp_path: Path) -> None:
    state = tmp_path / "state"
    receiver = LoopbackServer({HOOK: lambda request: Reply(204, b"")}).start()
    job_id = uuid.uuid4().hex
    try:
        # Given a webhook of blysk registered, and saved by a snapshot (a clean stop saves one)
        with local_stack_process(state, "--snapshot-interval", "0", demo_listings=0) as started:
            urls = started.urls
            answer = requests.put(
                f"{urls['api']}/webhooks", params={"website": "blysk"}, json={"url": receiver.url + HOOK}, timeout=30
            )
            assert answer.status_code == 201, answer.text
        registered = snapshot.started_at(state)
        assert registered is not None, "the clean stop saved no snapshot"
        # When, on the next start (snapshots only at a clean stop: none can begin after the event, however
        # slow the machine; with an interval, a delivery slower than it left nothing to test), a blysk
        # run's finish event is delivered (its record written) and the process is killed -9
        with local_stack_process(state, "--snapshot-interval", "0", demo_listings=0) as started:
            process, urls = started.process, started.urls
            events = boto3.client(
                "events",
                endpoint_url=urls["moto"],
                region_name="us-east-1",
                aws_access_key_id="local",
                aws_secret_access_key="local",
            )
            detail = {"job_id": job_id, "run_id": uuid.uuid4().hex, "website": "blysk", "status": "done"}
            entry = {"Source": "listing-vision.generation", "DetailType": "Generation job finished"}
            put = events.put_events(Entries=[{**entry, "Detail": json.dumps(detail), "EventBusName": "job-events"}])
            assert put["FailedEntryCount"] == 0
            deadline = time.monotonic() + 300  # a hang guard, generous for a loaded machine
            while delivered(urls["api"], job_id) != ["delivered"] and time.monotonic() < deadline:
                time.sleep(0.05)
            assert delivered(urls["api"], job_id) == ["delivered"]
            os.kill(process.pid, signal.SIGKILL)
            process.wait(300)
        # (the last snapshot is the clean stop's, from before the event: the delivery's record is in none)
        assert snapshot.started_at(state) == registered
        posts = [r for r in receiver.calls(HOOK) if r.json()["detail"]["job_id"] == job_id]
        assert len(posts) == 1
        # Then the next start redelivers the event: the record is there, delivered, and the receiver
        # got the same delivery again (its id unchanged: a receiver dedupes on it)
        with local_stack_process(state, "--snapshot-interval", "20", demo_listings=0) as started:
            urls = started.urls
            deadline = time.monotonic() + 300  # a hang guard, generous for a loaded machine
            while delivered(urls["api"], job_id) != ["delivered"] and time.monotonic() < deadline:
                time.sleep(0.5)
            assert delivered(urls["api"], job_id) == ["delivered"]
        posts = [r for r in receiver.calls(HOOK) if r.json()["detail"]["job_id"] == job_id]
        assert len(posts) == 2 and len({r.json()["id"] for r in posts}) == 1
    finally:
        receiver.stop()
