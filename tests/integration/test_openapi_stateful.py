"""schemathesis' stateful mode over the document's links (functions/openapi.py, LINKS): sequences of
calls where one answer feeds the next (an upload grant, then its status; a generation job, then the
job and a regeneration of it, then that job again), generated from the document and sent through the local gateway.
No answer is a 5xx, every answer is one the document declares, and every 4xx is the platform's
JSON error shape with a stable code. Bounded: a few sequences of a few steps, derandomized.

The run narrows two fields of its copy of the document so that sequences reach past validation:
`s3_urls` names a photo put in a storefront bucket for the test (a random string names none, and
no job would ever start), and `product_type` is one of the products (the document leaves it a
string because aliases and case are accepted). It also leaves out DELETE /images/{image_id}: fed the
ids GET /images answers, it would delete the seed photo the generation chains start from (the
stateless run, test_openapi.py, sends it).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import hypothesis.strategies._internal.random  # noqa: F401 - see below
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from functions.openapi import document
from listing_vision import aws
from listing_vision.config import get_settings
from local.stack import LocalStack
from tests.stores import settle

# The stateful run draws `st.randoms()`, whose module hypothesis imports on first use, parsing two
# dozen snippets with `ast`; on CPython 3.11 building ASTs on two threads at once can fail
# (cpython#106905), and the local stack's threads (moto's templates) build some while they serve.
# Imported above, at collection, before any stack runs.
SEED_KEY = "catalogue/stateful/seed.jpg"
PHOTO = Path(__file__).resolve().parent.parent / "data" / "photos" / "image1.jpg"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def narrowed(doc: dict[str, Any], bucket: str) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    request = doc["components"]["schemas"]["GenerateImagesRequest"]["properties"]
    request["s3_urls"] = {"type": "string", "enum": [f"s3://{bucket}/{SEED_KEY}"]}
    request["product_type"] = {"type": "string", "enum": ["ear", "necklace", "bracelet", "ring"]}
    del doc["paths"]["/images/{image_id}"]["delete"]
    return doc


def test_linked_calls_keep_to_the_document(local_stack: LocalStack) -> None:
    # Given a photo in a storefront bucket, and the document's links
    bucket = get_settings().bucket_for("alya")
    aws.client("s3").put_object(Bucket=bucket, Key=SEED_KEY, Body=PHOTO.read_bytes(), ContentType="image/jpeg")
    schema = schemathesis.openapi.from_dict(narrowed(document(), bucket))
    schema.config.generation.update(modes=[GenerationMode.POSITIVE])  # chains start from valid calls
    answered: list[tuple[str, int]] = []
    granted: set[str] = set()  # upload ids the API answered with
    asked: set[str] = set()  # upload ids whose status was asked for

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": local_stack.url, "timeout": 60}

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
            answered.append((f"{case.method} {case.path}", response.status_code))
            if case.path == "/uploads" and response.status_code == 200:
                granted.add(response.json()["upload_id"])
            if case.path == "/uploads/{upload_id}":
                asked.add(case.path_parameters["upload_id"])
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs or None, recorder=self.recorder)
            if 400 <= response.status_code < 500:  # the one error shape, with a code and a message
                error = response.json()["error"]
                assert isinstance(error["code"], str) and error["code"] and error["message"], response.text

    # When sequences of linked calls are generated and sent
    Workflow.run(
        settings=settings(
            max_examples=12,
            stateful_step_count=6,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )
    # Then (the checks above held for every answer) the links were followed: a job was read by the id
    # the API answered with (a random id never names one), and a granted upload's status was asked
    # for by its id (404 `upload_not_found` until its photo is posted, which no link does)
    assert ("GET /jobs/{job_id}", 200) in answered, answered
    assert granted & asked, (granted, asked)
    settle(local_stack)  # the jobs it started end before the next test looks at the stores
    assert requests.get(f"{local_stack.url}/health", timeout=30).status_code == 200
