"""Captions as data, through the local gateway with the real OpenAI SDK against a loopback double:
each caption is kept with its photo's catalogue record (provider, model, time); GET /images/{id}/caption
reads the latest, POST /images/{id}/caption writes a new one and keeps the earlier ones (GET
/images/{id}/captions lists them, newest first), for photos stored through the API, a presigned form
or straight into the bucket; a duplicate sent to /generate_caption answers the stored caption; a
retried re-caption (Idempotency-Key) is paid once and answered with links made at answer time."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from doubles.loopback import LoopbackServer, openai_completion
from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.dynamodb_items import from_item
from local.stack import LocalStack
from tests.images import fresh_image
from tests.integration.test_captions import CHAT, GOOD
from tests.stores import settle

CAPTION_FIELDS = ("generated_name", "quality", "description", "attributes", "prompt", "color")
SECOND = {**GOOD, "generated_name": "Teardrop Hoops In Gold", "quality": "A"}


def image_id(photo: bytes) -> str:
    return hashlib.sha256(photo).hexdigest()


def generate_caption(local_stack: LocalStack, photo: bytes, website: str) -> requests.Response:
    files = {"file": ("hoop.jpg", photo, "image/jpeg")}
    data = {"type": "earring", "website": website}
    return requests.post(f"{local_stack.url}/generate_caption", files=files, data=data, timeout=60)


def read(local_stack: LocalStack, photo_id: str, website: str, path: str = "caption") -> requests.Response:
    return requests.get(f"{local_stack.url}/images/{photo_id}/{path}", params={"website": website}, timeout=30)


def recaption(
    local_stack: LocalStack, photo_id: str, website: str, headers: dict[str, str] | None = None, type: str = "earring"
) -> requests.Response:
    return requests.post(
        f"{local_stack.url}/images/{photo_id}/caption",
        params={"website": website},
        json={"type": type},
        headers=headers or {},
        timeout=60,
    )


def said(answer: dict[str, Any]) -> dict[str, Any]:
    return {field: answer[field] for field in CAPTION_FIELDS}


def record(website: str, photo_id: str) -> dict[str, Any]:
    item = aws.client("dynamodb").get_item(
        TableName=get_settings().catalogue_table, Key={"content_id": {"S": f"{website}#{photo_id}"}}
    )["Item"]
    return from_item(item)


@pytest.mark.parametrize("website", ["alya", "blysk"])
def test_a_new_photos_caption_is_kept_and_its_duplicate_answers_it(
    local_stack: LocalStack, openai_chat: LoopbackServer, website: str
) -> None:
    # Given a new photo captioned through /generate_caption
    photo = fresh_image(40_100 + len(website))
    first = generate_caption(local_stack, photo, website)
    assert first.status_code == 200, first.text
    body = first.json()
    # Then the answer names the photo by its bytes' SHA-256, with the provider, model and time of the caption
    assert body["image_id"] == image_id(photo) and body["website"] == website and body["number"] == 1
    assert (body["provider"], body["model"]) == ("openai", get_settings().openai_caption_model)
    assert body["created_at"].endswith("Z") and body["type"] == "earring"
    assert said(body) == GOOD and body["display_name"] == "hoop.jpg"
    # And the caption is kept in the photo's catalogue record
    kept = record(website, body["image_id"])
    assert kept["caption_count"] == 1 and said(kept["captions"][0]) == GOOD
    assert kept["captions"][0]["model"] == body["model"] and kept["captions"][0]["created_at"] == body["created_at"]
    # When it is read by id
    latest = read(local_stack, body["image_id"], website)
    # Then it is the same caption, with a link to the photo that works
    assert latest.status_code == 200, latest.text
    assert {k: v for k, v in latest.json().items() if k != "s3_url"} == {
        k: v for k, v in body.items() if k not in ("s3_url", "display_name")
    }
    assert requests.get(latest.json()["s3_url"], timeout=10).content == photo
    # When the same bytes are sent again (a client that lost the first answer)
    again = generate_caption(local_stack, photo, website)
    # Then it is a duplicate, answered with the stored caption, and nothing more was paid for
    assert again.status_code == 200, again.text
    duplicate = again.json()
    assert duplicate["duplicate_found"] is True and duplicate["results"][0]["match"] == "exact"
    assert duplicate["results"][0]["image_id"] == body["image_id"]
    assert duplicate["caption"]["image_id"] == body["image_id"] and said(duplicate["caption"]) == GOOD
    assert duplicate["caption"]["created_at"] == body["created_at"]
    assert requests.get(duplicate["caption"]["s3_url"], timeout=10).content == photo
    assert len(openai_chat.calls(CHAT)) == 1


def presigned_upload(local_stack: LocalStack, photo: bytes, website: str) -> None:
    grant = requests.post(
        f"{local_stack.url}/uploads", json={"website": website, "content_type": "image/jpeg"}, timeout=30
    ).json()
    posted = requests.post(
        grant["url"], data=grant["fields"], files={"file": ("x.jpg", photo, "image/jpeg")}, timeout=30
    )
    assert posted.status_code in (200, 204), posted.text
    settle(local_stack)
    status = requests.get(f"{local_stack.url}/uploads/{grant['upload_id']}", params={"website": website}, timeout=30)
    assert status.json()["status"] == "indexed", status.text


def straight_upload(local_stack: LocalStack, photo: bytes, website: str) -> None:
    bucket = get_settings().bucket_for(website)  # type: ignore[arg-type]
    aws.client("s3").put_object(Bucket=bucket, Key=f"bulk/{uuid.uuid4().hex}.jpg", Body=photo, ContentType="image/jpeg")
    settle(local_stack)


@pytest.mark.parametrize("website", ["alya", "blysk"])
@pytest.mark.parametrize("arrival", [presigned_upload, straight_upload], ids=["presigned-form", "straight-to-s3"])
def test_a_photo_uploaded_without_the_api_is_captioned_by_id_and_keeps_its_history(
    local_stack: LocalStack,
    openai_chat: LoopbackServer,
    website: str,
    arrival: Callable[[LocalStack, bytes, str], None],
) -> None:
    # Given a photo stored without any caption (posted through a presigned form, or put in the bucket)
    photo = fresh_image(40_200 + len(website) * 7 + len(arrival.__name__))
    arrival(local_stack, photo, website)
    photo_id = image_id(photo)
    # Then it has no caption yet, and the history is empty
    missing = read(local_stack, photo_id, website)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "caption_not_found"), missing.text
    empty = read(local_stack, photo_id, website, "captions")
    assert empty.status_code == 200 and empty.json()["captions"] == [] and empty.json()["caption_count"] == 0
    # When it is captioned by id, and captioned again after the provider's answer changed
    first = recaption(local_stack, photo_id, website)
    openai_chat.script(CHAT, openai_completion(json.dumps(SECOND)))
    second = recaption(local_stack, photo_id, website, type="ring")
    # Then each is a new caption of that photo, read from its bucket (the provider saw its very bytes)
    assert first.status_code == 200 and second.status_code == 200, (first.text, second.text)
    assert (first.json()["number"], second.json()["number"]) == (1, 2)
    assert said(first.json()) == GOOD and said(second.json()) == SECOND and second.json()["type"] == "ring"
    assert all(c.json()["image_id"] == photo_id for c in (first, second))
    assert len(openai_chat.calls(CHAT)) == 2
    # And the latest is the second, while the history keeps both, newest first
    assert said(read(local_stack, photo_id, website).json()) == SECOND
    history = read(local_stack, photo_id, website, "captions").json()
    assert [c["number"] for c in history["captions"]] == [2, 1] and history["caption_count"] == 2
    assert [said(c) for c in history["captions"]] == [SECOND, GOOD]
    assert requests.get(history["s3_url"], timeout=10).content == photo


def test_a_retried_recaption_is_paid_once_and_its_replay_carries_fresh_links(
    local_stack: LocalStack, openai_chat: LoopbackServer, provider_env: Callable[..., None]
) -> None:
    # Given a stored photo, captioned again with an Idempotency-Key
    photo = fresh_image(40_301)
    presigned_upload(local_stack, photo, "alya")
    photo_id, headers = image_id(photo), {"Idempotency-Key": str(uuid.uuid4())}
    first = recaption(local_stack, photo_id, "alya", headers)
    assert first.status_code == 200, first.text
    # Then the idempotency record keeps where the photo lies, never a presigned link that would expire
    items = aws.client("dynamodb").scan(TableName=get_settings().idempotency_table)["Items"]
    recorded = [json.dumps(from_item(i)) for i in items if photo_id in json.dumps(from_item(i))]
    assert len(recorded) == 1 and "s3://" in recorded[0] and "Signature" not in recorded[0], recorded
    # When the client retries later, with links now made to last another lifetime
    provider_env(
        OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=f"{openai_chat.url}/v1", PRESIGN_EXPIRY_S="7200"
    )  # (a changed setting tells a link made now from one recorded then)
    retry = recaption(local_stack, photo_id, "alya", headers)
    # Then it is the first answer, replayed, with its link signed at the retry, and nothing was paid again
    assert retry.status_code == 200 and retry.headers["Idempotent-Replayed"] == "true"
    assert {k: v for k, v in retry.json().items() if k != "s3_url"} == {
        k: v for k, v in first.json().items() if k != "s3_url"
    }
    assert parse_qs(urlsplit(first.json()["s3_url"]).query)["X-Amz-Expires"] == ["3600"]
    assert parse_qs(urlsplit(retry.json()["s3_url"]).query)["X-Amz-Expires"] == ["7200"]
    assert requests.get(retry.json()["s3_url"], timeout=10).content == photo
    assert len(openai_chat.calls(CHAT)) == 1
    # And the photo keeps one caption, and the same key for another type is refused
    assert read(local_stack, photo_id, "alya", "captions").json()["caption_count"] == 1
    other = recaption(local_stack, photo_id, "alya", headers, type="ring")
    assert (other.status_code, other.json()["error"]["code"]) == (422, "idempotency_key_reused")


def test_a_replayed_generate_caption_renders_its_links_at_the_retry(
    local_stack: LocalStack, openai_chat: LoopbackServer, provider_env: Callable[..., None]
) -> None:
    # Given a new photo captioned with a key
    photo, headers = fresh_image(40_401), {"Idempotency-Key": str(uuid.uuid4())}
    files = {"file": ("hoop.jpg", photo, "image/jpeg")}
    url = f"{local_stack.url}/generate_caption"
    first = requests.post(url, files=files, data={"type": "earring"}, headers=headers, timeout=60)
    assert first.status_code == 200, first.text
    # When it is retried once links are made with another lifetime
    provider_env(OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=f"{openai_chat.url}/v1", PRESIGN_EXPIRY_S="7200")
    retry = requests.post(url, files=files, data={"type": "earring"}, headers=headers, timeout=60)
    # Then the replay's link is made at the retry (not the recorded one), and works
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert parse_qs(urlsplit(retry.json()["s3_url"]).query)["X-Amz-Expires"] == ["7200"]
    assert requests.get(retry.json()["s3_url"], timeout=10).content == photo
    assert len(openai_chat.calls(CHAT)) == 1


def test_an_unknown_photo_is_not_found_and_captioning_it_pays_nothing(
    local_stack: LocalStack, openai_chat: LoopbackServer
) -> None:
    # Given an id no stored photo has, in either storefront
    unknown = hashlib.sha256(b"never stored").hexdigest()
    for website in ("alya", "blysk"):
        # When its caption is read, listed or asked for
        answers = [
            read(local_stack, unknown, website),
            read(local_stack, unknown, website, "captions"),
            recaption(local_stack, unknown, website),
        ]
        # Then each is a 404 image_not_found, and the provider was not asked
        assert [(a.status_code, a.json()["error"]["code"]) for a in answers] == [(404, "image_not_found")] * 3
    assert openai_chat.calls(CHAT) == []
