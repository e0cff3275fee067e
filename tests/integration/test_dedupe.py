"""POST /image_similarity_search, the S3 upload trigger and presigned uploads, through the local
gateway and the real stores (moto S3/DynamoDB, Milvus Lite)."""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from PIL import Image

from evaluation import variants
from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.imaging.features import ImageFeatures
from listing_vision.jewelry import storage, vector_index
from local.stack import LocalStack
from tests.images import encode, fresh_image, resized_copy

Post = Callable[..., requests.Response]


@pytest.fixture
def post(local_stack: LocalStack) -> Post:
    def send(data: bytes | None, name: str = "photo.jpg", **form: str) -> requests.Response:
        files = {"file": (name, data, "image/jpeg")} if data is not None else {"other": ("x", b"1")}
        return requests.post(f"{local_stack.url}/image_similarity_search", files=files, data=form, timeout=60)

    return send


def catalogue_record(website: str, sha256: str) -> dict[str, Any]:
    key = {"content_id": {"S": f"{website}#{sha256}"}}
    return aws.client("dynamodb").get_item(TableName=get_settings().catalogue_table, Key=key).get("Item", {})


def milvus_rows(sha256: str | None = None, website: str | None = None) -> int:
    index = vector_index.VectorIndex("image_embeddings_ip")
    if sha256 is None:
        return index.count()
    return len(index.find_exact(sha256, website or "alya"))


def s3_objects(bucket: str) -> list[str]:
    pages = aws.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def key_of(url: str) -> str:
    return url.split("?")[0].split("/", 4)[-1]


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
    assert [set(r) for r in again["results"]] == [{"id", "distance", "path", "match"}]
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


def s3_event(bucket: str, key: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"}, "object": {"key": key, "size": 1}},
            }
        ]
    }


def tags(bucket: str, key: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in aws.client("s3").get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}


def test_objects_put_into_a_bucket_are_indexed_or_recorded_and_redelivery_changes_nothing(
    local_stack: LocalStack,
) -> None:
    s3 = aws.client("s3")
    original, duplicate, text = fresh_image(6001), resized_copy(fresh_image(6001)), b"not an image"
    # When a console upload drops three objects into the bucket (S3 notifies the dedupe function)
    s3.put_object(Bucket="alyaimg", Key="console/Ring Photo.jpg", Body=original)
    local_stack.router.drain()
    s3.put_object(Bucket="alyaimg", Key="console/ring-small.jpg", Body=duplicate)
    s3.put_object(Bucket="alyaimg", Key="console/notes.txt", Body=text)
    local_stack.router.drain()
    # Then the new image is indexed where it lies, the copy and the text file recorded as what they are
    assert tags("alyaimg", "console/Ring Photo.jpg") == {"dedupe-status": "indexed"}
    assert tags("alyaimg", "console/ring-small.jpg") == {
        "dedupe-status": "duplicate",
        "duplicate-of": "s3://alyaimg/console/Ring Photo.jpg",
        "duplicate-match": "near",
    }
    assert tags("alyaimg", "console/notes.txt") == {"dedupe-status": "invalid", "reason": "not_an_image"}
    sha = storage.sha256_hex(original)
    assert milvus_rows(sha, "alya") == 1
    # When the same events are delivered again (S3 delivers at least once)
    before = (milvus_rows(), s3_objects("alyaimg"))
    handler = local_stack.router.handler_for("dedupe-indexer")
    for key in ("console/Ring+Photo.jpg", "console/ring-small.jpg", "console/notes.txt"):
        from local.lambda_runtime import invoke

        result = invoke(handler, "dedupe-indexer", s3_event("alyaimg", key))
        assert result["outcomes"][0]["status"] in ("already_indexed", "duplicate", "invalid")
    # Then nothing changed
    assert (milvus_rows(), s3_objects("alyaimg")) == before
    assert tags("alyaimg", "console/Ring Photo.jpg") == {"dedupe-status": "indexed"}


def test_api_writes_do_not_index_twice_when_their_event_arrives(post: Post, local_stack: LocalStack) -> None:
    image = fresh_image(7001)
    post(image, website="alya")
    local_stack.router.drain()  # the API's own put_object raised an ObjectCreated event
    assert milvus_rows(storage.sha256_hex(image), "alya") == 1


