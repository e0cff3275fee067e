"""Secrets never reach a log line, an error body or a stored message.

The flows that hold secrets run with known fake values: provider keys read from Secrets Manager
(captions through OpenAI and Anthropic, image generation, listing ingest), the Milvus token, and
this platform's API keys through the authorizer. The providers are hostile: their 401 and 500
replies echo the key back, as some do. Every line the process writes (the functions' logs, the
local runtime's, tracebacks included), every response body, and every stored job and failure
record is scanned for each value.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests

from doubles.loopback import (
    ANTHROPIC_MESSAGES,
    OPENAI_CHAT,
    OPENAI_IMAGE_EDITS,
    LoopbackServer,
    Recorded,
    Reply,
    anthropic_error,
    openai_error,
)
from listing_vision import aws
from listing_vision.api.clients import ApiClients
from listing_vision.config import get_settings
from local.gateway import Gateway
from local.provision import LOCAL_SECRETS
from local.stack import LocalStack
from tests.images import fresh_image
from tests.integration.test_generation import RESPOND_ASYNC, earring_photo, stored_source, wait
from tests.stores import settle

OPENAI_KEY = "sk-leakcheck-openai-" + "Q7w8E9r0" * 4
ANTHROPIC_KEY = "sk-ant-leakcheck-" + "Z1x2C3v4" * 4
CHAT, EDITS, MESSAGES = OPENAI_CHAT, OPENAI_IMAGE_EDITS, ANTHROPIC_MESSAGES


def echoing(status: int, key: str) -> Reply:
    """A provider error that quotes the key it was sent, in full."""
    return openai_error(status, "invalid_api_key", f"Incorrect API key provided: {key}. Check it and retry.")


@pytest.fixture
def hostile_providers() -> Iterator[tuple[LoopbackServer, LoopbackServer]]:
    openai = LoopbackServer({path: lambda _r: echoing(401, OPENAI_KEY) for path in (CHAT, EDITS)}).start()
    claude = LoopbackServer(
        {MESSAGES: lambda _r: anthropic_error(401, "authentication_error", f"invalid x-api-key: {ANTHROPIC_KEY}")}
    ).start()
    yield openai, claude
    openai.stop()
    claude.stop()


@contextmanager
def secured_gateway(local_stack: LocalStack) -> Iterator[tuple[str, str, str]]:
    """A gateway with the authorizer on, a client key for alya, and a well-formed key that is not one."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("API_AUTH", "api_keys")
        get_settings.cache_clear()
        key = ApiClients().create(f"leakcheck-{uuid.uuid4().hex[:6]}", ("alya",), search_all=False)[0]
        server = Gateway(local_stack.router.call, authorizer="authorizer", log_requests=True).serve("127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}", key, "lvk_" + "N0tAKeyAtAll" * 3
        finally:
            server.shutdown()
            server.server_close()
    get_settings.cache_clear()


def test_no_secret_reaches_a_log_line_a_response_or_a_stored_record(
    local_stack: LocalStack,
    provider_env: Callable[..., None],
    hostile_providers: tuple[LoopbackServer, LoopbackServer],
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    openai, claude = hostile_providers
    bodies: list[str] = []

    def keep(answer: requests.Response) -> requests.Response:
        bodies.append(answer.text)
        return answer

    def keys_in_secrets_manager(**extra: str) -> None:
        provider_env(
            OPENAI_API_KEY=OPENAI_KEY,
            OPENAI_BASE_URL=f"{openai.url}/v1",
            ANTHROPIC_API_KEY=ANTHROPIC_KEY,
            ANTHROPIC_BASE_URL=claude.url,
            PROVIDER_MAX_RETRIES="0",
            **extra,
        )

    # Given the keys in Secrets Manager, read the deployed way, and providers that echo them back
    capfd.readouterr()  # what came before is not this test's
    # When a caption is asked of each provider
    for seed, provider in enumerate(("openai", "anthropic")):
        keys_in_secrets_manager(CAPTION_PROVIDER=provider)
        answer = keep(
            requests.post(
                f"{local_stack.url}/generate_caption",
                files={"file": ("ring.jpg", fresh_image(40_100 + seed), "image/jpeg")},
                data={"type": "ring"},
                timeout=60,
            )
        )
        assert answer.status_code == 503 and answer.json()["error"]["code"] == "provider_auth_failed", answer.text
    # and an image-generation job runs its provider types asynchronously
    source = stored_source(local_stack, earring_photo(4_040))
    submitted = keep(
        requests.post(
            f"{local_stack.url}/generate-images",
            json={"s3_urls": source, "product_type": "ear", "image_types": [2, 4]},
            headers=RESPOND_ASYNC,
            timeout=10,
        )
    )
    job = wait(local_stack, submitted.json()["job_id"])
    bodies.append(json.dumps(job))
    assert job["status"] == "failed" and job["failed"], job
    # and a listing is ingested whose photos need the vision model
    zpid = str(uuid.uuid4().int % 10**8)
    photo = f"photos/{zpid}/01.jpg"
    aws.client("s3").put_object(Bucket="listing-uploads", Key=photo, Body=fresh_image(40_200))
    document = {"zpid": zpid, "address": "1 Leak St", "image_urls": [f"s3://listing-uploads/{photo}"]}
    aws.client("s3").put_object(
        Bucket="listing-uploads", Key=f"listings/{zpid}.json", Body=json.dumps(document).encode()
    )
    settle(local_stack)
    # and the API is called with a client's key, and with a well-formed key that is not one
    with secured_gateway(local_stack) as (url, key, wrong):
        keep(requests.get(f"{url}/uploads/nope", params={"website": "alya"}, headers={"x-api-key": key}, timeout=10))
        refused = keep(
            requests.get(f"{url}/uploads/nope", params={"website": "alya"}, headers={"x-api-key": wrong}, timeout=10)
        )
    assert refused.status_code == 401

    # Then every provider call carried the key read from Secrets Manager, and was answered with it
    sent = [header(call, "authorization") for call in openai.calls(CHAT) + openai.calls(EDITS)]
    assert len(sent) >= 2 and set(sent) == {f"Bearer {OPENAI_KEY}"}
    assert len(claude.calls(MESSAGES)) >= 2
    # (the Anthropic SDK sends its key as x-api-key or, since 2.x, as a bearer token)
    presented = {header(call, "x-api-key") or header(call, "authorization") for call in claude.calls(MESSAGES)}
    assert presented <= {ANTHROPIC_KEY, f"Bearer {ANTHROPIC_KEY}"} and presented, presented
    # and no secret is in anything written: logs (tracebacks included), bodies, job records, failure queues
    written = capfd.readouterr()
    stored = json.dumps(stored_jobs_and_failures(local_stack), default=str)
    # (other loggers' records, which Lambda's root handler writes, pytest collects in caplog)
    everything = "\n".join([written.out, written.err, caplog.text, *bodies, stored])
    assert "provider_auth_failed" in everything  # the failures were logged and answered
    milvus_token = LOCAL_SECRETS["milvus_token_secret"][1]
    for name, secret in {
        "OpenAI key": OPENAI_KEY,
        "Anthropic key": ANTHROPIC_KEY,
        "Milvus token": milvus_token,
        "API key": key,
        "wrong API key": wrong,
    }.items():
        leaks = [line[:300] for line in everything.splitlines() if secret in line]
        assert leaks == [], f"the {name} leaked"


def header(call: Recorded, name: str) -> str | None:
    return next((value for key, value in call.headers.items() if key.lower() == name), None)


def stored_jobs_and_failures(local_stack: LocalStack) -> list[Any]:
    items = aws.client("dynamodb").scan(TableName=get_settings().jobs_table)["Items"]
    sqs = aws.client("sqs")
    failures = []
    for queue in sqs.list_queues().get("QueueUrls", []):
        failures += sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
    return [*items, *failures]
