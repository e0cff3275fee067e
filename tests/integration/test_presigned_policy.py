"""The local S3 enforces a presigned POST form's policy as AWS does: a form whose fields were edited
is refused with S3's XML error and writes nothing (local/s3_post_policy.py)."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote_plus

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from listing_vision import aws
from local.stack import LocalStack
from tests.images import fresh_image

BUCKET = "alyaimg"


def grant(local_stack: LocalStack, filename: str | None = "ring.jpg") -> dict[str, Any]:
    """A form from the API, as a client gets it."""
    body = {"website": "alya", "content_type": "image/jpeg", **({"filename": filename} if filename else {})}
    answer = requests.post(f"{local_stack.url}/uploads", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def post(form: dict[str, Any], data: bytes, **changed: str) -> requests.Response:
    fields = {**form["fields"], **changed}
    return requests.post(form["url"], data=fields, files={"file": ("f.jpg", data)}, timeout=30)


def exists(key: str) -> bool:
    try:
        aws.client("s3").head_object(Bucket=BUCKET, Key=key)
    except ClientError:
        return False
    return True


def error_code(answer: requests.Response) -> str:
    found = re.search(r"<Code>([^<]+)</Code>", answer.text)
    return found.group(1) if found else ""


def test_a_form_as_granted_is_accepted(local_stack: LocalStack) -> None:
    # Given a form from POST /uploads
    form = grant(local_stack)
    # When a client posts a photo with it unchanged
    answer = post(form, fresh_image(seed=61_001))
    # Then S3 stores it under the form's key
    assert answer.status_code in (200, 204), answer.text
    assert exists(form["key"])


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("key", "catalogue/00/overwritten.jpg", "AccessDenied"),  # any object of the bucket
        ("Content-Type", "text/html", "AccessDenied"),
        ("x-amz-meta-original-name", "forged.jpg", "AccessDenied"),
        ("x-amz-meta-owner", "someone-else", "AccessDenied"),  # a field the policy does not name
        ("x-amz-signature", "0" * 64, "SignatureDoesNotMatch"),
    ],
)
def test_a_form_with_an_edited_field_is_refused_and_writes_nothing(
    local_stack: LocalStack, field: str, value: str, code: str
) -> None:
    # Given a form from POST /uploads
    form = grant(local_stack)
    # When a client edits one field before posting
    answer = post(form, fresh_image(seed=61_002), **{field: value})
    # Then S3's error comes back, and neither the form's key nor the forged one holds anything
    assert (answer.status_code, error_code(answer)) == (403, code), answer.text
    assert not exists(form["key"])
    if field == "key":
        assert not exists(value)


def test_an_expired_form_is_refused(local_stack: LocalStack) -> None:
    # Given a form whose policy expired a minute ago
    form = aws.client("s3").generate_presigned_post(Bucket=BUCKET, Key="incoming/expired.jpg", ExpiresIn=-60)
    # When it is used
    answer = requests.post(form["url"], data=form["fields"], files={"file": ("f.jpg", b"x")}, timeout=30)
    # Then S3 refuses it: the policy expired
    assert (answer.status_code, error_code(answer)) == (403, "AccessDenied")
    assert "Policy expired" in answer.text
    assert not exists("incoming/expired.jpg")


@pytest.mark.parametrize(("size", "code"), [(11, "EntityTooLarge"), (0, "EntityTooSmall")])
def test_a_file_outside_the_length_range_is_refused(local_stack: LocalStack, size: int, code: str) -> None:
    # Given a form for files of 1 to 10 bytes
    key = f"incoming/range-{size}.jpg"
    form = aws.client("s3").generate_presigned_post(
        Bucket=BUCKET, Key=key, Conditions=[["content-length-range", 1, 10]], ExpiresIn=60
    )
    # When a file outside that range is posted
    answer = requests.post(form["url"], data=form["fields"], files={"file": ("f.jpg", b"x" * size)}, timeout=30)
    # Then S3 answers 400 with the matching code, and nothing is stored
    assert (answer.status_code, error_code(answer)) == (400, code)
    assert not exists(key)


def test_a_form_signed_with_sigv2_is_refused(local_stack: LocalStack) -> None:
    # Given a form signed the old way (botocore's default for a presigned POST in us-east-1, until
    # the platform's clients asked for SigV4), which S3 refuses on buckets created since 2020
    legacy = boto3.client(
        "s3",
        endpoint_url=local_stack.moto_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(signature_version="s3"),
    )
    form = legacy.generate_presigned_post(Bucket=BUCKET, Key="incoming/sigv2.jpg", ExpiresIn=60)
    assert "AWSAccessKeyId" in form["fields"]
    # When it is used
    answer = requests.post(form["url"], data=form["fields"], files={"file": ("f.jpg", b"x")}, timeout=30)
    # Then S3 asks for SigV4, and nothing is stored
    assert (answer.status_code, error_code(answer)) == (400, "InvalidRequest")
    assert not exists("incoming/sigv2.jpg")


def test_a_forms_event_is_sent_once_its_object_has_the_forms_type_and_metadata(
    local_stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the upload trigger's invocations watched as they are sent: what the object holds then
    seen_at_event: list[dict[str, Any]] = []
    send = local_stack.router.invoke
    form = grant(local_stack, filename="brooch.jpg")

    def watching(function_name: str, payload: Any, asynchronous: bool = False) -> tuple[bytes, bool]:
        record = json.loads(payload)["Records"][0] if function_name == "dedupe-indexer" else None
        # only this form's object: other tests' events (an ObjectRemoved of theirs) may arrive meanwhile
        if record is not None and unquote_plus(record["s3"]["object"]["key"]) == form["fields"]["key"]:
            seen_at_event.append(aws.client("s3").head_object(Bucket=BUCKET, Key=form["fields"]["key"]))
        return send(function_name, payload, asynchronous=asynchronous)

    monkeypatch.setattr(local_stack.router, "invoke", watching)
    # When a client posts a photo with a form from POST /uploads
    answer = post(form, fresh_image(seed=61_009))
    assert answer.status_code in (200, 204), answer.text
    # Then the object its ObjectCreated:Post event announces already has the form's Content-Type and
    # metadata, as on AWS (moto alone sends the event before setting them: a trigger could read neither)
    assert len(seen_at_event) == 1
    assert seen_at_event[0]["ContentType"] == "image/jpeg"
    assert seen_at_event[0]["Metadata"]["original-name"] == "brooch.jpg"
