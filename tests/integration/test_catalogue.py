"""The catalogue's lifecycle through the local gateway, for both storefronts: GET /images lists a
storefront's stored photos (paged, a cursor tied to the storefront), DELETE /images/{id} removes the
object, vector and record (its captions with it), a second delete answers 404, a delete in progress
409, a photo indexed where it was put 409 (deleted in S3 instead: the ObjectRemoved trigger removes
its vector and record), and a deleted photo uploads as new. The docs' example runs as written. What
each listing reads, its pages through deletes, and records stored before its index:
test_catalogue_listing.py."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from doubles.loopback import LoopbackServer
from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.jewelry import catalogue as catalogue_module
from listing_vision.jewelry.claims import ContentClaims, new_owner
from listing_vision.jewelry.stores import CatalogueStores
from listing_vision.jewelry.vector_index import vector_id
from local.stack import LocalStack
from tests.images import fresh_image
from tests.integration.dedupe.conftest import catalogue_record, milvus_rows
from tests.stores import changed, fingerprint, settle

WEBSITES = ["alya", "blysk"]


def image_id(photo: bytes) -> str:
    return hashlib.sha256(photo).hexdigest()


def store(local_stack: LocalStack, photo: bytes, website: str) -> requests.Response:
    files = {"file": ("ring.jpg", photo, "image/jpeg")}
    answer = requests.post(
        f"{local_stack.url}/image_similarity_search", files=files, data={"website": website}, timeout=60
    )
    assert answer.status_code == 200, answer.text
    settle(local_stack)  # its ObjectCreated event has been handled (the photo is already indexed)
    return answer


def delete(local_stack: LocalStack, photo_id: str, website: str) -> requests.Response:
    return requests.delete(f"{local_stack.url}/images/{photo_id}", params={"website": website}, timeout=30)


def listing(local_stack: LocalStack, website: str, **params: Any) -> requests.Response:
    return requests.get(f"{local_stack.url}/images", params={"website": website, **params}, timeout=30)


def listed(local_stack: LocalStack, website: str) -> dict[str, dict[str, Any]]:
    """Every image of the storefront's listing by id, page after page."""
    found: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    while True:
        page = listing(local_stack, website, limit=catalogue_module.MAX_LIMIT, **({"cursor": cursor} if cursor else {}))
        assert page.status_code == 200, page.text
        for image in page.json()["images"]:
            assert image["image_id"] not in found  # each image once
            found[image["image_id"]] = image
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return found


def error(answer: requests.Response) -> tuple[int, str]:
    return answer.status_code, answer.json()["error"]["code"]


@pytest.mark.parametrize("website", WEBSITES)
def test_a_deleted_photo_is_gone_with_its_captions_and_uploads_as_new(
    local_stack: LocalStack, openai_chat: LoopbackServer, website: str
) -> None:
    # Given a photo stored and captioned through /generate_caption (its caption kept on its record)
    photo = fresh_image(52_000 + len(website))
    files = {"file": ("hoop.jpg", photo, "image/jpeg")}
    captioned = requests.post(
        f"{local_stack.url}/generate_caption", files=files, data={"type": "earring", "website": website}, timeout=60
    )
    assert captioned.status_code == 200, captioned.text
    settle(local_stack)
    photo_id = image_id(photo)
    assert catalogue_record(website, photo_id)["caption_count"] == {"N": "1"}
    # Then the storefront's listing shows it, with its name and a link that works
    shown = listed(local_stack, website)[photo_id]
    assert shown["image_name"] == "hoop.jpg" and isinstance(shown["created_at"], int)
    assert requests.get(shown["s3_url"], timeout=10).content == photo
    s3_uri = catalogue_record(website, photo_id)["path"]["S"]
    assert s3_uri.startswith(f"s3://{get_settings().bucket_for(website)}/catalogue/")  # type: ignore[arg-type]
    # When it is deleted
    deleted = delete(local_stack, photo_id, website)
    # Then it answers 204 without a body, and the object, the vector and the record (captions too) are gone
    assert deleted.status_code == 204 and deleted.content == b"", deleted.text
    assert catalogue_record(website, photo_id) == {}
    assert milvus_rows(photo_id, website) == 0 and not CatalogueStores.from_settings().vectors.has(
        vector_id(website, photo_id)
    )
    bucket, key = s3_uri.removeprefix("s3://").split("/", 1)
    assert aws.client("s3").list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount") == 0
    assert error(requests.get(f"{local_stack.url}/images/{photo_id}/captions", params={"website": website})) == (
        404,
        "image_not_found",
    )
    assert photo_id not in listed(local_stack, website)
    settle(local_stack)  # its ObjectRemoved event arrives: nothing is left for it to remove
    # When it is deleted again, then it is not in the catalogue: 404, writing nothing
    before = fingerprint()
    assert error(delete(local_stack, photo_id, website)) == (404, "image_not_found")
    assert changed(before, fingerprint()) == []
    # When the same bytes are uploaded again, then they are a new photo, not a duplicate of a deleted one
    again = store(local_stack, photo, website).json()
    assert again["duplicate_found"] is False and again["s3_url"], again
    assert catalogue_record(website, photo_id)["status"] == {"S": "stored"} and milvus_rows(photo_id, website) == 1
    assert photo_id in listed(local_stack, website)


