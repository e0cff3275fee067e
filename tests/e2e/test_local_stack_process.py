"""`python -m local` as a user runs it: a separate process, real HTTP, Ctrl-C, a second stack refused
while the first runs on its state folder, and a second start on that folder that finds the data of the
first."""

from __future__ import annotations

import fcntl
import hashlib
import json
import socket
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from opensearchpy import OpenSearch

from local import snapshot
from tests.local_process import ROOT, local_command, local_stack_process, refused_start

pytestmark = pytest.mark.e2e


def s3_client(moto_url: str):
    return boto3.client(
        "s3", endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local"
    )


DEMO_LISTINGS = 20  # a few: what is checked is that they and their cached analyses come back, not how many


def test_run_answer_stop_and_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    photo = ROOT / "tests" / "data" / "photos" / "image2.jpg"
    # Given the local stack started as `make run` starts it
    with local_stack_process(state, demo_listings=DEMO_LISTINGS) as started:
        urls = started.urls
        # When a second one is started on the same state folder, then it ends at once, naming the folder,
        # the first's process and what to do, without a traceback
        said = refused_start(local_command(state))
        assert f"The state folder {state.resolve()} is in use by another local stack" in said
        assert f"(process {started.process.pid})" in said and "--state-dir" in said
        # And the first's health route answers
        health = requests.get(f"{urls['api']}/health", timeout=10)
        assert health.status_code == 200 and health.json()["status"] == "ok"
        # And a real request through the gateway reaches the real handler (offline captions: no keys here)
        answer = requests.post(
            f"{urls['api']}/generate_caption", files={"file": photo.open("rb")}, data={"type": "bracelet"}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["provider"] == "offline" and answer.json()["display_name"] == photo.name

        bad = requests.post(
            f"{urls['api']}/generate_caption", files={"file": photo.open("rb")}, data={"type": "tiara"}, timeout=30
        )
        assert bad.status_code == 400 and bad.json()["error"]["details"]["fields"][0]["field"] == "type"
        # When data is written to S3 and OpenSearch
        s3_client(urls["moto"]).put_object(
            Bucket="blyskimg", Key="catalogue/a.jpg", Body=photo.read_bytes(), Metadata={"original-name": "ring.jpg"}
        )
        OpenSearch(hosts=[urls["opensearch"]]).index(
            index="listings-v2", id="12345", body={"zpid": "12345", "visual_features_text": "Ranch."}, refresh=True
        )
    # Then a second start on the same state folder (free again once the first stopped) finds it all
    with local_stack_process(state, demo_listings=DEMO_LISTINGS) as started:
        urls = started.urls
        obj = s3_client(urls["moto"]).get_object(Bucket="blyskimg", Key="catalogue/a.jpg")
        assert obj["Body"].read() == photo.read_bytes()
        assert obj["Metadata"] == {"original-name": "ring.jpg"}
        doc = OpenSearch(hosts=[urls["opensearch"]]).get(index="listings-v2", id="12345")
        assert doc["_source"]["visual_features_text"] == "Ranch."
        assert requests.get(f"{urls['api']}/health", timeout=10).json()["components"]["milvus"] == "ok"
        # and the photo captioned before the restart is known: its vector and its record were kept
        again = requests.post(f"{urls['api']}/image_similarity_search", files={"file": photo.open("rb")}, timeout=30)
        assert again.json()["duplicate_found"] is True and again.json()["results"][0]["distance"] == 0.0
        # including the demo listings and their cached analyses, binary embeddings intact
        assert OpenSearch(hosts=[urls["opensearch"]]).count(index="listings-v2")["count"] == DEMO_LISTINGS + 1
        dynamodb = boto3.client(
            "dynamodb",
            endpoint_url=urls["moto"],
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        item = dynamodb.scan(TableName="hearth-vision-cache", Limit=1)["Items"][0]
        assert len(item["embedding"]["B"]) == 32 * 4 and json.loads(item["analysis"]["S"])["image_type"]
    # And once it has stopped, the folder is free again (its lock went with it)
    with (state / "lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)


def aws_client(service: str, moto_url: str):
    return boto3.client(
        service,
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def stores(moto_url: str) -> dict[str, dict[str, Any]]:
    """Every object (its bytes' hash, content type, metadata and tags) and every item, as the snapshot
    writes them (so this compares with a snapshot's files too)."""
    s3, dynamodb = aws_client("s3", moto_url), aws_client("dynamodb", moto_url)
    objects: dict[str, Any] = {}
    for bucket in (b["Name"] for b in s3.list_buckets()["Buckets"]):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                obj = s3.get_object(Bucket=bucket, Key=item["Key"])
                tags = s3.get_object_tagging(Bucket=bucket, Key=item["Key"])["TagSet"]
                objects[f"{bucket}/{item['Key']}"] = {
                    "sha256": hashlib.sha256(obj["Body"].read()).hexdigest(),
                    "content_type": obj["ContentType"],
                    "metadata": obj["Metadata"],
                    "tags": {tag["Key"]: tag["Value"] for tag in tags},
                }
    items: dict[str, Any] = {}
    for table in dynamodb.list_tables()["TableNames"]:
        rows = [
            json.dumps(snapshot._binary_as_text(item, encode=True), sort_keys=True)
            for page in dynamodb.get_paginator("scan").paginate(TableName=table)
            for item in page.get("Items", [])
        ]
        items[table] = sorted(rows)
    return {"objects": objects, "items": items}


def saved(state: Path) -> dict[str, dict[str, Any]]:
    """What the last stop wrote to the state folder, in the form of `stores`."""
    root = state / "snapshot"
    objects = {
        f"{path.stem}/{obj['key']}": {
            "sha256": hashlib.sha256((state / "blobs" / obj["blob"]).read_bytes()).hexdigest(),  # once per content
            "content_type": obj["content_type"],
            "metadata": obj["metadata"],
            "tags": obj["tags"],
        }
        for path in sorted((root / "s3").glob("*.jsonl"))
        for obj in map(json.loads, path.read_text().splitlines())
    }
    items = {
        path.stem: sorted(json.dumps(json.loads(line), sort_keys=True) for line in path.read_text().splitlines())
        for path in sorted((root / "dynamodb").glob("*.jsonl"))
    }
    return {"objects": objects, "items": items}


def wait_until_processed(api: str, upload_ids: list[str]) -> dict[str, str]:
    """Each presigned upload's outcome, once the upload trigger has recorded it."""
    outcomes: dict[str, str] = {}
    deadline = time.monotonic() + 300  # a hang guard, generous for a loaded machine
    while len(outcomes) < len(upload_ids) and time.monotonic() < deadline:
        for upload_id in upload_ids:
            status = requests.get(f"{api}/uploads/{upload_id}", timeout=30).json()["status"]
            if status != "pending":
                outcomes[upload_id] = status
        time.sleep(0.2)
    return outcomes


KEPT_DEMO_LISTINGS = 3


def test_a_restart_keeps_every_tag_and_record_and_runs_no_trigger(tmp_path: Path) -> None:
    state = tmp_path / "state"
    photos = sorted((ROOT / "tests" / "data" / "photos").glob("*.jpg"))
    # Given catalogue photos stored through the API, and uploads the trigger indexed, found duplicate
    # and refused, each with its outcome in its tags and records (and a few demo listings: records with
    # binary attributes)
    with local_stack_process(state, demo_listings=KEPT_DEMO_LISTINGS) as started:
        urls = started.urls
        api = urls["api"]
        for photo in photos[:3]:
            stored = requests.post(f"{api}/image_similarity_search", files={"file": photo.open("rb")}, timeout=60)
            assert stored.status_code == 200 and stored.json()["duplicate_found"] is False, stored.text
        uploads = []
        for name, data in (
            ("new.jpg", photos[3].read_bytes()),
            ("again.jpg", photos[0].read_bytes()),
            ("broken.jpg", b"\xff\xd8\xff not really a jpeg"),
        ):
            grant = requests.post(f"{api}/uploads", json={"filename": name}, timeout=30).json()
            posted = requests.post(grant["url"], data=grant["fields"], files={"file": (name, data)}, timeout=60)
            assert posted.status_code in (200, 204), posted.text
            uploads.append(grant["upload_id"])
        outcomes = wait_until_processed(api, uploads)
        assert [outcomes.get(upload_id) for upload_id in uploads] == ["indexed", "duplicate", "invalid"]
        before = stores(urls["moto"])
    # The catalogue holds the three photos stored through the API and the indexed upload's copy under
    # its content key (its inbox object is only an inbox); none carries tags (their records say it all)
    catalogue = [key for key in before["objects"] if key.startswith("alyaimg/catalogue/")]
    new_photo = hashlib.sha256(photos[3].read_bytes()).hexdigest()
    assert len(catalogue) == 4 and all(not before["objects"][key]["tags"] for key in catalogue)
    assert f"alyaimg/catalogue/{new_photo[:2]}/{new_photo}.jpg" in catalogue
    # and the catalogue table holds the four photos' records, and the one upload id the indexed upload
    # spent (the duplicate and the refused upload spend none: their forms could post again)
    (table,) = [name for name in before["items"] if name.endswith("catalogue")]
    records = [json.loads(row)["content_id"]["S"] for row in before["items"][table]]
    assert sum(record.startswith("alya#") for record in records) == 4
    assert [record for record in records if record.startswith("upload#")] == [f"upload#alya#{uploads[0]}"]
    # When the stack is started again on its state folder
    with local_stack_process(state, demo_listings=KEPT_DEMO_LISTINGS) as started:
        urls = started.urls
        # Then every object, with its tags, and every record are as they were
        after = stores(urls["moto"])
        assert after["objects"] == before["objects"]
        assert after["items"] == before["items"]
        # and the uploads' outcomes and the catalogue still answer as before
        assert [requests.get(f"{urls['api']}/uploads/{u}", timeout=30).json()["status"] for u in uploads] == [
            "indexed",
            "duplicate",
            "invalid",
        ]
        again = requests.post(
            f"{urls['api']}/image_similarity_search", files={"file": photos[1].open("rb")}, timeout=60
        )
        assert again.json()["duplicate_found"] is True and again.json()["results"][0]["match"] == "exact"
    # And nothing ran on the restored objects meanwhile: the stop drains every function invocation
    # before it saves, and what it saved is still exactly what was there before the restart
    assert saved(state) == before


@pytest.mark.parametrize("option", ["--moto-port", "--opensearch-port"])
def test_a_port_in_use_is_refused_with_what_to_do(tmp_path: Path, option: str) -> None:
    # Given a port something else listens on (another local stack, say)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        command = local_command(tmp_path)
        command[command.index(option) + 1] = port
        # When the stack is started on it
        said = refused_start(command)
    # Then it ends at once, saying so and what to do, without a traceback
    assert "Is another one running on these ports?" in said
