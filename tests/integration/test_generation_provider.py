"""The generative types through the real OpenAI SDK against a loopback images.edit server: every
type delivered with the jewelry's own pixels, retries, and failures that cost only their image."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import requests
from PIL import Image

from doubles.loopback import OPENAI_IMAGE_EDITS, LoopbackServer, openai_error
from listing_vision.imaging.compose import prepare_edits
from listing_vision.imaging.segment import cut_out
from local.stack import LocalStack
from tests.integration.test_generation import RESPOND_ASYNC, earring_photo, stored_source, wait

EDITS = OPENAI_IMAGE_EDITS


@pytest.fixture
def with_provider(edit_provider: Callable[..., None], image_server: LoopbackServer) -> Callable[..., None]:
    """The loopback image server as the provider, with a rate limit too generous to matter here."""
    return lambda **extra: edit_provider(image_server, **extra)


def submit(local_stack: LocalStack, data: bytes, types: list[int]) -> dict[str, Any]:
    source = stored_source(local_stack, data)
    job = requests.post(
        f"{local_stack.url}/generate-images",
        timeout=10,
        headers=RESPOND_ASYNC,
        json={"s3_urls": source, "product_type": "ear", "image_types": types},
    ).json()
    return wait(local_stack, job["job_id"])


def test_every_type_is_delivered_with_the_jewelry_preserved(
    local_stack: LocalStack, image_server: LoopbackServer, with_provider: Callable[..., None]
) -> None:
    with_provider()
    photo = earring_photo(11)
    view = submit(local_stack, photo, [1, 2, 4, 5])
    assert view["failed"] == []
    assert [g["image_type"] for g in view["gen_images"]] == [1, 2, 4, 5]
    # What the SDK sent: the model, high input fidelity, a prompt per type, the image and its mask
    sent = image_server.calls(EDITS)
    assert len(sent) == 3
    body = sent[0].body
    assert b'name="model"' in body and b"gpt-image-2" in body and b'name="input_fidelity"' in body
    assert b'name="mask"' in body and b'name="image"' in body
    # Inside the eroded product mask, every generated image equals the source cutout (MAD < 1)
    cutout = cut_out(Image.open(io.BytesIO(photo)))
    placement = prepare_edits(cutout).placement
    left, top, right, bottom = placement.box
    scaled = np.asarray(cutout.image.resize((right - left, bottom - top), Image.Resampling.LANCZOS).convert("RGB"))
    keep = np.asarray(Image.fromarray(cutout.eroded_mask(3)).resize((right - left, bottom - top))) > 0
    for generated in view["gen_images"][1:]:
        image = Image.open(io.BytesIO(requests.get(generated["image_url"], timeout=10).content)).convert("RGB")
        region = np.asarray(image.crop(placement.box)).astype(float)
        assert np.abs(region[keep] - scaled[keep].astype(float)).mean() < 1.0, generated["image_type"]
        # and the scene around it is the model's, not the white canvas
        assert np.asarray(image)[:50, :50].std() > 1.0


def test_retry_after_and_server_errors_are_retried(
    local_stack: LocalStack, image_server: LoopbackServer, with_provider: Callable[..., None]
) -> None:
    with_provider(PROVIDER_MAX_RETRIES="2", IMAGE_EDIT_CONCURRENCY="1")
    image_server.script(
        EDITS,
        openai_error(429, "rate_limit_exceeded", "slow down", "requests", {"retry-after": "1"}),
        openai_error(500, "server_error", "boom"),
    )
    view = submit(local_stack, earring_photo(12), [2])
    assert view["failed"] == [] and len(image_server.calls(EDITS)) == 3  # the SDK's own retries


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (openai_error(429, "insufficient_quota", "You exceeded your current quota."), "insufficient_quota"),
        (
            openai_error(400, "moderation_blocked", "Rejected by the safety system.", "image_generation_user_error"),
            "content_policy_refusal",
        ),
    ],
    ids=["quota", "content-policy"],
)
def test_a_failed_image_is_reported_and_the_others_delivered(
    local_stack: LocalStack, image_server: LoopbackServer, with_provider: Callable[..., None], reply: Any, reason: str
) -> None:
    with_provider(PROVIDER_MAX_RETRIES="0", IMAGE_EDIT_CONCURRENCY="1")
    image_server.script(EDITS, reply)
    view = submit(local_stack, earring_photo(13 + len(reason)), [1, 2, 4])
    assert [(f["image_type"], f["reason"]) for f in view["failed"]] == [(2, reason)]
    assert [g["image_type"] for g in view["gen_images"]] == [1, 4]


def test_a_jobs_status_is_over_every_type_and_every_regeneration(
    local_stack: LocalStack, image_server: LoopbackServer, with_provider: Callable[..., None]
) -> None:
    # Given a job whose hand-holding type (2) failed at the provider while white background (1) was delivered
    with_provider(PROVIDER_MAX_RETRIES="0")
    image_server.script(EDITS, openai_error(500, "server_error", "boom"))
    view = submit(local_stack, earring_photo(14), [1, 2])
    assert view["status"] == "partial" and [f["image_type"] for f in view["failed"]] == [2]
    regenerate = f"{local_stack.url}/regenerate-image"
    # When type 1 alone is regenerated and succeeds, the job is still partial: type 2 has no image
    requests.post(regenerate, timeout=10, json={"job_id": view["job_id"], "image_type": 1}).raise_for_status()
    view = wait(local_stack, view["job_id"])
    assert view["status"] == "partial" and [f["image_type"] for f in view["failed"]] == [2]
    # When the failed type is regenerated and succeeds, every type has its image: the job is done
    requests.post(regenerate, timeout=10, json={"job_id": view["job_id"], "image_type": 2}).raise_for_status()
    view = wait(local_stack, view["job_id"])
    assert view["status"] == "done" and view["failed"] == []
    assert [g["image_type"] for g in view["gen_images"]] == [1, 2]


def test_the_original_clients_call_answers_synchronously_with_every_image(
    local_stack: LocalStack, image_server: LoopbackServer, with_provider: Callable[..., None]
) -> None:
    # Given the image model up and a stored earring photo
    with_provider()
    source = stored_source(local_stack, earring_photo(13))
    # When a client written for the original, synchronous API calls it as it always did: a plain POST
    response = requests.post(
        f"{local_stack.url}/generate-images", json={"s3_urls": source, "product_type": "ear"}, timeout=60
    )
    # Then the answer is 200 with the original shape, every default type made
    assert response.status_code == 200, response.text
    result = response.json()
    assert set(result) >= {"original_image_url", "gen_images", "zip_url"}
    gen_images = result["gen_images"]
    assert [image["image_type"] for image in gen_images] == [1, 2, 4, 5]
    assert all(set(image) >= {"image_type", "image_type_name", "image_url"} for image in gen_images)
    assert gen_images[0]["image_type_name"] == "White Background"
    # And every link it holds can be fetched as the client fetches it: the images, the original, the ZIP
    for image in gen_images:
        fetched = requests.get(image["image_url"], timeout=10)
        assert fetched.status_code == 200 and Image.open(io.BytesIO(fetched.content)).size[0] > 0
    assert requests.get(result["original_image_url"], timeout=10).status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(requests.get(result["zip_url"], timeout=10).content))
    assert len(archive.namelist()) == 4
