"""`python -m local` as a user runs it: a separate process, real HTTP, Ctrl-C, and a second start
on the same state folder that finds the data of the first."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import pytest
import requests
from opensearchpy import OpenSearch

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def clean_environment() -> dict[str, str]:
    """This process's environment without what a local stack started in it has set (a person's shell
    has none of it)."""
    prefixes = ("AWS_", "MILVUS_", "OPENSEARCH_", "SAGEMAKER_", "CLIP_", "MOTO_", "POWERTOOLS_")
    return {name: value for name, value in os.environ.items() if not name.startswith(prefixes)}


@contextmanager
def local_stack_process(state_dir: Path) -> Iterator[dict[str, str]]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "local",
            "--port",
            "0",
            "--moto-port",
            "0",
            "--opensearch-port",
            "0",
            "--state-dir",
            str(state_dir),
            "--demo-listings",
            "120",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**clean_environment(), "PYTHONUNBUFFERED": "1", "CAPTION_PROVIDER": "offline"},
    )
    urls: dict[str, str] = {}
    output: list[str] = []
    assert process.stdout is not None
    deadline = time.monotonic() + 300  # a hang guard, generous for a loaded machine
    try:
        while time.monotonic() < deadline and "api" not in urls:
            line = process.stdout.readline()
            if not line:
                break
            output.append(line)
            if line.startswith("  AWS (moto)"):
                urls["moto"] = line.split()[2]
            elif line.startswith("  OpenSearch"):
                urls["opensearch"] = line.split()[1]
            elif line.startswith("READY "):
                urls["api"] = line.split()[1]
        assert "api" in urls, "".join(output)
        yield urls
    finally:
        # Ctrl-C, as a person would stop it
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=300)  # a hang guard, generous for a loaded machine
        output.append(rest)
        assert process.returncode == 0, "".join(output)
        assert "Stopped." in rest


def s3_client(moto_url: str):
    return boto3.client(
        "s3", endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local"
    )


def test_run_answer_stop_and_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    photo = ROOT / "tests" / "data" / "photos" / "image2.jpg"
    # Given the local stack started as `make run` starts it
    with local_stack_process(state) as urls:
        # Then its health route answers
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
    # Then a second start on the same state folder finds it all
    with local_stack_process(state) as urls:
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
        assert OpenSearch(hosts=[urls["opensearch"]]).count(index="listings-v2")["count"] == 120 + 1
        dynamodb = boto3.client(
            "dynamodb",
            endpoint_url=urls["moto"],
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        item = dynamodb.scan(TableName="hearth-vision-cache", Limit=1)["Items"][0]
        assert len(item["embedding"]["B"]) == 32 * 4 and json.loads(item["analysis"]["S"])["image_type"]
