"""POST /image_similarity_search through the local gateway and the real stores: the seed
walkthrough per storefront, concurrent and racing uploads, bad input, check_duplicate and scope,
transparent pixels, and RFC 5987 filenames."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from PIL import Image

from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.imaging.features import ImageFeatures
from listing_vision.jewelry import storage
from local.stack import LocalStack
from tests.images import encode, fresh_image, resized_copy
from tests.integration.dedupe.conftest import Post, catalogue_record, key_of, milvus_rows, s3_objects
from tests.stores import settle


@pytest.mark.parametrize("website", ["alya", "blysk"])
def test_the_seed_walkthrough_for_each_storefront(post: Post, photos: list[Path], website: str) -> None:
    photo = photos[4 if website == "alya" else 5].read_bytes()
    # Given a new photo: it is stored and indexed
    first = post(photo, "ring.jpg", website=website)
    assert first.status_code == 200, first.text
    body = first.json()
    assert set(body) == {"duplicate_found", "image_name", "s3_url"}
    assert body["duplicate_found"] is False and body["image_name"] == "ring.jpg"
    bucket = storage.get_settings().bucket_for(website)  # type: ignore[arg-type]
    assert f"/{bucket}/catalogue/" in body["s3_url"] and "Signature=" in body["s3_url"]
    assert requests.get(body["s3_url"], timeout=10).content == photo  # the presigned URL serves the bytes
    # When the same photo comes again: an exact duplicate, nothing stored
    again = post(photo, "ring-again.jpg", website=website).json()
    assert again["duplicate_found"] is True
    # the seed's fields, with the kind of match and the matched photo's id (what a verdict names)
    assert [set(r) for r in again["results"]] == [{"id", "distance", "path", "match", "image_id"}]
    assert again["results"][0]["distance"] == 0.0 and again["results"][0]["match"] == "exact"
    assert key_of(again["results"][0]["path"]) == key_of(body["s3_url"])
    # When a resized, recompressed copy comes: a near duplicate pointing at the original
    copy = post(resized_copy(photo), "small.jpg", website=website).json()
    assert copy["duplicate_found"] is True
    assert 0 < copy["results"][0]["distance"] < 0.05 and copy["results"][0]["match"] == "near"
    assert key_of(copy["results"][0]["path"]) == key_of(body["s3_url"])
    # And an unrelated photo is new
    assert post(photos[6 if website == "alya" else 7].read_bytes(), website=website).json()["duplicate_found"] is False
    assert milvus_rows(storage.sha256_hex(photo), website) == 1


def test_twenty_identical_uploads_at_once_store_one_object_and_one_vector(post: Post, local_stack: LocalStack) -> None:
    # Given one new image sent by 20 clients at the same moment
    image = fresh_image(2001)
    sha = storage.sha256_hex(image)
    start = threading.Barrier(20)
    answers: list[dict[str, Any]] = []

    def upload() -> None:
        start.wait()
        answers.append(post(image, "race.jpg", website="alya").json())

    threads = [threading.Thread(target=upload) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then exactly one stored it and the other 19 were told it is a duplicate of that one
    assert sum(not a["duplicate_found"] for a in answers) == 1, answers
    assert sum(a["duplicate_found"] for a in answers) == 19
    stored = next(a for a in answers if not a["duplicate_found"])
    assert {key_of(a["results"][0]["path"]) for a in answers if a["duplicate_found"]} == {key_of(stored["s3_url"])}
    # And the stores hold one object, one vector, and one catalogue record with its verification features
    assert [k for k in s3_objects("alyaimg") if sha in k] == [key_of(stored["s3_url"])]
    assert milvus_rows(sha, "alya") == 1
    ImageFeatures.from_bytes(catalogue_record("alya", sha)["verification_features"]["B"])


BAD_INPUTS: list[tuple[str, dict[str, Any], int, str]] = [
    ("missing file", {"data": None}, 400, "invalid_request"),
    ("empty file", {"data": b""}, 400, "empty_file"),
    ("not an image", {"data": b"%PDF-1.7\n%binary"}, 400, "not_an_image"),
    ("truncated", {"data": "truncated"}, 400, "corrupt_image"),
    ("gif", {"data": "gif"}, 415, "unsupported_image_format"),
    ("decompression bomb", {"data": "bomb"}, 413, "decompression_bomb"),
    ("over the API's image limit", {"data": "oversized"}, 413, "file_too_large"),
    ("over Lambda's 6 MB event", {"data": "over_event"}, 413, "payload_too_large"),
    ("unknown website", {"website": "etsy"}, 400, "invalid_request"),
    ("bad check_duplicate", {"check_duplicate": "maybe"}, 400, "invalid_request"),
    ("bad scope", {"scope": "everywhere"}, 400, "invalid_request"),
]


def bad_payload(kind: Any, photo: bytes) -> bytes | None:
    from PIL import Image

    if not isinstance(kind, str):
        return kind
    return {
        "truncated": photo[: len(photo) // 2],
        "gif": encode(Image.new("RGB", (64, 64), "gold"), "GIF"),
        "bomb": encode(Image.new("1", (10_000, 5_000)), "PNG"),
        "oversized": b"\xff\xd8\xff" + b"\0" * 4_600_000,
        "over_event": b"\xff\xd8\xff" + b"\0" * 5_000_000,
    }[kind]


@pytest.mark.parametrize(("case", "request_parts", "status", "code"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_refused_with_a_code_and_writes_nothing(
    post: Post, local_stack: LocalStack, case: str, request_parts: dict[str, Any], status: int, code: str
) -> None:
    # Given the stores' contents before
    fresh = fresh_image(3000 + len(case))
    before = (s3_objects("alyaimg"), s3_objects("blyskimg"), milvus_rows())
    # When the bad request is sent
    data = bad_payload(request_parts.pop("data", fresh), fresh)
    answer = post(data, **{k: v for k, v in request_parts.items()})
    # Then it is refused with its stable code
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code
    # in the one error shape, with a request id to find it in the logs by (the 6 MB refusal too)
    assert answer.json()["error"]["request_id"], answer.text
    # And nothing was written anywhere
    assert (s3_objects("alyaimg"), s3_objects("blyskimg"), milvus_rows()) == before


def test_check_duplicate_no_stores_a_near_copy_but_never_the_same_bytes_twice(post: Post) -> None:
    original = fresh_image(4001)
    assert post(original, website="blysk").json()["duplicate_found"] is False
    near = resized_copy(original)
    assert post(near, website="blysk").json()["duplicate_found"] is True
    forced = post(near, website="blysk", check_duplicate="no").json()
    assert forced["duplicate_found"] is False
    assert post(near, website="blysk", check_duplicate="no").json()["results"][0]["distance"] == 0.0


def test_scope_all_searches_every_storefront(post: Post) -> None:
    image = fresh_image(5001)
    assert post(image, website="alya").json()["duplicate_found"] is False
    copy = resized_copy(image)
    assert post(copy, website="blysk", scope="all").json()["duplicate_found"] is True
    assert post(copy, website="blysk").json()["duplicate_found"] is False  # default: this storefront only


@pytest.mark.parametrize("website", ["alya", "blysk"])
def test_an_upload_that_loses_a_near_duplicate_race_is_rolled_back(
    post: Post, local_stack: LocalStack, website: str
) -> None:
    import botocore.handlers

    original = fresh_image(31_000 + len(website), size=(400, 300))
    copy = resized_copy(original, 0.5)
    copy_key = storage.catalogue_key(storage.sha256_hex(copy), "JPEG")
    stored: dict[str, Any] = {}

    def store_the_original_meanwhile(params: dict[str, Any], **_: Any) -> None:
        # When the copy, found new, is being written, the original arrives and is stored first
        if params.get("Key") == copy_key and not stored:
            stored.update(post(original, "original.jpg", website=website).json())

    handler = ("before-parameter-build.s3.PutObject", store_the_original_meanwhile)
    botocore.handlers.BUILTIN_HANDLERS.append(handler)
    aws.reset_clients()
    try:
        # Given the half-size copy of a photo the catalogue does not have, uploaded alone
        answer = post(copy, "copy.jpg", website=website)
    finally:
        botocore.handlers.BUILTIN_HANDLERS.remove(handler)
        aws.reset_clients()
    # Then the original, stored first, is kept, and the copy answered as its duplicate
    assert stored["duplicate_found"] is False, stored
    body = answer.json()
    assert answer.status_code == 200 and body["duplicate_found"] is True, body
    assert body["results"][0]["match"] == "near" and key_of(body["results"][0]["path"]) == key_of(stored["s3_url"])
    # And the copy was rolled back: no object, no vector, its claim yielded
    settle(local_stack)
    sha = storage.sha256_hex(copy)
    bucket = get_settings().bucket_for(website)  # type: ignore[arg-type]
    assert [key for key in s3_objects(bucket) if sha in key] == []
    assert milvus_rows(sha, website) == 0
    assert catalogue_record(website, sha)["status"]["S"] == "yielded"


def transparent_photo(seed: int, hidden_seed: int) -> bytes:
    """An RGBA PNG: a photo on its right quarter, the rest fully transparent over another scene
    drawn from `hidden_seed` (what an editor leaves under a cleared background)."""
    visible = np.asarray(Image.open(io.BytesIO(fresh_image(seed, (320, 240), "PNG"))).convert("RGB"))
    hidden = np.asarray(Image.open(io.BytesIO(fresh_image(hidden_seed, (320, 240), "PNG"))).convert("RGB"))
    rgb = np.where(np.arange(320)[None, :, None] < 240, hidden, visible)
    alpha = np.where(np.arange(320)[None, :] < 240, 0, 255).repeat(240, axis=0).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(buffer, "PNG")
    return buffer.getvalue()


def test_photos_differing_only_under_transparent_pixels_are_duplicates(post: Post) -> None:
    # Given an RGBA photo stored once
    first = transparent_photo(4_101, hidden_seed=4_102)
    stored = post(first, "cutout.png", website="blysk")
    assert stored.status_code == 200 and stored.json()["duplicate_found"] is False, stored.text
    # When the same photo comes again with another scene under its fully transparent part (it looks
    # identical: nothing shows through alpha 0)
    second = transparent_photo(4_101, hidden_seed=4_103)
    assert second != first
    again = post(second, "cutout-again.png", website="blysk")
    # Then it is answered as a duplicate of the first, not stored a second time
    assert again.status_code == 200, again.text
    assert again.json()["duplicate_found"] is True
    assert key_of(again.json()["results"][0]["path"]) == key_of(stored.json()["s3_url"])
    assert milvus_rows(storage.sha256_hex(second), "blysk") == 0


def post_raw_multipart(local_stack: LocalStack, body: bytes) -> requests.Response:
    """A hand-written multipart body (boundary `b0undary`) to the dedupe route, as a client framed it."""
    return requests.post(
        f"{local_stack.url}/image_similarity_search",
        data=body,
        headers={"Content-Type": "multipart/form-data; boundary=b0undary"},
        timeout=60,
    )


def test_an_rfc_5987_filename_is_accepted_and_decoded(local_stack: LocalStack) -> None:
    # Given a multipart upload naming its file only as filename*=UTF-8''... (RFC 5987, percent-encoded)
    photo = fresh_image(4_301)
    body = (
        b"--b0undary\r\nContent-Disposition: form-data; name=\"file\"; filename*=UTF-8''bague%20%C3%A9t%C3%A9.jpg"
        b"\r\nContent-Type: image/jpeg\r\n\r\n" + photo + b"\r\n"
        b'--b0undary\r\nContent-Disposition: form-data; name="website"\r\n\r\nblysk\r\n--b0undary--\r\n'
    )
    # When it is posted
    answer = post_raw_multipart(local_stack, body)
    # Then it is stored under the decoded name, not refused as a plain field
    assert answer.status_code == 200, answer.text
    assert answer.json()["image_name"] == "bague été.jpg"


def test_filename_star_wins_over_filename_in_any_parameter_order(local_stack: LocalStack) -> None:
    # Given both forms of the name, filename* first and name last (RFC 6266: filename* is preferred)
    photo = fresh_image(4_302)
    disposition = b'form-data; filename*=UTF-8\'\'%C3%A9.jpg; filename="fallback.jpg"; name="file"'
    body = b"--b0undary\r\nContent-Disposition: " + disposition + b"\r\n\r\n" + photo + b"\r\n--b0undary--\r\n"
    # When it is posted
    answer = post_raw_multipart(local_stack, body)
    # Then the extended name is the one kept
    assert answer.status_code == 200, answer.text
    assert answer.json()["image_name"] == "é.jpg"
