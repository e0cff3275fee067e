"""Webhooks through the local gateway and the local EventBridge: a client registers a URL per
storefront (PUT /webhooks), gets its secret once, and each finish event put on the jobs bus reaches
the `webhook-delivery` function through the rule functions/triggers.py declares, which POSTs it,
signed, to a loopback receiver; 5xx and timeouts are retried with backoff, 4xx are not, and every
attempt is in the delivery record (GET /webhooks/deliveries). Loopback URLs are allowed only because
the local stack sets WEBHOOK_ALLOW_LOOPBACK; the default (AWS) refuses them."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from doubles.loopback import OPENAI_IMAGE_EDITS, LoopbackServer, Reply
from functions.triggers import EVENT_TRIGGERS
from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.jewelry.job_events import DETAIL_TYPE, SOURCE, JobEvents
from listing_vision.jewelry.webhook_delivery import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from listing_vision.jewelry.webhooks import Registration, WebhookStore
from local.stack import LocalStack
from tests.integration import test_access, test_job_management
from tests.integration.test_access import Clients, call
from tests.integration.test_job_management import submit
from tests.stores import changed, fingerprint, settle

HOOK = "/hook"


@dataclass
class FinishedJob:
    """A run as jobs.py ends it (job_events.Job): what its finish event tells."""

    website: str
    status: str = "done"
    job_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    reason: str | None = None
    image_types: list[int] = field(default_factory=lambda: [1, 2])
    results: dict[int, dict[str, Any]] = field(default_factory=lambda: {1: {"status": "ok"}, 2: {"status": "ok"}})


@pytest.fixture
def receiver(local_stack: LocalStack) -> Iterator[LoopbackServer]:
    """A loopback receiver; afterwards no webhook of the keyless stack's client is left pointing at it
    (later jobs of other modules would be delivered to a closed port, retried)."""
    server = LoopbackServer({HOOK: lambda request: Reply(204, b"")}).start()
    yield server
    for website in ("alya", "blysk"):
        WebhookStore().delete(website, "anonymous")
    server.stop()


# The gateway with the authorizer, and a key per storefront (test_access.py's)
keyed = pytest.fixture(scope="module", name="keyed")(test_access.secured.__wrapped__)  # type: ignore[attr-defined]

# The loopback images.edit provider, an edit a second (test_job_management.py's)
edits = pytest.fixture(name="edits")(test_job_management.slow_edits.__wrapped__)  # type: ignore[attr-defined]


@pytest.fixture
def quick_retries(provider_env: Callable[..., None]) -> None:
    # retries a moment apart; an attempt keeps the default 10 s: the receivers here answer at once, and
    # "delivered in one attempt" must not depend on this process (which also runs the stack) being
    # scheduled within a second
    provider_env(WEBHOOK_BACKOFF_S="0.05", WEBHOOK_TIMEOUT_S="10")


def register(local_stack: LocalStack, website: str, url: str) -> requests.Response:
    return requests.put(f"{local_stack.url}/webhooks", params={"website": website}, json={"url": url}, timeout=30)


def finish(local_stack: LocalStack, job: FinishedJob) -> None:
    """The job's finish event on the jobs bus, as jobs.py puts it; then every delivery it started ends."""
    assert JobEvents().finished(job)
    settle(local_stack)


def deliveries(local_stack: LocalStack, website: str, job_id: str) -> list[dict[str, Any]]:
    answer = requests.get(f"{local_stack.url}/webhooks/deliveries", params={"website": website}, timeout=30)
    assert answer.status_code == 200, answer.text
    return [d for d in answer.json()["deliveries"] if d["job_id"] == job_id]


def test_the_rule_is_declared_for_the_events_jobs_put(local_stack: LocalStack) -> None:
    # Given the declared rule, then it matches what job_events.py puts, on the jobs bus
    (trigger,) = EVENT_TRIGGERS
    assert (trigger.source, trigger.detail_type, trigger.bus_setting) == (SOURCE, DETAIL_TYPE, "job_events_bus")
    rules = aws.client("events").list_rules(EventBusName=get_settings().job_events_bus)["Rules"]
    assert trigger.rule in {rule["Name"] for rule in rules}


