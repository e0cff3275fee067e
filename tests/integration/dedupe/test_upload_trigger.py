"""The S3 upload trigger and presigned uploads: objects put into a storefront bucket are indexed
or recorded where they lie (redelivery changes nothing), large images go through a presigned upload,
and what ends duplicate or invalid is what the lifecycle rules expire."""

from __future__ import annotations

import base64
import json
from typing import Any

import requests

from listing_vision import aws
from listing_vision.jewelry import storage
from local.stack import LocalStack
from tests.images import encode, fresh_image, resized_copy
from tests.integration.dedupe.conftest import Post, milvus_rows, s3_objects, tags
from tests.stores import settle


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


def test_objects_put_into_a_bucket_are_indexed_or_recorded_and_redelivery_changes_nothing(
    local_stack: LocalStack,
) -> None:
    s3 = aws.client("s3")
    original, duplicate, text = fresh_image(6001), resized_copy(fresh_image(6001)), b"not an image"
    # When a console upload drops three objects into the bucket (S3 notifies the dedupe function)
    s3.put_object(Bucket="alyaimg", Key="console/Ring Photo.jpg", Body=original)
    settle(local_stack)
    s3.put_object(Bucket="alyaimg", Key="console/ring-small.jpg", Body=duplicate)
    s3.put_object(Bucket="alyaimg", Key="console/notes.txt", Body=text)
    settle(local_stack)
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
    settle(local_stack)  # the API's own put_object raised an ObjectCreated event
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
    settle(local_stack)
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
    settle(local_stack)
    # Then the bucket's lifecycle rules (provisioned from the same declaration as on AWS) expire the
    # duplicate and the invalid one, and never an indexed upload, which is a catalogue photo
    assert expiring_rules("alyaimg", duplicate) == ["duplicate-uploads"]
    assert expiring_rules("alyaimg", invalid) == ["invalid-uploads"]
    assert expiring_rules("alyaimg", new) == [], tags("alyaimg", new)
    assert tags("alyaimg", new) == {"dedupe-status": "indexed"}
