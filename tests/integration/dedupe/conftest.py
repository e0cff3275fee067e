"""Shared by the duplicate-detection tests: posting to POST /image_similarity_search through the
local gateway, and reading what the real stores hold (moto S3/DynamoDB, Milvus Lite)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.jewelry import vector_index
from local.stack import LocalStack

Post = Callable[..., requests.Response]


@pytest.fixture
def post(local_stack: LocalStack) -> Post:
    def send(data: bytes | None, name: str = "photo.jpg", **form: str) -> requests.Response:
        files = {"file": (name, data, "image/jpeg")} if data is not None else {"other": ("x", b"1")}
        return requests.post(f"{local_stack.url}/image_similarity_search", files=files, data=form, timeout=60)

    return send


def catalogue_record(website: str, sha256: str) -> dict[str, Any]:
    key = {"content_id": {"S": f"{website}#{sha256}"}}
    return aws.client("dynamodb").get_item(TableName=get_settings().catalogue_table, Key=key).get("Item", {})


def milvus_rows(sha256: str | None = None, website: str | None = None) -> int:
    index = vector_index.VectorIndex("image_embeddings_ip")
    if sha256 is None:
        return index.count()
    return len(index.find_exact(sha256, website or "alya"))


def s3_objects(bucket: str) -> list[str]:
    pages = aws.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def key_of(url: str) -> str:
    return url.split("?")[0].split("/", 4)[-1]


def tags(bucket: str, key: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in aws.client("s3").get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}
