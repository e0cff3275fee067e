"""100 uploads at concurrency 20, exact re-sends and half-size copies arriving in the same burst,
through both ways in (the synchronous API and presigned uploads with the S3 trigger), then S3,
the catalogue registry and Milvus reconciled: nothing stored twice, nothing lost, no error. Five
bursts of 20 requests: the races are within a burst, so more bursts (200 requests, as this test sent
before) took twice the time and raced nothing new."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.jewelry import storage, vector_index
from local.stack import LocalStack
from tests.images import fresh_image, resized_copy
from tests.stores import settle

pytestmark = pytest.mark.slow

FAMILIES = 25  # each: an original, its half-size copy, and an exact re-send of each = 100 requests
CONCURRENCY = 20
SEED = 13_000_000
HANG_GUARD_S = 120  # per request; only so a hang fails instead of blocking the suite


@dataclass
class Family:
    index: int
    original: bytes
    copy: bytes
    via: tuple[str, str]  # how the original and the copy are sent: "api" or "presigned"
    answers: list[dict[str, Any]] = field(default_factory=list)

    @property
    def shas(self) -> set[str]:
        return {storage.sha256_hex(self.original), storage.sha256_hex(self.copy)}


def make_families() -> list[Family]:
    families = []
    for index in range(FAMILIES):
        original = fresh_image(SEED + index, size=(400, 300))
        via = ("api", "api") if index < 15 else ("presigned", "presigned") if index < 20 else ("api", "presigned")
        families.append(Family(index, original, resized_copy(original, 0.5, quality=85), via))
    return families


def send(url: str, family: Family, data: bytes, via: str, name: str) -> dict[str, Any]:
    """One request; returns what the client learns (or the error)."""
    if via == "api":
        answer = requests.post(
            f"{url}/image_similarity_search",
            files={"file": (name, data, "image/jpeg")},
            data={"website": "alya"},
            timeout=HANG_GUARD_S,
        )
        return {"via": via, "status": answer.status_code, "body": answer.json(), "sha": storage.sha256_hex(data)}
    grant = requests.post(f"{url}/uploads", json={"website": "alya", "filename": name}, timeout=HANG_GUARD_S)
    if grant.status_code != 200:
        return {"via": via, "status": grant.status_code, "body": grant.json()}
    fields = grant.json()
    posted = requests.post(
        fields["url"], data=fields["fields"], files={"file": (name, data, "image/jpeg")}, timeout=HANG_GUARD_S
    )
    return {"via": via, "status": posted.status_code, "upload_id": fields["upload_id"], "sha": storage.sha256_hex(data)}


def test_a_hundred_uploads_at_concurrency_twenty_store_each_image_once(local_stack: LocalStack) -> None:
    # Given 25 unrelated photos, each with a half-size copy and an exact re-send of both, shuffled so
    # each family's four requests arrive in the same burst (15 families through the API, 5 through
    # presigned uploads, 5 with the original through the API and the copy through an upload)
    families = make_families()
    work = [
        (family, data, via, f"{family.index}-{kind}.jpg")
        for family in families
        for data, via, kind in (
            (family.original, family.via[0], "original"),
            (family.copy, family.via[1], "copy"),
            (family.original, family.via[0], "original-again"),
            (family.copy, family.via[1], "copy-again"),
        )
    ]
    random.Random(13).shuffle(work)
    work.sort(key=lambda item: item[0].index // 5)  # five families (20 requests) per burst, shuffled within it
    lock = threading.Lock()

    def run(item: tuple[Family, bytes, str, str]) -> None:
        family, data, via, name = item
        answer = send(local_stack.url, family, data, via, name)
        with lock:
            family.answers.append(answer)

    # When they are sent 20 at a time
    started = time.monotonic()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(run, work))
    settle(local_stack)  # the S3 trigger's invocations finish
    elapsed = time.monotonic() - started

    # Then no request failed
    answers = [answer for family in families for answer in family.answers]
    assert len(answers) == 4 * FAMILIES
    errors = [a for a in answers if a["status"] not in (200, 204)]
    assert errors == [], errors[:5]

    # And S3, the registry and Milvus agree: each family is stored exactly once, and every other
    # request was told (or tagged) duplicate of that one image
    settings = get_settings()
    s3, dynamodb = aws.client("s3"), aws.client("dynamodb")
    index = vector_index.VectorIndex(settings.milvus_collection)
    stored_total = duplicates = rolled_back = 0
    for family in families:
        records = {
            sha: dynamodb.get_item(
                TableName=settings.catalogue_table, Key={"content_id": {"S": f"alya#{sha}"}}, ConsistentRead=True
            ).get("Item")
            for sha in family.shas
        }
        stored = {sha: item["path"]["S"] for sha, item in records.items() if item and item["status"]["S"] == "stored"}
        rolled_back += sum(1 for item in records.values() if item and item["status"]["S"] == "yielded")
        assert len(stored) == 1, (family.index, family.via, records, family.answers)
        ((kept_sha, kept_path),) = stored.items()
        # one vector for the family, the kept image's
        rows = {sha: index.find_exact(sha, "alya") for sha in family.shas}
        assert [sha for sha, found in rows.items() for _ in found] == [kept_sha], (family.index, rows)
        assert rows[kept_sha][0]["path"] == kept_path
        # one object in the catalogue prefix at most, and only the kept one
        for sha in family.shas:
            listed = s3.list_objects_v2(Bucket=settings.bucket_for("alya"), Prefix=f"catalogue/{sha[:2]}/{sha}")
            keys = [f"s3://{settings.bucket_for('alya')}/{item['Key']}" for item in listed.get("Contents", [])]
            in_catalogue = sha == kept_sha and "/catalogue/" in kept_path  # kept through the API
            assert keys == ([kept_path] if in_catalogue else []), (family.index, "catalogue objects", keys)
        # every answer names the kept image
        kept_url_key = kept_path.split("/", 3)[3]
        for answer in family.answers:
            if answer["via"] == "api":
                body = answer["body"]
                if body["duplicate_found"]:
                    duplicates += 1
                    assert kept_url_key in body["results"][0]["path"], (
                        family.index,
                        kept_path,
                        records,
                        family.answers,
                    )
                else:
                    stored_total += 1
                    assert kept_url_key in body["s3_url"], (family.index, body, kept_path)
            else:
                upload = requests.get(
                    f"{local_stack.url}/uploads/{answer['upload_id']}", params={"website": "alya"}, timeout=30
                ).json()
                if upload["status"] == "indexed":
                    stored_total += 1
                    assert kept_url_key in upload["s3_url"], (family.index, upload, kept_path)
                else:
                    duplicates += 1
                    assert upload["status"] == "duplicate", (family.index, upload)
                    assert kept_url_key in upload["duplicate_of"], (family.index, upload, kept_path)
    assert stored_total == FAMILIES and duplicates == 3 * FAMILIES
    print(
        f"\nload: {len(answers)} requests at concurrency {CONCURRENCY}: {stored_total} stored, "
        f"{duplicates} duplicates ({rolled_back} of them stored at the same moment and rolled back), "
        f"{len(errors)} errors, {elapsed:.1f} s"
    )