@pytest.mark.parametrize("website", WEBSITES)
def test_a_delete_in_progress_answers_409_and_a_dead_one_is_taken_over(local_stack: LocalStack, website: str) -> None:
    # Given a stored photo that another request is deleting (its mark held under a lease)
    photo = fresh_image(52_100 + len(website))
    store(local_stack, photo, website)
    photo_id = image_id(photo)
    claims = ContentClaims(lease_s=300)
    assert claims.begin_delete(website, photo_id, new_owner()) is not None
    before = fingerprint()
    # When it is deleted meanwhile, then the answer is 409 image_delete_in_progress, writing nothing
    assert error(delete(local_stack, photo_id, website)) == (409, "image_delete_in_progress")
    assert changed(before, fingerprint()) == []
    # And it is no longer listed, nor a duplicate of anything, while it is being deleted
    assert photo_id not in listed(local_stack, website)
    # When the other request died and its lease ran out (moved into the past here rather than waited
    # for: a short lease could run out under load before the first delete above) and the client deletes again
    aws.client("dynamodb").update_item(
        TableName=claims.table,
        Key=claims._key(website, photo_id),
        UpdateExpression="SET lease_until = :past",
        ExpressionAttributeValues={":past": {"N": str(round(time.time() - 1, 3))}},
    )
    # Then the delete takes the mark over and finishes it
    assert delete(local_stack, photo_id, website).status_code == 204
    assert catalogue_record(website, photo_id) == {} and milvus_rows(photo_id, website) == 0


@pytest.mark.parametrize("website", WEBSITES)
def test_a_photo_indexed_where_it_was_put_is_deleted_in_s3_and_the_trigger_removes_the_rest(
    local_stack: LocalStack, website: str
) -> None:
    # Given a photo put straight into the bucket (a console upload: indexed where it lies, under a key
    # with quotes and a backslash, as a console allows)
    photo, s3 = fresh_image(52_200 + len(website)), aws.client("s3")
    bucket, key = get_settings().bucket_for(website), f'console/{uuid.uuid4().hex} "ring\'s" \\1.jpg'  # type: ignore[arg-type]
    s3.put_object(Bucket=bucket, Key=key, Body=photo, ContentType="image/jpeg")
    settle(local_stack)
    photo_id = image_id(photo)
    assert catalogue_record(website, photo_id)["path"] == {"S": f"s3://{bucket}/{key}"}
    assert photo_id in listed(local_stack, website)
    # When it is deleted through the API, then it is refused (409 image_not_deletable), writing nothing
    before = fingerprint()
    refused = delete(local_stack, photo_id, website)
    assert error(refused) == (409, "image_not_deletable")
    assert refused.json()["error"]["details"]["path"] == f"s3://{bucket}/{key}"
    assert changed(before, fingerprint()) == []
    # When it is deleted in S3 (S3 notifies the indexer: ObjectRemoved)
    s3.delete_object(Bucket=bucket, Key=key)
    settle(local_stack)
    # Then its vector and record are gone, and the same photo uploads as new
    assert catalogue_record(website, photo_id) == {} and milvus_rows(photo_id, website) == 0
    assert photo_id not in listed(local_stack, website)
    assert store(local_stack, photo, website).json()["duplicate_found"] is False


