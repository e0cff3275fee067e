"""Retries with `Idempotency-Key` through the local gateway, with the real OpenAI SDK against loopback
doubles: a retry answers what the first request answered and the provider sees one set of calls; the
same key with another body is a 422, a retry while the first still runs a 409; without the header
every request is new; two clients' equal keys never meet."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from PIL import Image

from doubles.loopback import LoopbackServer, openai_completion, openai_image
from listing_vision.api.clients import ApiClients
from listing_vision.config import get_settings
from local.stack import LocalStack
from tests.images import encode, fresh_image
from tests.integration.test_captions import CHAT, GOOD
from tests.integration.test_generation import RESPOND_ASYNC, earring_photo, stored_source, wait
from tests.stores import changed, fingerprint, settle

EDITS = "/v1/images/edits"
REPLAYED = "Idempotent-Replayed"


@pytest.fixture
def image_server() -> Iterator[LoopbackServer]:
    server = LoopbackServer({EDITS: lambda request: openai_image(seed=len(server.requests))}).start()
    yield server
    server.stop()


@pytest.fixture
def edits(edit_provider: Callable[..., None], image_server: LoopbackServer) -> Callable[[], int]:
    """The loopback image server as the provider; returns how many edits it has been asked for."""
    edit_provider(image_server)
    return lambda: len(image_server.calls(EDITS))


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def post(local_stack: LocalStack, path: str, headers: dict[str, str], **kwargs: Any) -> requests.Response:
    return requests.post(f"{local_stack.url}{path}", headers=headers, timeout=60, **kwargs)


def without_signatures(view: dict[str, Any]) -> dict[str, Any]:
    """A job's view with each URL's query (a presigned URL's signature and date) left out."""
    text = json.dumps(view)
    for value in {v for v in _strings(view) if v.startswith("http")}:
        text = text.replace(json.dumps(value), json.dumps(urlsplit(value)._replace(query="").geturl()))
    return dict(json.loads(text))


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_a_retried_generation_answers_the_first_job_and_edits_once(
    local_stack: LocalStack, edits: Callable[[], int]
) -> None:
    # Given a stored photo and a synchronous generation made with a key (type 2 is one paid edit)
    body = {"s3_urls": stored_source(local_stack, earring_photo(301)), "product_type": "ear", "image_types": [1, 2]}
    headers = key()
    first = post(local_stack, "/generate-images", headers, json=body)
    assert first.status_code == 200, first.text
    assert REPLAYED not in first.headers
    # When the client retries it (the answer was lost to a timeout)
    retry = post(local_stack, "/generate-images", headers, json=body)
    settle(local_stack)
    # Then it gets the same job, done, as the first answer, marked replayed, and nothing was edited again
    assert retry.status_code == 200, retry.text
    assert retry.headers[REPLAYED] == "true"
    assert without_signatures(retry.json()) == without_signatures(first.json())
    assert [g["image_type"] for g in retry.json()["gen_images"]] == [1, 2]
    assert edits() == 1


def test_the_same_key_with_another_body_is_refused_and_starts_nothing(
    local_stack: LocalStack, edits: Callable[[], int]
) -> None:
    # Given a generation made with a key
    source = stored_source(local_stack, earring_photo(302))
    headers = {**key(), **RESPOND_ASYNC}
    first = post(local_stack, "/generate-images", headers, json={"s3_urls": source, "product_type": "ear"})
    assert first.status_code == 202, first.text
    wait(local_stack, first.json()["job_id"])
    before = fingerprint()
    # When the same key comes with another request (other image types)
    other = post(
        local_stack, "/generate-images", headers, json={"s3_urls": source, "product_type": "ear", "image_types": [1]}
    )
    settle(local_stack)
    # Then it is a 422 with its stable code, no job was made and no edit paid
    assert other.status_code == 422, other.text
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert changed(before, fingerprint()) == []
    assert edits() == 3  # types 2, 4 and 5 of the first job only


def test_a_retry_while_the_job_runs_answers_its_current_state(
    local_stack: LocalStack, edits: Callable[[], int]
) -> None:
    # Given an asynchronous submission with a key, answered 202 at once
    body = {"s3_urls": stored_source(local_stack, earring_photo(303)), "product_type": "ear", "image_types": [1, 2]}
    headers = {**key(), **RESPOND_ASYNC}
    first = post(local_stack, "/generate-images", headers, json=body)
    assert first.status_code == 202, first.text
    job_id = first.json()["job_id"]
    wait(local_stack, job_id)
    # When it is retried after the job has ended, asking to wait for it
    retry = post(local_stack, "/generate-images", {"Idempotency-Key": headers["Idempotency-Key"]}, json=body)
    # Then the answer is that job as it is now: 200 with its images, and still a single edit
    assert retry.status_code == 200, retry.text
    assert retry.json()["job_id"] == job_id and retry.headers[REPLAYED] == "true"
    assert [g["image_type"] for g in retry.json()["gen_images"]] == [1, 2]
    # And a retry asking for 202 at once gets the same job's Location, with its current status
    again = post(local_stack, "/generate-images", headers, json=body)
    assert again.status_code == 202 and again.headers["Location"] == f"/jobs/{job_id}"
    assert again.json()["job_id"] == job_id and again.json()["status"] == "done"
    settle(local_stack)
    assert edits() == 1


def test_without_the_header_each_request_is_a_new_job(local_stack: LocalStack, edits: Callable[[], int]) -> None:
    # Given a stored photo
    body = {"s3_urls": stored_source(local_stack, earring_photo(304)), "product_type": "ear", "image_types": [1, 2]}
    # When the same request is sent twice without a key
    jobs = [post(local_stack, "/generate-images", RESPOND_ASYNC, json=body).json()["job_id"] for _ in range(2)]
    for job_id in jobs:
        wait(local_stack, job_id)
    # Then there are two jobs, each with its own paid edit
    assert len(set(jobs)) == 2
    assert edits() == 2


def test_a_retried_regeneration_runs_once(local_stack: LocalStack, edits: Callable[[], int]) -> None:
    # Given a finished job
    body = {"s3_urls": stored_source(local_stack, earring_photo(305)), "product_type": "ear", "image_types": [1, 2]}
    job_id = post(local_stack, "/generate-images", RESPOND_ASYNC, json=body).json()["job_id"]
    wait(local_stack, job_id)
    # When type 2 is regenerated with a key, and the request retried once the run has ended
    headers = key()
    first = post(local_stack, "/regenerate-image", headers, json={"job_id": job_id, "image_type": 2})
    assert first.status_code == 202, first.text
    wait(local_stack, job_id)
    retry = post(local_stack, "/regenerate-image", headers, json={"job_id": job_id, "image_type": 2})
    settle(local_stack)
    # Then the retry answers the first 202 and starts no run: one edit for the job, one for the regeneration
    assert retry.status_code == 202 and retry.json() == first.json()
    assert retry.headers[REPLAYED] == "true"
    assert edits() == 2


def caption(local_stack: LocalStack, headers: dict[str, str], photo: bytes) -> requests.Response:
    files = {"file": ("earring.jpg", photo, "image/jpeg")}
    return post(local_stack, "/generate_caption", headers, files=files, data={"type": "earring"})


def test_a_retried_caption_answers_the_caption_not_duplicate(
    local_stack: LocalStack, openai_chat: LoopbackServer
) -> None:
    # Given a photo captioned with a key
    photo, headers = fresh_image(30_601), key()
    first = caption(local_stack, headers, photo)
    assert first.status_code == 200, first.text
    assert first.json()["generated_name"] == GOOD["generated_name"]
    # When the client retries with the same key (without it, the same bytes would answer "duplicate")
    retry = caption(local_stack, headers, photo)
    # Then it gets the same caption, and the provider was asked once
    assert retry.status_code == 200, retry.text
    # (its link is signed again when answered: it may carry another date)
    assert without_signatures(retry.json()) == without_signatures(first.json()) and retry.headers[REPLAYED] == "true"
    assert len(openai_chat.calls(CHAT)) == 1
    # And the same key with another photo is a 422 that asks nothing of the provider
    other = caption(local_stack, headers, fresh_image(30_701))
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
    assert len(openai_chat.calls(CHAT)) == 1


def test_a_retry_while_the_first_request_runs_is_a_409(local_stack: LocalStack, openai_chat: LoopbackServer) -> None:
    # Given a caption request with a key, still waiting for its (slow) provider
    openai_chat.script(CHAT, replace(openai_completion(json.dumps(GOOD)), delay_s=3.0))
    photo, headers = fresh_image(30_801), key()
    answers: list[requests.Response] = []
    first = threading.Thread(target=lambda: answers.append(caption(local_stack, headers, photo)))
    first.start()
    deadline = time.monotonic() + 300  # a hang guard, generous for a loaded machine
    while not openai_chat.calls(CHAT) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert openai_chat.calls(CHAT), "the first request never reached the provider"
    # When the same request arrives meanwhile
    retry = caption(local_stack, headers, photo)
    first.join()
    # Then it is told to retry later, and the first one gets its caption; the provider was asked once
    assert retry.status_code == 409, retry.text
    assert retry.json()["error"]["code"] == "idempotency_in_progress"
    assert answers[0].status_code == 200, answers[0].text
    assert len(openai_chat.calls(CHAT)) == 1


def test_a_keyed_request_that_fails_leaves_no_record_and_its_retry_runs_again(local_stack: LocalStack) -> None:
    # Given every store as it is
    before = fingerprint()
    headers = key()
    missing = {"s3_urls": "s3://alyaimg/catalogue/none.jpg", "product_type": "ear"}
    blank = {"file": ("blank.png", encode(Image.new("RGB", (64, 64), "white"), "PNG"), "image/png")}
    for attempt in range(2):
        # When a keyed generation from a missing photo, and a keyed caption of a blank photo, are sent (and retried)
        generation = post(local_stack, "/generate-images", {**headers, **RESPOND_ASYNC}, json=missing)
        captioned = post(local_stack, "/generate_caption", headers, files=blank, data={"type": "ring"})
        # Then each fails as it would without a key, the retry too (not replayed, not "in progress")
        assert (generation.status_code, generation.json()["error"]["code"]) == (404, "source_not_found"), attempt
        assert (captioned.status_code, captioned.json()["error"]["code"]) == (422, "blank_image"), attempt
    # And no record of them is left anywhere (Powertools deleted each in-progress record)
    settle(local_stack)
    assert changed(before, fingerprint()) == []


@pytest.fixture
def two_clients(local_stack: LocalStack) -> Iterator[tuple[str, str, str]]:
    """A gateway running the authorizer as deployed, and two clients' keys, both holding alya."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("API_AUTH", "api_keys")
        get_settings.cache_clear()
        clients = ApiClients()
        keys = [clients.create(f"test-idem-{n}-{uuid.uuid4().hex[:8]}", ("alya",))[0] for n in (1, 2)]
        server = local_stack.api_gateway(auth=True).serve("127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield f"http://127.0.0.1:{server.server_address[1]}", keys[0], keys[1]
        server.shutdown()
        server.server_close()
    get_settings.cache_clear()


def test_two_clients_using_the_same_key_get_their_own_jobs(
    local_stack: LocalStack, edits: Callable[[], int], two_clients: tuple[str, str, str]
) -> None:
    url, first_client, second_client = two_clients
    stored = requests.post(
        f"{url}/image_similarity_search",
        headers={"x-api-key": first_client},
        files={"file": ("earring.jpg", earring_photo(309), "image/jpeg")},
        data={"check_duplicate": "no", "website": "alya"},
        timeout=60,
    )
    body = {"s3_urls": stored.json()["s3_url"], "product_type": "ear", "image_types": [1]}
    shared = {**key(), **RESPOND_ASYNC}

    def submit(api_key: str) -> requests.Response:
        return requests.post(f"{url}/generate-images", headers={**shared, "x-api-key": api_key}, json=body, timeout=60)

    # Given the first client's submission with a key
    mine = submit(first_client)
    assert mine.status_code == 202, mine.text
    # When another client sends the same key and body
    theirs = submit(second_client)
    # Then it gets a job of its own, not the first client's answer
    assert theirs.status_code == 202, theirs.text
    assert theirs.json()["job_id"] != mine.json()["job_id"] and REPLAYED not in theirs.headers
    # And each client's retry still answers its own job
    assert submit(first_client).json()["job_id"] == mine.json()["job_id"]
    assert submit(second_client).json()["job_id"] == theirs.json()["job_id"]
    settle(local_stack)