def test_a_finished_job_is_posted_signed_to_the_storefronts_webhook(
    local_stack: LocalStack, receiver: LoopbackServer, quick_retries: None
) -> None:
    # Given a webhook registered for blysk, its secret answered once
    answer = register(local_stack, "blysk", f"{receiver.url}{HOOK}")
    assert answer.status_code == 201, answer.text
    secret = answer.json()["secret"]
    shown = requests.get(f"{local_stack.url}/webhooks", params={"website": "blysk"}, timeout=30)
    assert shown.status_code == 200 and "secret" not in shown.json()
    assert shown.json()["url"] == f"{receiver.url}{HOOK}"
    # When a blysk job finishes
    job = FinishedJob("blysk", status="partial", results={1: {"status": "ok"}, 2: {"status": "failed"}})
    finish(local_stack, job)
    # Then one signed POST reached the receiver with the event's detail
    (request,) = [r for r in receiver.calls(HOOK) if r.json()["detail"]["job_id"] == job.job_id]
    headers = {name.lower(): value for name, value in request.headers.items()}
    timestamp, signature = headers[TIMESTAMP_HEADER.lower()], headers[SIGNATURE_HEADER.lower()]
    assert verify(secret, timestamp, request.body, signature, now=time.time())
    assert not verify("whsec_another", timestamp, request.body, signature, now=time.time())
    assert not verify(secret, timestamp, request.body + b" ", signature, now=time.time())
    body = request.json()
    assert body["type"] == DETAIL_TYPE and headers[ID_HEADER.lower()] == body["id"]
    assert body["detail"]["status"] == "partial"
    assert body["detail"]["counts"] == {"delivered": 1, "failed": 1, "pending": 0}
    # And the delivery record says delivered, in one attempt
    (record,) = deliveries(local_stack, "blysk", job.job_id)
    assert record["status"] == "delivered"
    assert [(a["attempt"], a["status_code"]) for a in record["attempts"]] == [(1, 204)]


def test_a_receiver_failing_twice_gets_three_attempts(
    local_stack: LocalStack, receiver: LoopbackServer, provider_env: Callable[..., None]
) -> None:
    # Given attempts of 3 s, and a webhook whose receiver answers 503, then times out (it would answer a
    # minute later: a timeout however slow the machine), then 200
    provider_env(WEBHOOK_BACKOFF_S="0.05", WEBHOOK_TIMEOUT_S="3")
    assert register(local_stack, "alya", f"{receiver.url}{HOOK}").status_code == 201
    receiver.script(HOOK, Reply(503), Reply(200, delay_s=60.0), Reply(200))
    job = FinishedJob("alya")
    # When the job finishes
    finish(local_stack, job)
    # Then the receiver saw the same delivery three times, each signed afresh, and the record keeps each attempt
    calls = [r for r in receiver.calls(HOOK) if r.json()["detail"]["job_id"] == job.job_id]
    assert len(calls) == 3
    assert len({r.json()["id"] for r in calls}) == 1
    (record,) = deliveries(local_stack, "alya", job.job_id)
    assert record["status"] == "delivered"
    outcomes = [(a["attempt"], a.get("status_code"), a.get("error")) for a in record["attempts"]]
    assert outcomes == [(1, 503, None), (2, None, "timeout"), (3, 200, None)]