def test_large_images_go_through_a_presigned_upload(local_stack: LocalStack) -> None:
    from PIL import Image

    # Given an image too large for API Gateway and Lambda (> 6 MB)
    big = encode(Image.effect_noise((2400, 2400), 64).convert("RGB"), "PNG")
    assert len(big) > 6_000_000, len(big)
    through_api = requests.post(
        f"{local_stack.url}/image_similarity_search", files={"file": ("big.png", big, "image/png")}, timeout=60
    )
    assert through_api.status_code == 413
    # When the client asks for an upload and posts the file straight to S3
    grant = requests.post(
        f"{local_stack.url}/uploads",
        json={"website": "blysk", "filename": "Big Ring.png", "content_type": "image/png"},
        timeout=10,
    ).json()
    assert grant["key"].startswith("incoming/") and grant["max_bytes"] >= len(big)
    posted = requests.post(
        grant["url"], data=grant["fields"], files={"file": ("Big Ring.png", big, "image/png")}, timeout=60
    )
    assert posted.status_code in (200, 204), posted.text
    local_stack.router.drain()
    # Then the trigger indexed it, and the status endpoint says so
    status = requests.get(
        f"{local_stack.url}/uploads/{grant['upload_id']}", params={"website": "blysk"}, timeout=10
    ).json()
    assert status["status"] == "indexed" and requests.get(status["s3_url"], timeout=30).content == big
    assert milvus_rows(storage.sha256_hex(big), "blysk") == 1
    record = aws.client("dynamodb").get_item(
        TableName="image-catalogue", Key={"content_id": {"S": f"blysk#{storage.sha256_hex(big)}"}}
    )["Item"]
    assert record["image_name"]["S"] == "Big Ring.png"
    # And the signed policy binds the key, the content type and the size (S3 enforces it; moto does not)
    policy = json.loads(base64.b64decode(grant["fields"]["policy"]))
    assert {"key": grant["key"]} in policy["conditions"]
    assert {"Content-Type": "image/png"} in policy["conditions"]
    assert ["content-length-range", 1, grant["max_bytes"]] in policy["conditions"]
    missing = requests.get(f"{local_stack.url}/uploads/{'0' * 32}", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "upload_not_found"
    malformed = requests.get(f"{local_stack.url}/uploads/nope", timeout=10)  # not an upload id at all
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "invalid_request"


def expiring_rules(bucket: str, key: str) -> list[str]:
    """The bucket's lifecycle rules (as provisioned) that would expire this object."""
    s3 = aws.client("s3")
    tags = {(t["Key"], t["Value"]) for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}
    found = []
    for rule in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]:
        match = rule["Filter"].get("And", rule["Filter"])
        wanted = {(t["Key"], t["Value"]) for t in match.get("Tags", [])} | (
            {(match["Tag"]["Key"], match["Tag"]["Value"])} if "Tag" in match else set()
        )
        if "Expiration" in rule and key.startswith(match.get("Prefix", "")) and wanted <= tags:
            found.append(rule["ID"])
    return found


def test_uploads_found_duplicate_or_invalid_are_what_the_lifecycle_rules_expire(
    post: Post, local_stack: LocalStack
) -> None:
    original = fresh_image(seed=4242)
    post(original, "kept.jpg", website="alya")

    def presigned(data: bytes) -> str:
        grant = requests.post(
            f"{local_stack.url}/uploads", json={"website": "alya", "content_type": "image/jpeg"}, timeout=10
        ).json()
        posted = requests.post(grant["url"], data=grant["fields"], files={"file": ("f.jpg", data)}, timeout=30)
        assert posted.status_code in (200, 204), posted.text
        return str(grant["key"])

    # Given presigned uploads: a copy of a catalogue photo, a file that is not an image, and a new photo
    duplicate, invalid, new = presigned(original), presigned(b"not an image"), presigned(fresh_image(seed=4343))
    local_stack.router.drain()
    # Then the bucket's lifecycle rules (provisioned from the same declaration as on AWS) expire the
    # duplicate and the invalid one, and never an indexed upload, which is a catalogue photo
    assert expiring_rules("alyaimg", duplicate) == ["duplicate-uploads"]
    assert expiring_rules("alyaimg", invalid) == ["invalid-uploads"]
    assert expiring_rules("alyaimg", new) == []
    assert tags("alyaimg", new) == {"dedupe-status": "indexed"}


PACKAGE_PHOTOS = Path(__file__).resolve().parents[1] / "data" / "package_photos"


def labelled(name: str) -> tuple[bytes, dict[str, bytes]]:
    """A real photo and one variant of each class (fixed seed): the first, and for crops the tightest
    (far enough from the original in embedding space that only verification can match it)."""
    original = (PACKAGE_PHOTOS / f"{name}.jpg").read_bytes()
    chosen: dict[str, bytes] = {}
    tightest = 1.0
    for variant in variants.variants(name, original, seed=15):
        chosen.setdefault(variant.kind, variant.data)
        if variant.kind == "crop" and float(variant.detail.split("%")[0]) / 100 < tightest:
            tightest = float(variant.detail.split("%")[0]) / 100
            chosen["crop"] = variant.data
    return original, chosen