def test_a_cursor_is_tied_to_its_storefront(local_stack: LocalStack) -> None:
    # Given two photos of alya, and the first page of alya's listing, one image long
    for seed in (52_301, 52_302):
        store(local_stack, fresh_image(seed), "alya")
    first = listing(local_stack, "alya", limit=1)
    assert first.status_code == 200 and len(first.json()["images"]) == 1, first.text
    cursor = first.json()["next_cursor"]
    assert cursor is not None
    before = fingerprint()
    # When its cursor is used for blysk's listing, or altered
    other = listing(local_stack, "blysk", cursor=cursor)
    altered = listing(local_stack, "alya", cursor=cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB"))
    # Then both are refused (400 invalid_cursor), and nothing is written
    assert error(other) == (400, "invalid_cursor") and error(altered) == (400, "invalid_cursor")
    assert changed(before, fingerprint()) == []
    # While alya's listing goes on from it
    assert listing(local_stack, "alya", cursor=cursor).status_code == 200


def test_a_misspelt_website_is_refused_not_read_as_the_default_storefront(local_stack: LocalStack) -> None:
    # Given the same photo stored in both storefronts (its id names both copies)
    photo = fresh_image(52_700)
    for website in WEBSITES:
        store(local_stack, photo, website)
    photo_id, url = image_id(photo), local_stack.url
    before = fingerprint()
    # When a client holding both storefronts (the local stack's keyless one: alya by default) means blysk's
    # copy but misspells `website`, deleting and listing, or gives a parameter twice
    answers = [
        requests.delete(f"{url}/images/{photo_id}", params={"Website": "blysk"}, timeout=30),
        requests.delete(f"{url}/images/{photo_id}", params={"site": "blysk"}, timeout=30),
        requests.get(f"{url}/images", params={"Website": "blysk"}, timeout=30),
        requests.delete(f"{url}/images/{photo_id}?website=blysk&website=alya", timeout=30),
    ]
    # Then each is refused, naming what the route takes; nothing is written: alya's copy is not deleted
    assert [error(answer) for answer in answers] == [(400, "unknown_parameter")] * 3 + [(400, "invalid_request")]
    assert answers[0].json()["error"]["details"]["known"] == ["website"]
    settle(local_stack)
    assert changed(before, fingerprint()) == []
    # While spelt right, each storefront's copy is deleted on its own
    assert [delete(local_stack, photo_id, website).status_code for website in WEBSITES] == [204, 204]


def docs_example(name: str) -> str:
    """The bash block after `<!-- example: NAME -->` in docs/jewelry-api.md."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "jewelry-api.md").read_text()
    found = re.search(rf"<!-- example: {name} -->\n```bash\n(.*?)```", text, re.DOTALL)
    assert found, f"no docs/jewelry-api.md example {name!r}"
    return found.group(1)


def test_the_docs_example_lists_and_deletes_as_it_says(local_stack: LocalStack, tmp_path: Path) -> None:
    # Given a photo of alya stored as ring.jpg, beside two more (so the listing has a second page)
    photo = fresh_image(52_500)
    for data in (photo, fresh_image(52_501), fresh_image(52_502)):
        store(local_stack, data, "alya")
    (tmp_path / "ring.jpg").write_bytes(photo)
    # When the docs' example runs, with bash as a shell stops at the first failure
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", docs_example("catalogue")],
        cwd=tmp_path,
        env={**os.environ, "API": local_stack.url, "PHOTO": "ring.jpg"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Then each line says what its comment says: two pages of ids, 204, then image_not_found
    assert run.returncode == 0, run.stderr
    first, second, deleted, again = run.stdout.splitlines()
    assert len(json.loads(first)) <= 2 and len(json.loads(second)) <= 2
    assert (deleted, again) == ("204", "image_not_found")
    assert catalogue_record("alya", image_id(photo)) == {}


def test_a_presigned_uploads_status_says_deleted_once_its_photo_is_deleted(local_stack: LocalStack) -> None:
    # Given a photo posted through a presigned form and indexed
    photo = fresh_image(52_600)
    grant = requests.post(
        f"{local_stack.url}/uploads", json={"website": "blysk", "content_type": "image/jpeg"}, timeout=30
    ).json()
    posted = requests.post(
        grant["url"], data=grant["fields"], files={"file": ("x.jpg", photo, "image/jpeg")}, timeout=30
    )
    assert posted.status_code in (200, 204), posted.text
    settle(local_stack)
    status = f"{local_stack.url}/uploads/{grant['upload_id']}"
    assert requests.get(status, params={"website": "blysk"}, timeout=30).json()["status"] == "indexed"
    # When its photo is deleted from the catalogue
    assert delete(local_stack, image_id(photo), "blysk").status_code == 204
    settle(local_stack)
    # Then the upload's status says so, rather than linking to a photo that is gone
    assert requests.get(status, params={"website": "blysk"}, timeout=30).json() == {
        "upload_id": grant["upload_id"],
        "status": "deleted",
    }
