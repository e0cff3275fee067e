"""The local stack provisions every store and serves the real handlers through the gateway, and holds
its state folder: a second stack on it, built in code or `python -m local`, is refused."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import boto3
import pytest
import requests

from listing_vision import aws
from listing_vision.jewelry.vector_index import milvus_client
from listing_vision.realestate.listings_index import opensearch_client
from listing_vision.resources import TABLES, bucket_name, buckets
from local.call_recorder import Call
from local.lambda_runtime import current_function
from local.stack import LocalStack
from local.state_lock import StateFolderInUse, StateLock
from tests.local_process import local_command, refused_start


def test_every_bucket_exists_and_is_private(local_stack: LocalStack) -> None:
    s3 = aws.client("s3")
    for spec in buckets(local_stack.settings.storefront_names):
        name = bucket_name(local_stack.settings, spec)
        block = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
        assert all(block.values()), name


def test_every_table_has_its_key_and_ttl(local_stack: LocalStack) -> None:
    dynamodb = aws.client("dynamodb")
    for spec in TABLES:
        name = getattr(local_stack.settings, spec.name_setting)
        table = dynamodb.describe_table(TableName=name)["Table"]
        assert table["KeySchema"] == [{"AttributeName": spec.partition_key, "KeyType": "HASH"}]
        ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if spec.ttl_attribute:
            assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": spec.ttl_attribute}


def test_listings_index_and_milvus_collection_exist(local_stack: LocalStack) -> None:
    mapping = opensearch_client().indices.get_mapping(index="listings-v2")["listings-v2"]["mappings"]
    assert mapping["properties"]["zpid"] == {"type": "keyword"}
    client = milvus_client()
    described = client.describe_collection("image_embeddings_ip")
    fields = {f["name"] for f in described["fields"]}
    assert fields == {"id", "embedding", "path", "website", "sha256", "created_at"}
    index = client.describe_index("image_embeddings_ip", index_name="embedding")
    assert index["metric_type"] == "IP" and index["index_type"] == "HNSW"


def test_provisioning_again_is_harmless(local_stack: LocalStack) -> None:
    from local.provision import provision

    aws.client("s3").put_object(Bucket="alyaimg", Key="keep/me.txt", Body=b"x")
    provision(local_stack.settings)
    assert aws.client("s3").get_object(Bucket="alyaimg", Key="keep/me.txt")["Body"].read() == b"x"


def test_health_reports_each_component(local_stack: LocalStack) -> None:
    response = requests.get(f"{local_stack.url}/health", timeout=10)
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "components": {name: "ok" for name in ("s3", "dynamodb", "stepfunctions", "opensearch", "milvus")},
    }


def test_uploads_reach_the_handler_intact(local_stack: LocalStack, photos: list[Path]) -> None:
    # Given a real photo sent as multipart, as curl -F would (base64-encoded by the gateway as a binary media type)
    photo = photos[8]
    with photo.open("rb") as handle:
        response = requests.post(
            f"{local_stack.url}/image_similarity_search",
            files={"file": (photo.name, handle, "image/jpeg")},
            data={"website": "blysk", "check_duplicate": "no"},
            timeout=30,
        )
    # Then the handler parsed every field and stored every byte
    body = response.json()
    assert response.status_code == 200, body
    assert body["image_name"] == photo.name and "/blyskimg/" in body["s3_url"]
    assert requests.get(body["s3_url"], timeout=10).content == photo.read_bytes()


@pytest.mark.parametrize(
    ("data", "field"),
    [({"website": "etsy"}, "website"), ({"check_duplicate": "maybe"}, "check_duplicate")],
)
def test_bad_form_values_are_400_with_the_field(
    local_stack: LocalStack, photos: list[Path], data: dict, field: str
) -> None:
    response = requests.post(
        f"{local_stack.url}/image_similarity_search",
        files={"file": ("a.jpg", photos[0].read_bytes(), "image/jpeg")},
        data=data,
        timeout=30,
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert [f["field"] for f in error["details"]["fields"]] == [field]


def test_missing_file_and_wrong_content_type(local_stack: LocalStack) -> None:
    # A form with no file part at all: the missing field is named
    missing = requests.post(f"{local_stack.url}/image_similarity_search", files={"website": (None, "alya")}, timeout=10)
    assert missing.status_code == 400 and missing.json()["error"]["details"]["fields"][0]["field"] == "file"
    # A file under another name: that part is named (a file where none is expected), before the missing one
    other = requests.post(
        f"{local_stack.url}/image_similarity_search", data={"website": "alya"}, files={"other": ("x", b"1")}, timeout=10
    )
    assert other.status_code == 400 and other.json()["error"]["details"]["fields"][0]["field"] == "other"
    text = requests.post(
        f"{local_stack.url}/image_similarity_search", data=b"hello", headers={"Content-Type": "text/plain"}, timeout=10
    )
    assert text.status_code == 415 and text.json()["error"]["code"] == "unsupported_content_type"


def test_gateway_limits_and_unknown_routes(local_stack: LocalStack) -> None:
    big = requests.post(
        f"{local_stack.url}/image_similarity_search", files={"file": ("big.jpg", b"\0" * 5_000_000)}, timeout=60
    )
    assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"
    missing = requests.get(f"{local_stack.url}/nowhere", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "route_not_found"
    # A method the route does not have is what API Gateway answers for it: no route (its gateway
    # response, as deployed); the same table answers both locally and on AWS.
    wrong_method = requests.get(f"{local_stack.url}/generate-images", timeout=10)
    assert wrong_method.status_code == 404 and wrong_method.json()["error"]["code"] == "route_not_found"
    assert wrong_method.json()["error"]["request_id"]


def test_lambda_invoke_reaches_the_in_process_handler(local_stack: LocalStack) -> None:
    # Given boto3's Lambda client pointed at moto, as any caller on AWS would use it
    lambda_client = boto3.client(
        "lambda",
        endpoint_url=local_stack.moto_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    # When the regenerate function is invoked with an unknown operation
    response = lambda_client.invoke(FunctionName="migration", Payload=json.dumps({"operation": "explode"}))
    # Then the real handler ran and its exception is a Lambda function error
    assert response["FunctionError"] == "Unhandled"
    payload = json.loads(response["Payload"].read())
    assert payload["errorType"] == "InvalidRequest" and "explode" in payload["errorMessage"]
    # And an asynchronous invoke is accepted at once
    queued = lambda_client.invoke(FunctionName="migration", InvocationType="Event", Payload=b"{}")
    assert queued["StatusCode"] == 202


def test_a_read_of_a_missing_object_is_recorded_as_needing_list_bucket(local_stack: LocalStack) -> None:
    # Given calls made as a function (a name no real function has, so nothing else is checked against them)
    assert local_stack.recorder is not None
    s3, bucket = aws.client("s3"), local_stack.settings.artifacts_bucket
    s3.put_object(Bucket=bucket, Key="recorder-probe/there.txt", Body=b"x")

    def reads_as_a_function(*keys: str) -> set[str]:
        token = current_function.set("recorder-probe")
        try:
            for key in keys:
                for read in (s3.head_object, s3.get_object):
                    with contextlib.suppress(s3.exceptions.ClientError):  # a missing one raises
                        read(Bucket=bucket, Key=key)
        finally:
            current_function.reset(token)
        assert local_stack.recorder is not None
        return {c.action for c in local_stack.recorder.for_function("recorder-probe")}

    # When it reads an object that is there, it needs s3:GetObject only
    assert reads_as_a_function("recorder-probe/there.txt") == {"s3:GetObject"}
    # and when it reads one that is not, s3:ListBucket on the bucket too (S3 answers 403 without it, not 404)
    assert reads_as_a_function("recorder-probe/gone.txt") == {"s3:GetObject", "s3:ListBucket"}
    assert Call("recorder-probe", "s3:ListBucket", f"arn:aws:s3:::{bucket}") in local_stack.recorder.calls


def test_a_second_stack_on_the_state_folder_of_a_running_one_is_refused_in_process_and_as_a_process(
    local_stack: LocalStack,
) -> None:
    # Given the session's stack, built in this process by code, running on its state folder
    folder = local_stack.state_dir
    said = f"The state folder {folder} is in use by another local stack (process {os.getpid()})"
    # When a second stack is built in code on the same folder and started
    second = LocalStack(state_dir=folder, port=0, keep_snapshot=False)
    with pytest.raises(StateFolderInUse) as refused:
        second.start()
    # Then it is refused, naming the folder, the holder and what to do, before taking any port
    assert str(refused.value).startswith(said) and "--state-dir" in str(refused.value)
    assert (second.url, second.moto_url, second.opensearch_url) == ("", "", "")
    # When `python -m local` is started on that folder
    printed = refused_start(local_command(folder))
    # Then it is refused with the same message
    assert f"Could not start the local stack: {refused.value}" in printed
    # And the first still answers, and still holds the folder
    assert requests.get(f"{local_stack.url}/health", timeout=30).status_code == 200
    with pytest.raises(StateFolderInUse):
        StateLock(folder).acquire()