def test_a_4xx_is_not_retried(local_stack: LocalStack, receiver: LoopbackServer, quick_retries: None) -> None:
    # Given a receiver that refuses the delivery (410)
    assert register(local_stack, "alya", f"{receiver.url}{HOOK}").status_code == 201
    receiver.script(HOOK, Reply(410), Reply(200))
    job = FinishedJob("alya", status="failed", reason="provider unavailable")
    # When the job finishes
    finish(local_stack, job)
    # Then it was tried once and the delivery ended failed
    assert len([r for r in receiver.calls(HOOK) if r.json()["detail"]["job_id"] == job.job_id]) == 1
    (record,) = deliveries(local_stack, "alya", job.job_id)
    assert record["status"] == "failed"
    assert [a["status_code"] for a in record["attempts"]] == [410]


def test_deleting_the_webhook_stops_deliveries(
    local_stack: LocalStack, receiver: LoopbackServer, quick_retries: None
) -> None:
    # Given a registered webhook, then deleted (twice: the second is a no-op)
    assert register(local_stack, "alya", f"{receiver.url}{HOOK}").status_code == 201
    for _ in range(2):
        assert requests.delete(f"{local_stack.url}/webhooks", params={"website": "alya"}, timeout=30).status_code == 204
    gone = requests.get(f"{local_stack.url}/webhooks", params={"website": "alya"}, timeout=30)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "webhook_not_found"
    # When a job finishes, then nothing is posted
    job = FinishedJob("alya")
    finish(local_stack, job)
    assert not [r for r in receiver.calls(HOOK) if r.json()["detail"]["job_id"] == job.job_id]
    assert deliveries(local_stack, "alya", job.job_id) == []


