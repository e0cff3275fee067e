"""Limits only AWS enforces (S3's 2 KB of user metadata, DynamoDB's 2,048-byte keys): the local
stack enforces them as AWS does, and the API refuses what would break them at the edge, with a
stable code and nothing written."""

from __future__ import annotations

import pytest
import requests
from botocore.exceptions import ClientError

from listing_vision import aws
from listing_vision.api.access import Caller
from listing_vision.config import get_settings
from listing_vision.errors import NotFound
from listing_vision.jewelry.jobs import JobStore
from listing_vision.jewelry.storage import ImageStore
from listing_vision.jewelry.upload_claims import UploadClaims
from listing_vision.jewelry.uploads import UploadForms
from local.stack import LocalStack
from tests.images import fresh_image
from tests.stores import changed, fingerprint

LONG = "r" * 3_000


def test_the_local_stack_refuses_what_aws_refuses(local_stack: LocalStack) -> None:
    settings = get_settings()
    s3, dynamodb = aws.client("s3"), aws.client("dynamodb")
    before = fingerprint()
    # When an object is written with 3 KB of user metadata
    with pytest.raises(ClientError) as metadata:
        s3.put_object(
            Bucket=settings.bucket_for("alya"), Key="limits/a.jpg", Body=b"x", Metadata={"original-name": LONG}
        )
    # Then S3's own error
    assert metadata.value.response["Error"]["Code"] == "MetadataTooLarge"
    # When a key over 1,024 bytes is written
    with pytest.raises(ClientError) as key:
        s3.put_object(Bucket=settings.bucket_for("alya"), Key="k" * 1_025, Body=b"x")
    assert key.value.response["Error"]["Code"] == "KeyTooLongError"
    # When DynamoDB is asked for, or given, a partition key over 2,048 bytes
    for call in (
        lambda: dynamodb.get_item(TableName=settings.jobs_table, Key={"job_id": {"S": LONG}}),
        lambda: dynamodb.put_item(TableName=settings.jobs_table, Item={"job_id": {"S": LONG}}),
        lambda: dynamodb.batch_get_item(RequestItems={settings.jobs_table: {"Keys": [{"job_id": {"S": LONG}}]}}),
    ):
        with pytest.raises(ClientError) as too_long:
            call()
        # Then DynamoDB's own error
        assert too_long.value.response["Error"]["Code"] == "ValidationException"
        assert "2048 bytes" in too_long.value.response["Error"]["Message"]
    # And at the limits themselves, all is accepted as on AWS
    s3.put_object(Bucket=settings.bucket_for("alya"), Key="limits/ok.jpg", Body=b"x", Metadata={"a": "b" * 2_047})
    dynamodb.get_item(TableName=settings.jobs_table, Key={"job_id": {"S": "j" * 2_048}})
    s3.delete_object(Bucket=settings.bucket_for("alya"), Key="limits/ok.jpg")
    assert changed(before, fingerprint()) == []


@pytest.mark.parametrize("filename", [LONG + ".jpg", "戒指" * 50 + ".jpg"], ids=["3000-ascii", "300-bytes-utf8"])
@pytest.mark.parametrize("route", ["/image_similarity_search", "/generate_caption"])
def test_a_filename_too_long_for_s3_metadata_is_a_400_and_writes_nothing(
    local_stack: LocalStack, route: str, filename: str
) -> None:
    # Given a new photo whose filename would not fit S3's 2 KB of metadata
    before = fingerprint()
    form = {"website": "alya", **({"type": "ring"} if route == "/generate_caption" else {})}
    # When it is uploaded
    answer = requests.post(
        f"{local_stack.url}{route}",
        files={"file": (filename, fresh_image(913_001), "image/jpeg")},
        data=form,
        timeout=60,
    )
    # Then a 400 with its own code, and nothing anywhere was written
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "filename_too_long"
    assert answer.json()["error"]["details"]["fields"][0]["field"] == "filename"
    assert changed(before, fingerprint()) == []


@pytest.mark.parametrize(
    ("filename", "code"), [(LONG, "invalid_request"), ("戒指" * 100, "filename_too_long")], ids=["3000", "600-bytes"]
)
def test_a_presigned_upload_with_a_filename_too_long_is_a_400(
    local_stack: LocalStack, filename: str, code: str
) -> None:
    before = fingerprint()
    # When a presigned upload is asked for with a filename S3 metadata cannot hold
    answer = requests.post(f"{local_stack.url}/uploads", json={"website": "alya", "filename": filename}, timeout=30)
    # Then a 400, and nothing written
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == code
    assert changed(before, fingerprint()) == []


def test_ids_over_the_key_size_are_refused_unread_and_write_nothing(local_stack: LocalStack) -> None:
    before = fingerprint()
    # When a job or an upload is asked for by a 3,000-character id
    job = requests.get(f"{local_stack.url}/jobs/{LONG}", timeout=30)
    upload = requests.get(f"{local_stack.url}/uploads/{LONG}", params={"website": "alya"}, timeout=30)
    regenerate = requests.post(
        f"{local_stack.url}/regenerate-image", json={"job_id": LONG, "image_type": 1}, timeout=30
    )
    # Then each is a clean 400 from the route's id pattern (DynamoDB on AWS would have answered a 500)
    for answer in (job, upload, regenerate):
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_request", answer.text
        assert LONG not in answer.text  # the id is not echoed back
    # and the library, called otherwise, does not send such an id to DynamoDB either: it does not exist
    with pytest.raises(NotFound) as not_found:
        JobStore().get(LONG)
    assert not_found.value.code == "job_not_found" and LONG not in str(not_found.value)
    with pytest.raises(NotFound) as not_found:
        forms = UploadForms(ImageStore.from_settings(), UploadClaims())
        forms.upload_status(Caller("c", frozenset({"alya"})), "alya", LONG)
    assert not_found.value.code == "upload_not_found" and LONG not in str(not_found.value)
    assert changed(before, fingerprint()) == []
