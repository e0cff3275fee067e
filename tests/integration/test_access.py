"""Access per storefront, through the authorizer as deployed: a client holds one storefront's key
and can neither read nor write the other's (403, or 404 for what it may not know exists), and a
refused request writes nothing anywhere. The session's stack runs keyless (as `make run` does);
these tests put a second gateway in front of it that runs the authorizer function."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from listing_vision import aws
from listing_vision.api.clients import ApiClients
from listing_vision.api.clients import main as clients_cli
from listing_vision.config import Storefront, get_settings
from local.stack import LocalStack
from tests.cli_output import printed_json
from tests.integration.test_generation import earring_photo
from tests.stores import changed, fingerprint, settle


@dataclass
class Clients:
    url: str
    alya: str  # a key holding alya only
    blysk: str
    everything: str  # both storefronts, and scope=all
    shop: str  # blysk only, never disabled here


@pytest.fixture(scope="module")
def secured(local_stack: LocalStack) -> Iterator[Clients]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("API_AUTH", "api_keys")
        get_settings.cache_clear()
        clients = ApiClients()
        grants: dict[str, tuple[Storefront, ...]] = {
            "alya": ("alya",),
            "blysk": ("blysk",),
            "everything": ("alya", "blysk"),
            "shop": ("blysk",),
        }
        keys = {
            name: clients.create(f"test-{name}-{id(env)}", storefronts, search_all=name == "everything")[0]
            for name, storefronts in grants.items()
        }
        server = local_stack.api_gateway(auth=True).serve("127.0.0.1", 0)  # the gateway LOCAL_AUTH=1 runs
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield Clients(f"http://127.0.0.1:{server.server_address[1]}", **keys)
        server.shutdown()
        server.server_close()
    get_settings.cache_clear()


def call(
    secured: Clients, method: str, path: str, key: str | None, headers: dict[str, str] | None = None, **kwargs: Any
) -> requests.Response:
    headers = {**(headers or {}), **({"x-api-key": key} if key else {})}
    return requests.request(method, f"{secured.url}{path}", headers=headers, timeout=30, **kwargs)


def photo(seed: int) -> dict[str, Any]:
    return {"file": ("ring.jpg", earring_photo(seed), "image/jpeg")}


def store_in_blysk(secured: Clients, key: str, seed: int) -> tuple[str, str]:
    """A photo stored in blysk by the client holding `key`: (its s3_url, its image id)."""
    data = earring_photo(seed)
    stored = call(
        secured,
        "POST",
        "/image_similarity_search",
        key,
        files={"file": ("ring.jpg", data, "image/jpeg")},
        data={"website": "blysk", "check_duplicate": "no"},
    )
    assert stored.status_code == 200, stored.text
    return stored.json()["s3_url"], hashlib.sha256(data).hexdigest()


@contextmanager
def nothing_written(local_stack: LocalStack) -> Iterator[None]:
    """The stores are the same after the block as before it (once the events it caused are delivered)."""
    settle(local_stack)
    before = fingerprint()
    yield
    settle(local_stack)
    assert changed(before, fingerprint()) == []


def codes(answers: list[requests.Response]) -> list[tuple[int, str]]:
    return [(a.status_code, a.json()["error"]["code"]) for a in answers]


def test_without_a_valid_key_nothing_is_reachable(secured: Clients) -> None:
    for key in (None, "lvk_not-a-key", ""):
        answer = call(secured, "POST", "/image_similarity_search", key, files=photo(60))
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "unauthorized", answer.text
    holder = ApiClients().find(secured.blysk)  # this module's blysk client (other modules make theirs)
    assert holder is not None
    ApiClients().disable(holder.client_id)
    revoked = call(secured, "GET", f"/jobs/{'0' * 32}", secured.blysk)
    assert revoked.status_code == 401


def test_a_wrong_key_is_counted_as_refused_not_only_as_an_error(
    secured: Clients, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a request with a key no client holds, to the authorizer running as version 3
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_VERSION", "3")
    capsys.readouterr()
    answer = call(secured, "GET", f"/jobs/{'0' * 32}", "lvk_wrong-key")
    # Then it is refused, and the authorizer reports the refusal as KeysRefused (Lambda counts its
    # Unauthorized as an error; the errors alarm subtracts these: infra/constructs/monitoring.py)
    assert answer.status_code == 401
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    refused = [
        record
        for record in emitted
        for group in record["_aws"]["CloudWatchMetrics"]
        if {"Name": "KeysRefused", "Unit": "Count"} in group["Metrics"]
    ]
    assert len(refused) == 1 and refused[0]["KeysRefused"] == [1.0]
    # counted for that version, as the errors it is subtracted from are (per ExecutedVersion)
    assert refused[0]["ExecutedVersion"] == "3"


def test_a_key_with_trailing_whitespace_is_the_key(secured: Clients) -> None:
    # Given a valid key sent with optional whitespace after it (RFC 9110: not part of the value)
    for padded in (f"{secured.shop} ", f"{secured.shop}\t", f"{secured.shop} \t "):
        # When it asks for a job
        answer = call(secured, "GET", f"/jobs/{'0' * 32}", padded)
        # Then the key is accepted: the job is unknown, not the caller
        assert (answer.status_code, answer.json()["error"]["code"]) == (404, "job_not_found"), answer.text


def test_the_api_document_needs_a_key_as_on_aws(secured: Clients) -> None:
    # Given the gateway LOCAL_AUTH=1 runs, when the OpenAPI document or its Swagger UI is asked without a key
    for path in ("/openapi.json", "/swagger"):
        refused = call(secured, "GET", path, None)
        wrong = call(secured, "GET", path, "lvk_not-a-key")
        # Then it is refused as every route is (on AWS GET /openapi.json is a keyed method)
        assert (refused.status_code, refused.json()["error"]["code"]) == (401, "unauthorized"), path
        assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "unauthorized"), path
        # And a client's key reads it
        assert call(secured, "GET", path, secured.shop).status_code == 200, path
    assert call(secured, "GET", "/openapi.json", secured.shop).json()["openapi"].startswith("3.")
    # While the local stack's own health probe (no AWS counterpart) stays open
    assert call(secured, "GET", "/health", None).status_code == 200
    # And so do the review console's static files (no secret in them: its API calls send the key typed into it)
    console = call(secured, "GET", "/console/app.js", None)
    assert console.status_code == 200 and console.headers["Content-Type"].startswith("text/javascript")


def test_a_request_without_website_acts_on_the_clients_only_storefront(
    local_stack: LocalStack, secured: Clients
) -> None:
    settings = get_settings()
    # Given a client holding blysk only, when it stores a photo and asks an upload without naming a website
    stored = call(
        secured, "POST", "/image_similarity_search", secured.shop, files=photo(66), data={"check_duplicate": "no"}
    )
    upload = call(secured, "POST", "/uploads", secured.shop, json={"content_type": "image/png"})
    # Then both act on blysk, not on the default alya (which would be a 403)
    assert stored.status_code == 200, stored.text
    assert f"/{settings.bucket_for('blysk')}/" in stored.json()["s3_url"]
    assert upload.status_code == 200, upload.text
    assert upload.json()["url"].endswith(f"/{settings.bucket_for('blysk')}")
    # And a client holding both storefronts still defaults to alya
    both = call(secured, "POST", "/uploads", secured.everything, json={"content_type": "image/png"})
    assert both.json()["url"].endswith(f"/{settings.bucket_for('alya')}")


def test_a_client_cannot_write_or_search_another_storefront(local_stack: LocalStack, secured: Clients) -> None:
    # Given an alya client, when it stores, captions or asks an upload in blysk, or searches all
    with nothing_written(local_stack):
        refused = [
            call(secured, "POST", "/image_similarity_search", secured.alya, files=photo(61), data={"website": "blysk"}),
            call(secured, "POST", "/image_similarity_search", secured.alya, files=photo(62), data={"scope": "all"}),
            call(
                secured,
                "POST",
                "/generate_caption",
                secured.alya,
                files=photo(63),
                data={"type": "ring", "website": "blysk"},
            ),
            call(secured, "POST", "/uploads", secured.alya, json={"website": "blysk", "content_type": "image/png"}),
        ]
    # Then each is refused with 403 and a stable code, and nothing was written anywhere
    assert codes(refused) == [
        (403, "storefront_forbidden"),
        (403, "scope_forbidden"),
        (403, "storefront_forbidden"),
        (403, "storefront_forbidden"),
    ]
    # While its own storefront works, and a client holding both may search all
    assert call(secured, "POST", "/image_similarity_search", secured.alya, files=photo(64)).status_code == 200
    both = call(secured, "POST", "/image_similarity_search", secured.everything, files=photo(64), data={"scope": "all"})
    assert both.status_code == 200 and both.json()["duplicate_found"] is True


def test_jobs_and_uploads_belong_to_their_storefront(local_stack: LocalStack, secured: Clients) -> None:
    # Given a job and an upload of blysk (made by a client holding both storefronts)
    source, _ = store_in_blysk(secured, secured.everything, 65)
    job = call(
        secured,
        "POST",
        "/generate-images",
        secured.everything,
        headers={"Prefer": "respond-async"},
        json={"s3_urls": source, "product_type": "ear", "image_types": [1]},
    )
    assert job.status_code == 202, job.text
    settle(local_stack)
    upload = call(
        secured, "POST", "/uploads", secured.everything, json={"website": "blysk", "content_type": "image/jpeg"}
    )
    upload_id, job_id = upload.json()["upload_id"], job.json()["job_id"]
    # When an alya client asks for them, regenerates the job, or generates from blysk's photo
    with nothing_written(local_stack):
        answers = [
            call(secured, "GET", f"/jobs/{job_id}", secured.alya),
            call(secured, "POST", "/regenerate-image", secured.alya, json={"job_id": job_id, "image_type": 1}),
            call(secured, "GET", f"/uploads/{upload_id}", secured.alya, params={"website": "blysk"}),
            call(secured, "POST", "/generate-images", secured.alya, json={"s3_urls": source, "product_type": "ear"}),
        ]
    # Then they do not exist for it (404), and a job from another storefront's photo is refused (403)
    assert codes(answers) == [
        (404, "job_not_found"),
        (404, "job_not_found"),
        (404, "upload_not_found"),
        (403, "storefront_forbidden"),
    ]
    # While the job's own storefront sees it
    assert call(secured, "GET", f"/jobs/{job_id}", secured.everything).json()["status"] == "done"


def test_a_client_cannot_list_or_cancel_another_storefronts_jobs(local_stack: LocalStack, secured: Clients) -> None:
    # Given a job of blysk
    source, _ = store_in_blysk(secured, secured.shop, 71)
    job = call(
        secured,
        "POST",
        "/generate-images",
        secured.shop,
        headers={"Prefer": "respond-async"},
        json={"s3_urls": source, "product_type": "ear", "image_types": [1]},
    )
    job_id = job.json()["job_id"]
    # When an alya client lists blysk's jobs or cancels the job, naming blysk or not
    with nothing_written(local_stack):
        answers = [
            call(secured, "GET", "/jobs", secured.alya, params={"website": "blysk"}),
            call(secured, "DELETE", f"/jobs/{job_id}", secured.alya, params={"website": "blysk"}),
            call(secured, "DELETE", f"/jobs/{job_id}", secured.alya),
            call(secured, "DELETE", f"/jobs/{job_id}", secured.alya, params={"website": "alya"}),
        ]
    # Then naming blysk is refused (403) and otherwise the job does not exist for it (404), writing nothing
    assert codes(answers) == [
        (403, "storefront_forbidden"),
        (403, "storefront_forbidden"),
        (404, "job_not_found"),
        (404, "job_not_found"),
    ]
    # While without a website each lists its own storefront's jobs only
    own = call(secured, "GET", "/jobs", secured.shop, params={"limit": 100}).json()
    assert own["website"] == "blysk" and job_id in {j["job_id"] for j in own["jobs"]}
    assert call(secured, "GET", "/jobs", secured.alya, params={"limit": 100}).json()["website"] == "alya"


def test_clients_create_puts_the_key_in_a_usage_plan_or_refuses(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the stage's usage plan in API Gateway (moto's, as on AWS)
    run = uuid.uuid4().hex[:8]
    gateway = aws.client("apigateway")
    plan_name = f"listing-vision-test-{run}-standard"
    plan = gateway.create_usage_plan(name=plan_name)["id"]

    def create(client: str, *options: str) -> int:
        return clients_cli(["create", "--client", f"{client}-{run}", "--storefront", "alya", *options])

    # When a client is created without saying which plan meters it, then the command refuses
    with pytest.raises(SystemExit) as refused:
        create("cli-unmetered")
    assert refused.value.code == 2
    assert "one of the arguments --usage-plan --no-usage-plan is required" in capsys.readouterr().err
    # and naming a plan that does not exist creates nothing, and names the plans there are
    assert create("cli-typo", "--usage-plan", "listing-vision-test-standrad") == 1
    assert plan_name in capsys.readouterr().err
    assert all(c.client_id != f"cli-typo-{run}" for c in ApiClients().list())
    # When it names the stage's plan, then its key is an enabled API key in that plan, as the authorizer returns it
    assert create("cli", "--usage-plan", plan_name) == 0
    created = printed_json(capsys.readouterr().out)
    keys = gateway.get_usage_plan_keys(usagePlanId=plan)["items"]
    assert [(k["id"], k["value"]) for k in keys] == [(created["api_key_id"], created["key"])]
    assert ApiClients().find(created["key"]) is not None


def test_a_client_cannot_take_a_persons_id(local_stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a person signed in to the user pool calls as client `user:<username>` (their jobs, webhook,
    # idempotency keys and edit quota are kept under that id)
    person = f"user:ann-{uuid.uuid4().hex[:8]}"
    # When a client with a key is created under such an id
    created = clients_cli(["create", "--client", person, "--storefront", "alya", "--no-usage-plan"])
    # Then it is refused, naming why, and no client exists: it would share all of that with the person
    assert created == 1 and "user:" in capsys.readouterr().err
    assert all(c.client_id != person for c in ApiClients().list())


def test_another_storefronts_captions_are_refused(local_stack: LocalStack, secured: Clients) -> None:
    # Given a photo of blysk (stored by a client holding both storefronts)
    _, photo_id = store_in_blysk(secured, secured.everything, 67)
    # When an alya client reads, lists or asks for its captions in blysk
    blysk = {"website": "blysk"}
    with nothing_written(local_stack):
        answers = [
            call(secured, "GET", f"/images/{photo_id}/caption", secured.alya, params=blysk),
            call(secured, "GET", f"/images/{photo_id}/captions", secured.alya, params=blysk),
            call(secured, "POST", f"/images/{photo_id}/caption", secured.alya, params=blysk, json={"type": "ring"}),
        ]
    # Then each is the access error, and nothing was written
    assert codes(answers) == [(403, "storefront_forbidden")] * 3
    # While in its own storefront the id names no photo, and blysk's client sees it (without a caption yet)
    mine = call(secured, "GET", f"/images/{photo_id}/caption", secured.alya)
    assert (mine.status_code, mine.json()["error"]["code"]) == (404, "image_not_found")
    theirs = call(secured, "GET", f"/images/{photo_id}/caption", secured.shop)
    assert (theirs.status_code, theirs.json()["error"]["code"]) == (404, "caption_not_found")


def test_another_storefronts_catalogue_cannot_be_listed_or_deleted(local_stack: LocalStack, secured: Clients) -> None:
    # Given a photo of blysk (stored by a client holding both storefronts)
    _, photo_id = store_in_blysk(secured, secured.everything, 68)
    # When an alya client lists blysk's catalogue or deletes the photo in blysk
    with nothing_written(local_stack):
        answers = [
            call(secured, "GET", "/images", secured.alya, params={"website": "blysk"}),
            call(secured, "DELETE", f"/images/{photo_id}", secured.alya, params={"website": "blysk"}),
        ]
    # Then each is the access error, and nothing was written (the photo is all there)
    assert codes(answers) == [(403, "storefront_forbidden")] * 2
    # While in its own storefront the id names no photo, and blysk's client lists and deletes it
    mine = call(secured, "DELETE", f"/images/{photo_id}", secured.alya)
    assert (mine.status_code, mine.json()["error"]["code"]) == (404, "image_not_found")
    listed: list[str] = []
    cursor: str | None = None
    while True:
        page = call(
            secured, "GET", "/images", secured.shop, params={"limit": 200, **({"cursor": cursor} if cursor else {})}
        )
        listed += [image["image_id"] for image in page.json()["images"]]
        if (cursor := page.json()["next_cursor"]) is None:
            break
    assert photo_id in listed
    assert call(secured, "DELETE", f"/images/{photo_id}", secured.shop).status_code == 204


def test_another_storefronts_verdicts_can_be_neither_recorded_nor_read(
    local_stack: LocalStack, secured: Clients
) -> None:
    # Given a photo of blysk and a verdict on a pair holding it, recorded by blysk's client
    _, photo_id = store_in_blysk(secured, secured.shop, 69)
    upload_id = "c" * 64
    verdict = {"image_id": upload_id, "matched_image_id": photo_id, "verdict": "same_piece"}
    mine = call(secured, "PUT", "/verdicts", secured.shop, json=verdict)
    assert (mine.status_code, mine.json()["website"]) == (200, "blysk"), mine.text
    # When an alya client records a verdict in blysk, or lists blysk's verdicts
    with nothing_written(local_stack):
        answers = [
            call(
                secured,
                "PUT",
                "/verdicts",
                secured.alya,
                json={**verdict, "website": "blysk", "verdict": "not_duplicate"},
            ),
            call(secured, "GET", "/verdicts", secured.alya, params={"website": "blysk"}),
        ]
    # Then each is the access error, and nothing was written
    assert codes(answers) == [(403, "storefront_forbidden")] * 2
    # While in its own storefront the matched photo is unknown, and alya lists none of blysk's verdicts
    own = call(secured, "PUT", "/verdicts", secured.alya, json=verdict)
    assert (own.status_code, own.json()["error"]["code"]) == (404, "image_not_found")
    assert call(secured, "GET", "/verdicts", secured.alya, params={"image_id": photo_id}).json()["verdicts"] == []
    # And blysk's client reads its verdict unchanged
    theirs = call(secured, "GET", "/verdicts", secured.shop, params={"image_id": photo_id}).json()["verdicts"]
    assert [(v["image_id"], v["verdict"]) for v in theirs] == [(upload_id, "same_piece")]


def test_a_clients_key_is_rotated_without_downtime_then_the_old_one_revoked(
    secured: Clients, capsys: pytest.CaptureFixture[str]
) -> None:
    run = uuid.uuid4().hex[:8]
    gateway = aws.client("apigateway")
    plan_name = f"listing-vision-rotate-{run}-standard"
    plan = gateway.create_usage_plan(name=plan_name)["id"]
    client = f"shop-rotating-{run}"

    def cli(*args: str) -> dict[str, Any]:
        assert clients_cli(list(args)) == 0
        return printed_json(capsys.readouterr().out)  # type: ignore[no-any-return]

    def works(key: str) -> bool:
        answer = call(secured, "GET", "/jobs", key, params={"website": "alya", "limit": 1})
        assert answer.status_code in (200, 401), answer.text
        return answer.status_code == 200

    # Given a client with a key in the stage's usage plan
    old = cli("create", "--client", client, "--storefront", "alya", "--usage-plan", plan_name)
    assert works(old["key"])
    # When it is given a second key, Then both work, and both are in the plan
    new = cli("rotate", "--client", client, "--usage-plan", plan_name)
    assert new["storefronts"] == ["alya"] and new["keys"] == [old["key_id"], new["key_id"]]
    assert works(old["key"]) and works(new["key"])
    assert {k["value"] for k in gateway.get_usage_plan_keys(usagePlanId=plan)["items"]} == {old["key"], new["key"]}
    # And the client is listed once, with the ids of both keys (never the keys)
    listed = [c for c in cli("list") if c["client_id"] == client]  # type: ignore[union-attr]
    assert len(listed) == 1 and sorted(listed[0]["keys"]) == sorted([old["key_id"], new["key_id"]])
    assert listed[0]["disabled"] is False
    assert old["key"] not in json.dumps(listed)
    # When the old key is revoked by its id, Then it is refused, in the table and in API Gateway, and the new one works
    assert cli("revoke", "--client", client, "--key-id", old["key_id"]) == {
        "revoked": old["key_id"],
        "client_id": client,
    }
    assert not works(old["key"]) and works(new["key"])
    assert gateway.get_api_key(apiKey=old["api_key_id"])["enabled"] is False
    assert gateway.get_api_key(apiKey=new["api_key_id"])["enabled"] is True
    # And a key id the client does not hold, or a client that does not exist, changes nothing
    assert clients_cli(["revoke", "--client", client, "--key-id", "0" * 12]) == 1
    assert clients_cli(["revoke", "--client", "shop-alya-nobody", "--key-id", new["key_id"]]) == 1
    assert clients_cli(["rotate", "--client", f"nobody-{run}", "--no-usage-plan"]) == 1
    assert "key_not_found" not in capsys.readouterr().out
    assert works(new["key"])
