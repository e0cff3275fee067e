"""A third storefront added through configuration alone: a stage context file declaring alya, blysk
and corvo, run by `python -m local --context-file` (the declaration CDK deploys from), with API keys
as deployed (one client per storefront). Nothing else changes, and corvo's catalogue works as the
other two do: stored, found again as a duplicate within its storefront only, indexed from its
bucket's S3 events, and closed to the other storefronts' clients. A separate stack (its own
process): the session's runs the two storefronts the permissions test checks against."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import requests

from tests.child_output import finish, read_on
from tests.images import fresh_image
from tests.local_process import ROOT, local_command

STOREFRONTS = [{"name": "alya"}, {"name": "blysk"}, {"name": "corvo"}]


@dataclass
class ThreeStorefronts:
    url: str
    moto_url: str
    keys: dict[str, str]  # storefront -> the key of a client holding it only

    def call(self, method: str, path: str, storefront: str | None, **kwargs: Any) -> requests.Response:
        headers = {"x-api-key": self.keys[storefront]} if storefront else {}
        return requests.request(method, f"{self.url}{path}", headers=headers, timeout=60, **kwargs)

    def listed(self, storefront: str) -> list[str]:
        """The URLs of every image GET /images lists for the storefront, page by page."""
        urls, cursor = [], None
        while True:
            params = {"website": storefront, **({"cursor": cursor} if cursor else {})}
            page = self.call("GET", "/images", storefront, params=params)
            assert page.status_code == 200, page.text
            urls += [image["s3_url"] for image in page.json()["images"]]
            cursor = page.json()["next_cursor"]
            if not cursor:
                return urls

    def check(self, storefront: str, photo: bytes, website: str | None = None) -> requests.Response:
        form = {"website": website or storefront}
        return self.call("POST", "/image_similarity_search", storefront, files={"file": ("p.jpg", photo)}, data=form)


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreeStorefronts]:
    # Given a stage context file declaring a third storefront, and the local stack run from it
    folder = tmp_path_factory.mktemp("three-storefronts")
    stage = folder / "stage.json"
    stage.write_text(json.dumps({"stage": "three", "storefronts": STOREFRONTS}))
    command = local_command(folder / "state", "--auth", "--snapshot-interval", "0", "--context-file", str(stage))
    env = {k: v for k, v in os.environ.items() if k != "STOREFRONTS" and not k.startswith("AWS_")}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    printed = []
    for line in process.stdout:
        printed.append(line)
        if line.startswith("READY "):
            break
    text = "".join(printed)
    reader = read_on(process, printed)  # on: a pipe left unread fills, and the stack blocks writing to it
    try:
        assert "READY " in text, text
        keys = dict(re.findall(r"(\w+): (lvk_\S+?)(?:,|$)", text.split("API keys", 1)[1].splitlines()[0].strip()))
        moto_url = re.search(r"AWS \(moto\)\s+(\S+)", text)
        assert moto_url and set(keys) == {"alya", "blysk", "corvo"}, text
        yield ThreeStorefronts(text.split("READY ", 1)[1].split()[0], moto_url.group(1), keys)
    finally:
        process.terminate()
        finish(process, reader, 300)  # a hang guard, generous for a loaded machine


def test_a_third_storefront_stores_and_finds_duplicates_within_itself(three: ThreeStorefronts) -> None:
    photo = fresh_image(3101)
    # When corvo's client stores a photo in corvo
    stored = three.check("corvo", photo)
    # Then it is new, and kept in corvo's own bucket (named by the declaration: corvoimg locally)
    assert stored.status_code == 200, stored.text
    assert stored.json()["duplicate_found"] is False and "/corvoimg/" in stored.json()["s3_url"], stored.text
    # And the same photo sent again to corvo is found as a duplicate of it
    again = three.check("corvo", photo)
    assert again.status_code == 200 and again.json()["duplicate_found"] is True, again.text
    assert all("/corvoimg/" in hit["path"] for hit in again.json()["results"]), again.text
    # While alya, searching its own storefront, does not see corvo's photo: it stores its own copy
    alya = three.check("alya", photo)
    assert alya.status_code == 200 and alya.json()["duplicate_found"] is False, alya.text
    assert "/alyaimg/" in alya.json()["s3_url"]
    # And corvo's catalogue lists its photo, in its bucket, and alya's its own copy
    assert [url.split("?")[0] for url in three.listed("corvo")] == [stored.json()["s3_url"].split("?")[0]]
    assert all("/alyaimg/" in url for url in three.listed("alya"))


def test_a_photo_put_in_the_third_storefronts_bucket_is_indexed(three: ThreeStorefronts) -> None:
    # Given a photo put straight into corvo's bucket (a console upload), which notifies the indexer
    photo = fresh_image(3102)
    s3 = boto3.client(
        "s3",
        endpoint_url=three.moto_url,
        aws_access_key_id="local",
        aws_secret_access_key="local",
        region_name="us-east-1",
    )
    s3.put_object(Bucket="corvoimg", Key="console/ring.jpg", Body=photo, ContentType="image/jpeg")
    # When the indexer has run (asynchronously: its record appears in corvo's catalogue)
    deadline = time.monotonic() + 300  # a hang guard, generous for a loaded machine
    while time.monotonic() < deadline:
        if any("console/ring.jpg" in url for url in three.listed("corvo")):
            break
        time.sleep(0.5)
    # Then the same photo sent through the API to corvo is a duplicate of the one in the bucket
    answer = three.check("corvo", photo)
    assert answer.status_code == 200 and answer.json()["duplicate_found"] is True, answer.text
    assert any("console/ring.jpg" in json.dumps(hit) for hit in answer.json()["results"]), answer.text


def test_the_third_storefront_is_closed_to_the_other_clients_and_open_to_its_own(three: ThreeStorefronts) -> None:
    photo = fresh_image(3103)
    # When alya's client writes to corvo, or corvo's to alya or blysk
    refused = [
        three.check("alya", photo, website="corvo"),
        three.check("corvo", photo, website="alya"),
        three.call("POST", "/uploads", "blysk", json={"website": "corvo", "content_type": "image/png"}),
        three.call("GET", "/images", "corvo", params={"website": "blysk"}),
    ]
    # Then each is a 403 storefront_forbidden naming the storefront
    for answer in refused:
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"]["code"] == "storefront_forbidden", answer.text
    # While corvo's client, naming no website, acts on corvo (its only storefront), not on the default
    upload = three.call("POST", "/uploads", "corvo", json={"content_type": "image/png"})
    assert upload.status_code == 200 and upload.json()["url"].endswith("/corvoimg"), upload.text
    # And a storefront nobody declared is still the 400 invalid_request every unknown value is
    unknown = three.check("corvo", photo, website="dore")
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "invalid_request", unknown.text
    assert unknown.json()["error"]["details"]["fields"][0]["field"] == "website"
    # And the OpenAPI document lists the three as the website's values
    document = three.call("GET", "/openapi.json", "corvo").json()
    assert "'alya', 'blysk', 'corvo'" in unknown.json()["error"]["details"]["fields"][0]["problem"]
    upload_schema = document["components"]["schemas"]["UploadRequest"]["properties"]["website"]
    assert upload_schema["enum"] == ["alya", "blysk", "corvo"]