def test_the_aws_default_refuses_a_loopback_url_and_writes_nothing(
    local_stack: LocalStack, receiver: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the setting as on AWS (loopback not allowed)
    monkeypatch.setenv("WEBHOOK_ALLOW_LOOPBACK", "false")
    get_settings.cache_clear()
    before = fingerprint()
    try:
        # When a client registers the loopback receiver, by address or by name
        for url in (f"{receiver.url}{HOOK}", f"http://localhost:{receiver.url.rsplit(':', 1)[1]}{HOOK}"):
            answer = register(local_stack, "blysk", url)
            # Then it is refused, and nothing is written
            assert answer.status_code == 400, answer.text
            assert answer.json()["error"]["code"] == "webhook_url_forbidden"
    finally:
        monkeypatch.delenv("WEBHOOK_ALLOW_LOOPBACK")
        get_settings.cache_clear()
    assert changed(before, fingerprint()) == []


def test_each_attempt_is_logged(
    local_stack: LocalStack, receiver: LoopbackServer, quick_retries: None, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a webhook answering 500 then 200
    assert register(local_stack, "blysk", f"{receiver.url}{HOOK}").status_code == 201
    receiver.script(HOOK, Reply(500), Reply(200))
    job = FinishedJob("blysk")
    # When the job finishes
    finish(local_stack, job)
    # Then the function logged one line per attempt, with the job and the outcome
    mine = [r for r in caplog.records if r.getMessage() == "webhook attempt" and getattr(r, "job_id", "") == job.job_id]
    assert [(getattr(r, "attempt", None), getattr(r, "status_code", None)) for r in mine] == [(1, 500), (2, 200)]


def test_a_delivery_that_breaks_is_retried_by_lambda_then_kept_in_the_failure_queue(
    local_stack: LocalStack, receiver: LoopbackServer, quick_retries: None
) -> None:
    # Given two webhooks of alya, one whose secret was lost (its parameter deleted behind the API's back)
    assert register(local_stack, "alya", f"{receiver.url}{HOOK}").status_code == 201
    other = register_as(local_stack, "someone-else", "alya", f"{receiver.url}{HOOK}")
    aws.client("ssm").delete_parameter(Name=other.secret_parameter)
    sqs = aws.client("sqs")
    queue = sqs.get_queue_url(QueueName="webhook-delivery-failures")["QueueUrl"]
    job = FinishedJob("alya")
    try:
        # When an alya job finishes
        finish(local_stack, job)
        # Then the sound webhook got it once, though Lambda ran the event three times
        assert len([r for r in receiver.calls(HOOK) if r.json()["detail"]["job_id"] == job.job_id]) == 1
        # And the event is in the function's failure queue after the declared retries
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        records = [json.loads(m["Body"]) for m in messages]
        (record,) = [r for r in records if r["requestPayload"]["detail"]["job_id"] == job.job_id]
        assert record["requestContext"]["approximateInvokeCount"] == 3
        assert "broke off" in record["responsePayload"]["errorMessage"]
    finally:
        WebhookStore().delete("alya", "someone-else")


@pytest.fixture
def endless_body() -> Iterator[str]:
    """A receiver that answers 200 with a body declared 1 TB long and never sent: a hostile or broken
    receiver's answer, which the sender must not read (its memory and time are not the receiver's)."""
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", str(10**12))
            self.end_headers()
            self.wfile.write(b"{")
            self.wfile.flush()
            release.wait(30)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}{HOOK}"
    release.set()
    WebhookStore().delete("alya", "anonymous")
    server.shutdown()
    server.server_close()


def test_a_2xx_is_delivered_without_reading_the_receivers_body(
    local_stack: LocalStack, endless_body: str, quick_retries: None
) -> None:
    # Given a webhook whose receiver answers 200 and then an endless body
    assert register(local_stack, "alya", endless_body).status_code == 201
    job = FinishedJob("alya")
    # When the job finishes
    finish(local_stack, job)
    # Then the delivery ended delivered on its first attempt (the answer's status is all that counts)
    (record,) = deliveries(local_stack, "alya", job.job_id)
    assert record["status"] == "delivered"
    assert [(a["attempt"], a.get("status_code"), a.get("error")) for a in record["attempts"]] == [(1, 200, None)]


def test_a_registration_is_signed_with_its_own_secret_while_another_put_is_half_done(
    local_stack: LocalStack, receiver: LoopbackServer, quick_retries: None
) -> None:
    # Given a webhook of blysk registered through the API, its secret answered
    answer = register(local_stack, "blysk", f"{receiver.url}{HOOK}")
    assert answer.status_code == 201, answer.text
    secret = answer.json()["secret"]
    # And a second PUT of the same client half done: its new secret written, its registration not yet
    # (two PUTs at once interleave so; the item left last may be the other PUT's)
    name = WebhookStore().get("blysk", "anonymous").secret_parameter
    aws.client("ssm").put_parameter(Name=name, Value="whsec_of-a-put-not-finished", Type="SecureString", Overwrite=True)
    job = FinishedJob("blysk")
    # When a blysk job finishes
    finish(local_stack, job)
    # Then the delivery to the registered URL is signed with the secret answered with that URL
    (request,) = [r for r in receiver.calls(HOOK) if r.json()["detail"]["job_id"] == job.job_id]
    headers = {name.lower(): value for name, value in request.headers.items()}
    timestamp, signature = headers[TIMESTAMP_HEADER.lower()], headers[SIGNATURE_HEADER.lower()]
    assert verify(secret, timestamp, request.body, signature, now=time.time())


def register_as(local_stack: LocalStack, client_id: str, website: str, url: str) -> Registration:
    """A registration of another client (the keyless stack acts as `anonymous`), made as the API makes it."""
    WebhookStore().register(website, client_id, url)
    return WebhookStore().get(website, client_id)


def test_a_real_job_that_is_cancelled_reaches_the_webhook(
    local_stack: LocalStack, receiver: LoopbackServer, quick_retries: None, edits: LoopbackServer
) -> None:
    # Given a webhook of blysk, and a blysk job of two paid edits, the first under way
    answer = register(local_stack, "blysk", f"{receiver.url}{HOOK}")
    assert answer.status_code == 201
    job_id = submit(local_stack, "blysk", 610, [2, 4])
    deadline = time.monotonic() + 300  # a hang guard, generous for a loaded machine
    while not edits.calls(OPENAI_IMAGE_EDITS) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert edits.calls(OPENAI_IMAGE_EDITS), "the job's first edit never started"
    # When the client cancels it
    assert requests.delete(f"{local_stack.url}/jobs/{job_id}", params={"website": "blysk"}, timeout=10).ok
    settle(local_stack)
    # Then the webhook got the job's one finish, cancelled, signed with the secret it was given
    (request,) = [r for r in receiver.calls(HOOK) if r.json()["detail"]["job_id"] == job_id]
    headers = {name.lower(): value for name, value in request.headers.items()}
    assert verify(
        answer.json()["secret"],
        headers["x-webhook-timestamp"],
        request.body,
        headers["x-webhook-signature"],
        time.time(),
    )
    assert (request.json()["detail"]["status"], request.json()["detail"]["reason"]) == ("cancelled", "cancelled")
    assert [d["status"] for d in deliveries(local_stack, "blysk", job_id)] == ["delivered"]


# Last in the module: the keyed gateway (API_AUTH=api_keys) stays on until the module ends
def test_a_client_sees_and_changes_only_its_own_storefronts_webhooks(
    local_stack: LocalStack, keyed: Clients, receiver: LoopbackServer, quick_retries: None
) -> None:
    # Given alya's client registered for alya, and the client holding both storefronts registered for alya too
    url = f"{receiver.url}{HOOK}"
    mine = call(keyed, "PUT", "/webhooks", keyed.alya, params={"website": "alya"}, json={"url": url})
    assert mine.status_code == 201, mine.text
    both = call(keyed, "PUT", "/webhooks", keyed.everything, params={"website": "alya"}, json={"url": url})
    assert both.status_code == 201 and both.json()["secret"] != mine.json()["secret"]
    before = fingerprint()
    # When alya's client reaches for blysk's webhook, its deliveries, or registers one there
    for method, path, kwargs in (
        ("GET", "/webhooks", {}),
        ("DELETE", "/webhooks", {}),
        ("GET", "/webhooks/deliveries", {}),
        ("PUT", "/webhooks", {"json": {"url": url}}),
    ):
        answer = call(keyed, method, path, keyed.alya, params={"website": "blysk"}, **kwargs)
        # Then it is refused, and nothing changed
        assert answer.status_code == 403 and answer.json()["error"]["code"] == "storefront_forbidden", answer.text
    assert changed(before, fingerprint()) == []
    # And a registration is the client's own: blysk's client has none for its storefront
    none = call(keyed, "GET", "/webhooks", keyed.blysk, params={"website": "blysk"})
    assert none.status_code == 404 and none.json()["error"]["code"] == "webhook_not_found"
    # When an alya job finishes, then each of the two registrations gets it under its own secret and record
    job = FinishedJob("alya")
    finish(local_stack, job)
    signed = [r for r in receiver.calls(HOOK) if r.json()["detail"]["job_id"] == job.job_id]
    assert len(signed) == 2
    secrets = {mine.json()["secret"], both.json()["secret"]}
    for request in signed:
        headers = {name.lower(): value for name, value in request.headers.items()}
        timestamp, signature = headers[TIMESTAMP_HEADER.lower()], headers[SIGNATURE_HEADER.lower()]
        assert sum(verify(s, timestamp, request.body, signature, now=time.time()) for s in secrets) == 1
    for key in (keyed.alya, keyed.everything):
        listed = call(keyed, "GET", "/webhooks/deliveries", key, params={"website": "alya"}).json()["deliveries"]
        assert [d["status"] for d in listed if d["job_id"] == job.job_id] == ["delivered"]
    # And the two clients' deletes remove their own registration only
    assert call(keyed, "DELETE", "/webhooks", keyed.alya, params={"website": "alya"}).status_code == 204
    assert call(keyed, "GET", "/webhooks", keyed.everything, params={"website": "alya"}).status_code == 200
    assert call(keyed, "DELETE", "/webhooks", keyed.everything, params={"website": "alya"}).status_code == 204
