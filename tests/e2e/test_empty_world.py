"""The empty world: a stack whose provisioning never ran (`python -m local --skip-provisioning`: what
CloudFormation creates, and no Milvus collection, no listings index) answers every route that needs
those stores with a clear 503 `not_provisioned`, promptly, not a 500 or a hang; the routes that need
none of them (generation's, over buckets and tables CloudFormation creates) answer as usual. Once
the provisioning function runs, invoked as the deploy's trigger invokes it, the same calls work."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.test_local_stack_process import aws_client
from tests.local_process import ROOT, local_stack_process

pytestmark = pytest.mark.e2e
PHOTO = ROOT / "tests" / "data" / "photos" / "image3.jpg"
TIMEOUT_S = 60  # a hang guard only


def calls(api: str) -> dict[str, requests.Response]:
    """One request to each route that needs a provisioned store, as a client makes it."""
    upload_id = uuid.uuid4().hex
    return {
        "POST /image_similarity_search": requests.post(
            f"{api}/image_similarity_search",
            files={"file": PHOTO.open("rb")},
            data={"website": "alya"},
            timeout=TIMEOUT_S,
        ),
        "POST /generate_caption": requests.post(
            f"{api}/generate_caption", files={"file": PHOTO.open("rb")}, data={"type": "ring"}, timeout=TIMEOUT_S
        ),
        "POST /uploads": requests.post(f"{api}/uploads", json={"website": "blysk"}, timeout=TIMEOUT_S),
        "GET /uploads/{upload_id}": requests.get(f"{api}/uploads/{upload_id}", timeout=TIMEOUT_S),
    }


def error_code(response: requests.Response) -> Any:
    return response.json().get("error", {}).get("code")


def test_an_unprovisioned_stack_answers_not_provisioned_until_provisioning_runs(tmp_path: Path) -> None:
    # Given the local stack started with only what CloudFormation creates
    with local_stack_process(tmp_path / "state", "--skip-provisioning") as started:
        urls = started.urls
        api = urls["api"]
        assert "skipped" in urls["provisioning"]
        # When a client calls each route that needs the Milvus collection
        before = calls(api)
        # Then each answers 503 not_provisioned, naming the missing store
        assert {route: (r.status_code, error_code(r)) for route, r in before.items()} == {
            route: (503, "not_provisioned") for route in before
        }
        details = before["POST /image_similarity_search"].json()["error"]["details"]
        assert details == {"store": "Milvus collection", "name": "image_embeddings_ip"}
        # And generation, which needs none of them, answers as usual (an unknown job is a 404)
        job = requests.get(f"{api}/jobs/{uuid.uuid4().hex}", timeout=TIMEOUT_S)
        assert (job.status_code, error_code(job)) == (404, "job_not_found")
        # And the health probe says which components are not there
        health = requests.get(f"{api}/health", timeout=TIMEOUT_S)
        assert health.status_code == 503
        assert {name for name, state in health.json()["components"].items() if state != "ok"} == {
            "opensearch",
            "milvus",
        }

        # When the provisioning function runs, invoked as the deploy's trigger invokes it
        answer = aws_client("lambda", urls["moto"]).invoke(FunctionName="provision", Payload=b"{}")
        assert "FunctionError" not in answer
        report = json.loads(answer["Payload"].read())
        # Then it created both stores (and found no catalogue record to put in GET /images' index)
        assert report == {
            "provisioned": {
                "milvus:collection:image_embeddings_ip": "created",
                "opensearch:index:listings-v2": "created",
                "dynamodb:listed:image-catalogue": "unchanged",
            }
        }
        # And the same calls work
        after = calls(api)
        assert after["POST /image_similarity_search"].status_code == 200, after["POST /image_similarity_search"].text
        assert after["POST /generate_caption"].status_code == 200, after["POST /generate_caption"].text
        assert after["POST /uploads"].status_code == 200, after["POST /uploads"].text
        missing = after["GET /uploads/{upload_id}"]
        assert (missing.status_code, error_code(missing)) == (404, "upload_not_found")
        assert requests.get(f"{api}/health", timeout=TIMEOUT_S).status_code == 200
        # And a second run changes nothing
        again = json.loads(aws_client("lambda", urls["moto"]).invoke(FunctionName="provision")["Payload"].read())
        assert set(again["provisioned"].values()) == {"unchanged"}
