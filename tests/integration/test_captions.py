"""POST /generate_caption through the local gateway: the real OpenAI and Anthropic SDKs against
loopback servers speaking their protocols, and the offline captioner on real photos."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from doubles.loopback import (
    ANTHROPIC_MESSAGES,
    OPENAI_CHAT,
    LoopbackServer,
    Recorded,
    Reply,
    anthropic_error,
    anthropic_message,
    openai_completion,
    openai_error,
)
from listing_vision import aws
from listing_vision.jewelry import vector_index
from listing_vision.jewelry.caption_schema import Caption
from local.stack import LocalStack
from tests.images import encode, fresh_image
from tests.stores import settle

GOOD = {
    "generated_name": "Gold Teardrop Hoop Earrings",
    "quality": "B",
    "description": "Polished yellow gold teardrop hoops with a hinged closure, shown as a pair.",
    "attributes": "yellow gold, polished finish, teardrop hoop, hinged closure",
    "prompt": "A pair of polished yellow gold teardrop hoop earrings with hinged closures, medium size",
    "color": "yellow gold",
}
CHAT = OPENAI_CHAT
MESSAGES = ANTHROPIC_MESSAGES


@pytest.fixture
def openai_server() -> Iterator[LoopbackServer]:
    server = LoopbackServer({CHAT: lambda request: openai_completion(json.dumps(GOOD))}).start()
    yield server
    server.stop()


@pytest.fixture
def anthropic_server() -> Iterator[LoopbackServer]:
    server = LoopbackServer({MESSAGES: lambda request: anthropic_message(json.dumps(GOOD))}).start()
    yield server
    server.stop()


@pytest.fixture
def provider(provider_env: Callable[..., None]) -> Callable[..., None]:
    return provider_env


def caption(local_stack: LocalStack, data: bytes | None, **form: str) -> requests.Response:
    files = {"file": ("earring.jpg", data, "image/jpeg")} if data is not None else {"x": ("x", b"1")}
    return requests.post(
        f"{local_stack.url}/generate_caption", files=files, data={"type": "earring", **form}, timeout=60
    )


def stored_state() -> tuple[int, int]:
    pages = aws.client("s3").get_paginator("list_objects_v2").paginate(Bucket="alyaimg")
    return sum(p.get("KeyCount", 0) for p in pages), vector_index.VectorIndex("image_embeddings_ip").count()


def test_openai_caption_is_validated_and_the_image_stored(
    local_stack: LocalStack, openai_server: LoopbackServer, provider: Callable[..., None]
) -> None:
    provider(OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=f"{openai_server.url}/v1")
    image = fresh_image(20_001)
    answer = caption(local_stack, image)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["provider"] == "openai"
    assert {k: body[k] for k in GOOD} == GOOD
    assert body["display_name"] == "earring.jpg" and "Signature=" in body["s3_url"]
    # What the SDK sent: the image as a data URL and the JSON schema of the caption
    sent = openai_server.calls(CHAT)[0].json()
    image_part = sent["messages"][1]["content"][1]
    assert image_part["image_url"]["url"] == "data:image/jpeg;base64," + base64.b64encode(image).decode()
    assert sent["response_format"]["type"] == "json_schema"
    assert set(sent["response_format"]["json_schema"]["schema"]["required"]) == set(Caption.model_fields)
    # And a second upload of the same photo is a duplicate, costing no caption
    assert caption(local_stack, image).json()["duplicate_found"] is True
    assert len(openai_server.calls(CHAT)) == 1


def test_openai_retries_429_with_retry_after_and_500(
    local_stack: LocalStack, openai_server: LoopbackServer, provider: Callable[..., None]
) -> None:
    provider(OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=f"{openai_server.url}/v1", PROVIDER_MAX_RETRIES="2")
    openai_server.script(
        CHAT,
        openai_error(429, "rate_limit_exceeded", "slow down", "requests", {"retry-after": "1"}),
        openai_error(500, "server_error", "boom"),
    )
    answer = caption(local_stack, fresh_image(20_002))
    assert answer.status_code == 200, answer.text
    assert len(openai_server.calls(CHAT)) == 3  # the SDK's own retries, no string matching on "429"


@pytest.mark.parametrize(
    ("replies", "status", "code"),
    [
        ([openai_error(429, "insufficient_quota", "You exceeded your current quota.")] * 3, 503, "insufficient_quota"),
        ([openai_completion("{not json")] * 2, 502, "malformed_model_reply"),
        ([openai_completion(json.dumps({**GOOD, "quality": "excellent"}))] * 2, 502, "malformed_model_reply"),
        ([openai_completion(None, refusal="I can't help with that.")], 400, "content_policy_refusal"),
        (
            [openai_error(400, "content_policy_violation", "Image rejected by safety system.")],
            400,
            "content_policy_refusal",
        ),
    ],
    ids=["quota", "not-json-twice", "schema-violation-twice", "refusal", "content-policy"],
)
def test_openai_failures_answer_clearly_and_store_nothing(
    local_stack: LocalStack,
    openai_server: LoopbackServer,
    provider: Callable[..., None],
    replies: list[Reply],
    status: int,
    code: str,
) -> None:
    provider(OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=f"{openai_server.url}/v1", PROVIDER_MAX_RETRIES="2")
    openai_server.script(CHAT, *replies)
    before = stored_state()
    answer = caption(local_stack, fresh_image(20_100 + len(code) + status))
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code
    assert stored_state() == before


def test_a_malformed_reply_is_repaired_once(
    local_stack: LocalStack, openai_server: LoopbackServer, provider: Callable[..., None]
) -> None:
    provider(OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=f"{openai_server.url}/v1")
    openai_server.script(CHAT, openai_completion(json.dumps({**GOOD, "description": "two\nlines"})))
    answer = caption(local_stack, fresh_image(20_003))
    assert answer.status_code == 200 and answer.json()["description"] == GOOD["description"]
    retry = openai_server.calls(CHAT)[1].json()["messages"][-1]
    assert retry["role"] == "user" and "could not be used" in retry["content"]


def test_anthropic_caption_and_its_errors(
    local_stack: LocalStack, anthropic_server: LoopbackServer, provider: Callable[..., None]
) -> None:
    provider(
        CAPTION_PROVIDER="anthropic",
        ANTHROPIC_API_KEY="sk-ant-test",
        ANTHROPIC_BASE_URL=anthropic_server.url,
        PROVIDER_MAX_RETRIES="2",
    )
    # A 429 with retry-after, then a caption with a stray field the schema forbids... then a good one
    anthropic_server.script(MESSAGES, anthropic_error(429, "rate_limit_error", "slow down", {"retry-after": "1"}))
    answer = caption(local_stack, fresh_image(20_004), type="ring")
    assert answer.status_code == 200, answer.text
    assert answer.json()["provider"] == "anthropic" and answer.json()["generated_name"] == GOOD["generated_name"]
    sent: Recorded = anthropic_server.calls(MESSAGES)[-1]
    content = sent.json()["messages"][0]["content"]
    assert content[0]["type"] == "image" and content[0]["source"]["media_type"] == "image/jpeg"
    assert "ring" in content[1]["text"]
    assert sent.json()["output_config"]["format"]["type"] == "json_schema"
    # Malformed twice: a clear 502, nothing stored
    anthropic_server.script(MESSAGES, anthropic_message("no json here"), anthropic_message("still none"))
    before = stored_state()
    bad = caption(local_stack, fresh_image(20_005))
    assert bad.status_code == 502 and bad.json()["error"]["code"] == "malformed_model_reply"
    assert stored_state() == before


def test_offline_captions_describe_only_what_pixels_show(
    local_stack: LocalStack, photos: list[Path], provider: Callable[..., None]
) -> None:
    provider(CAPTION_PROVIDER="offline")
    from listing_vision.imaging.measure import JEWELRY_COLOURS

    named = {photo.name: photo for photo in photos}
    # generation finds a piece in each (image5 and image7 too, but test_dedupe needs them new in blysk)
    for photo in (named["image2.jpg"], named["image9.jpg"]):
        body = caption(local_stack, photo.read_bytes(), check_duplicate="no", website="blysk").json()
        assert body["provider"] == "offline"
        assert body["color"] in JEWELRY_COLOURS
        assert body["quality"] in ("C", "D")  # 300 px photos are under Amazon's 1,000 px minimum
        assert "under Amazon's 1,000 px zoom minimum" in body["description"]
        Caption.model_validate({k: body[k] for k in Caption.model_fields})


def test_offline_captions_refuse_a_photo_without_a_piece_as_generation_does(
    local_stack: LocalStack, photos: list[Path], provider: Callable[..., None]
) -> None:
    from listing_vision.imaging.decode import load_image
    from listing_vision.imaging.segment import NoPieceFound, cut_out

    provider(CAPTION_PROVIDER="offline")
    # Given scene photos (a fort, a sunset, a plane) that generation cuts no piece out of
    scenes = [photo for photo in photos if photo.name in ("image6.jpg", "image8.jpg", "image10.jpg")]
    for photo in scenes:
        with pytest.raises(NoPieceFound):
            cut_out(load_image(photo.read_bytes()))
    before = stored_state()
    for photo in scenes:
        # When the offline captioner is asked for a caption of one (re-encoded: other tests may have
        # stored these very bytes, which would be answered as an exact duplicate first)
        scene = encode(Image.open(photo).convert("RGB"), quality=90)
        answer = caption(local_stack, scene, check_duplicate="no", type="earring")
        # Then it says there is no piece, with generation's code, instead of naming earrings
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["code"] == "no_piece_found"
    # And nothing was written
    assert stored_state() == before


def test_offline_grades_follow_the_measurements() -> None:
    import io

    from PIL import Image, ImageDraw, ImageFilter

    from listing_vision.jewelry.offline_caption import OfflineCaptioner

    def ring(size: int = 1200, blur: float = 0) -> bytes:
        image = Image.new("RGB", (size, size), (250, 250, 250))
        draw = ImageDraw.Draw(image)
        draw.ellipse((size // 10, size // 10, size * 9 // 10, size * 9 // 10), outline=(212, 175, 55), width=size // 13)
        if blur:
            image = image.filter(ImageFilter.GaussianBlur(blur))
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        return buffer.getvalue()

    captioner = OfflineCaptioner()
    sharp = captioner.caption(ring(), "image/png", "ring")
    assert sharp.quality == "A" and sharp.color == "yellow gold" and sharp.generated_name == "Yellow Gold Ring"
    assert captioner.caption(ring(blur=12), "image/png", "ring").quality in ("B", "C")
    assert captioner.caption(ring(size=500), "image/png", "ring").quality == "B"


@pytest.mark.parametrize(
    ("data", "form", "status", "code"),
    [
        (None, {}, 400, "invalid_request"),
        (b"", {}, 400, "empty_file"),
        (b"not an image", {}, 400, "not_an_image"),
        (b"GOOD", {"type": "tiara"}, 400, "invalid_request"),
        (b"GOOD", {"website": "etsy"}, 400, "invalid_request"),
    ],
    ids=["missing-file", "empty", "not-image", "unknown-type", "unknown-website"],
)
def test_bad_input_is_refused_and_writes_nothing(
    local_stack: LocalStack,
    provider: Callable[..., None],
    data: bytes | None,
    form: dict[str, Any],
    status: int,
    code: str,
) -> None:
    provider(CAPTION_PROVIDER="offline")
    before = stored_state()
    answer = caption(local_stack, fresh_image(20_200) if data == b"GOOD" else data, **form)
    assert answer.status_code == status and answer.json()["error"]["code"] == code
    assert stored_state() == before


@pytest.mark.parametrize("website", ["alya", "blysk"])
def test_a_caption_upload_that_loses_a_near_duplicate_race_is_rolled_back(
    local_stack: LocalStack, provider: Callable[..., None], website: str
) -> None:
    from listing_vision.jewelry import storage
    from tests.images import resized_copy

    original = fresh_image(20_777 + len(website), size=(400, 300))
    copy = resized_copy(original, 0.5, quality=85)
    stored: dict[str, Any] = {}

    def store_the_original_meanwhile(request: Recorded) -> Reply:
        # While the copy's caption is being written (after its duplicate check found nothing, before it
        # is stored), the original arrives through the dedupe API and is stored
        stored.update(
            requests.post(
                f"{local_stack.url}/image_similarity_search",
                files={"file": ("original.jpg", original, "image/jpeg")},
                data={"website": website},
                timeout=60,
            ).json()
        )
        return openai_completion(json.dumps(GOOD))

    server = LoopbackServer({CHAT: store_the_original_meanwhile}).start()
    try:
        provider(OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=f"{server.url}/v1")
        # Given a caption request for the half-size copy of a photo the catalogue does not have
        # When the original is stored while the copy is being captioned
        answer = caption(local_stack, copy, website=website)
    finally:
        server.stop()
    # Then the original, stored first, is kept and the copy is answered as its duplicate
    assert stored["duplicate_found"] is False, stored
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["duplicate_found"] is True and body["results"][0]["match"] == "near", body
    assert body["results"][0]["path"].split("?")[0] == stored["s3_url"].split("?")[0]
    # And the copy was rolled back everywhere: no object, no vector, its claim yielded (also once the
    # upload trigger has seen its object come and go)
    settle(local_stack)
    sha = storage.sha256_hex(copy)
    bucket = "alyaimg" if website == "alya" else "blyskimg"
    listed = aws.client("s3").list_objects_v2(Bucket=bucket, Prefix=f"catalogue/{sha[:2]}/{sha}")
    assert listed.get("KeyCount", 0) == 0
    assert vector_index.VectorIndex("image_embeddings_ip").find_exact(sha, website) == []
    record = aws.client("dynamodb").get_item(TableName="image-catalogue", Key={"content_id": {"S": f"{website}#{sha}"}})
    assert record.get("Item", {}).get("status", {}).get("S") == "yielded", (record, body, stored)


@pytest.mark.parametrize("size", [(3200, 16), (20_000, 20), (16, 3200)], ids=["3200x16", "20000x20", "16x3200"])
def test_long_thin_strips_are_measured_and_a_caption_refuses_them_cleanly(
    local_stack: LocalStack, provider: Callable[..., None], size: tuple[int, int]
) -> None:
    from listing_vision.imaging.decode import load_image
    from listing_vision.imaging.measure import measure

    # Given a strip whose short side is acceptable (>= 16 px)
    strip = fresh_image(20_300 + size[0], size, "PNG")
    # When it is measured: reduced to 384 px it would be a strip 1 px high (an IndexError, a 500)
    measured = measure(load_image(strip))
    # Then it is measured at its own size
    assert (measured.width, measured.height) == size
    # And captioning it answers with a stable code (no piece stands out of a smooth strip), writing nothing
    provider(CAPTION_PROVIDER="offline")
    before = stored_state()
    answer = caption(local_stack, strip, check_duplicate="no", type="ring")
    assert (answer.status_code, answer.json()["error"]["code"]) == (422, "no_piece_found"), answer.text
    assert stored_state() == before