def test_re_exports_are_found_in_two_stages_and_colour_variants_are_new_products(post: Post) -> None:
    # Given a real photo in the catalogue
    original, by_kind = labelled("coffee")
    stored = post(original, "coffee.jpg", website="blysk").json()
    assert stored["duplicate_found"] is False
    # When each kind of re-export is uploaded (squashed, cropped, rotated, mirrored, grayscale, ...)
    for kind in variants.DUPLICATE_CLASSES:
        answer = post(by_kind[kind], f"{kind}.jpg", website="blysk").json()
        # Then it is a duplicate of that photo, saying why
        assert answer["duplicate_found"] is True, kind
        assert key_of(answer["results"][0]["path"]) == key_of(stored["s3_url"]), kind
        assert answer["results"][0]["match"] in ("near", "verified"), kind
        assert 0 <= answer["results"][0]["distance"] < get_settings().retrieval_threshold, kind
    # When colour variants of the design arrive (a hue rotation, the piece recoloured as gold or silver)
    for kind in variants.COLOUR_VARIANTS:
        answer = post(by_kind[kind], f"{kind}.jpg", website="blysk").json()
        # Then each is a new product, stored
        assert answer["duplicate_found"] is False, kind
        assert "/blyskimg/catalogue/" in answer["s3_url"]


def test_the_upload_trigger_takes_the_same_two_stage_decision(local_stack: LocalStack) -> None:
    s3 = aws.client("s3")
    original, by_kind = labelled("china")
    # Given a photo dropped into the bucket and indexed by the trigger
    s3.put_object(Bucket="alyaimg", Key="console/china.jpg", Body=original)
    local_stack.router.drain()
    assert tags("alyaimg", "console/china.jpg") == {"dedupe-status": "indexed"}
    # Then its verification features are kept in its catalogue record, not as objects in the bucket
    ImageFeatures.from_bytes(catalogue_record("alya", storage.sha256_hex(original))["verification_features"]["B"])
    assert [key for key in s3_objects("alyaimg") if key.startswith("verification/")] == []
    # When a crop and a recoloured copy are dropped in
    s3.put_object(Bucket="alyaimg", Key="console/china-crop.jpg", Body=by_kind["crop"])
    s3.put_object(Bucket="alyaimg", Key="console/china-gold.jpg", Body=by_kind["metal"])
    local_stack.router.drain()
    # Then the crop is recorded as a verified duplicate and the colour variant is indexed as new
    assert tags("alyaimg", "console/china-crop.jpg") == {
        "dedupe-status": "duplicate",
        "duplicate-of": "s3://alyaimg/console/china.jpg",
        "duplicate-match": "verified",
    }
    assert tags("alyaimg", "console/china-gold.jpg") == {"dedupe-status": "indexed"}


def test_images_indexed_without_features_are_still_verified_from_the_image(post: Post) -> None:
    dynamodb = aws.client("dynamodb")
    original, by_kind = labelled("flower")
    stored = post(original, "flower.jpg", website="alya").json()
    key = {"content_id": {"S": f"alya#{storage.sha256_hex(original)}"}}
    table = get_settings().catalogue_table
    # Given an image indexed before verification features were kept (none in its record)
    dynamodb.update_item(TableName=table, Key=key, UpdateExpression="REMOVE verification_features")
    # When a crop of it is uploaded
    answer = post(by_kind["crop"], website="alya").json()
    # Then the image itself is read and the crop verified; its features are written back for next time
    assert answer["duplicate_found"] is True and answer["results"][0]["match"] in ("near", "verified")
    assert key_of(answer["results"][0]["path"]) == key_of(stored["s3_url"])
    rewritten = catalogue_record("alya", storage.sha256_hex(original))["verification_features"]["B"]
    assert ImageFeatures.from_bytes(rewritten).descriptors.shape[1] == 32
    # And damaged features are found again the same way
    dynamodb.update_item(
        TableName=table,
        Key=key,
        UpdateExpression="SET verification_features = :damaged",
        ExpressionAttributeValues={":damaged": {"B": b"PK\x03\x04 damaged"}},
    )
    assert post(by_kind["rotate"], website="alya").json()["duplicate_found"] is True
    assert catalogue_record("alya", storage.sha256_hex(original))["verification_features"]["B"] == rewritten


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
    local_stack.router.drain()
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
