"""Keeps the emulators' data between local runs.

moto and osmem-server hold everything in memory, so on a clean stop the local stack writes S3
objects, DynamoDB items and OpenSearch documents to `<state>/snapshot/` and loads them on the next
start. The snapshot is replaced atomically (written beside, then renamed), so a crash mid-save
leaves the previous one intact. Milvus Lite persists by itself in `<state>/milvus.db/`.

Each object keeps its content type, metadata and tags (the upload trigger's `dedupe-status` and
`duplicate-of` live in tags). Restoring is not an upload: DynamoDB is restored first, then the
objects with the buckets' event notifications switched off, so no ObjectCreated fires for a
restored object (the upload trigger would otherwise dedupe every catalogue photo against the
registry before it was back, and against its own vector: "duplicate of itself").
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from opensearchpy import OpenSearch, helpers

from listing_vision import aws


def _write_jsonl(path: Path, rows: Iterator[dict[str, Any]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w") as out:
        for row in rows:
            out.write(json.dumps(row) + "\n")
            count += 1
    return count


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open() as rows:
        for line in rows:
            if line.strip():
                yield json.loads(line)


def _s3_objects(bucket: str) -> Iterator[dict[str, Any]]:
    s3 = aws.client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            obj = s3.get_object(Bucket=bucket, Key=item["Key"])
            tags = s3.get_object_tagging(Bucket=bucket, Key=item["Key"])["TagSet"]
            yield {
                "key": item["Key"],
                "content_type": obj.get("ContentType", "binary/octet-stream"),
                "metadata": obj.get("Metadata", {}),
                "tags": {tag["Key"]: tag["Value"] for tag in tags},
                "body": base64.b64encode(obj["Body"].read()).decode(),
            }


@contextmanager
def notifications_paused(bucket: str) -> Iterator[None]:
    """The bucket's event notifications off while the block runs, then put back as they were."""
    s3 = aws.client("s3")
    saved = s3.get_bucket_notification_configuration(Bucket=bucket)
    saved.pop("ResponseMetadata", None)
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    try:
        yield
    finally:
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=saved)


def _binary_as_text(value: Any, encode: bool) -> Any:
    """DynamoDB's low-level binary values (`B`, `BS`) as base64 text in the snapshot, and back."""
    convert = (lambda b: base64.b64encode(b).decode()) if encode else base64.b64decode
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key == "B":
                out[key] = convert(item)
            elif key == "BS":
                out[key] = [convert(b) for b in item]
            else:
                out[key] = _binary_as_text(item, encode)
        return out
    if isinstance(value, list):
        return [_binary_as_text(item, encode) for item in value]
    return value


def _dynamodb_items(table: str) -> Iterator[dict[str, Any]]:
    for page in aws.client("dynamodb").get_paginator("scan").paginate(TableName=table):
        for item in page.get("Items", []):
            yield _binary_as_text(item, encode=True)


def _index_documents(client: OpenSearch, index: str) -> Iterator[dict[str, Any]]:
    for hit in helpers.scan(client, index=index, query={"query": {"match_all": {}}}, preserve_order=False):
        yield {"_id": hit["_id"], "_source": hit["_source"]}


def save(
    state_dir: Path, buckets: list[str], tables: list[str], search: OpenSearch, indices: list[str]
) -> dict[str, int]:
    """Write a full snapshot; returns counts per store."""
    final = state_dir / "snapshot"
    staging = state_dir / "snapshot.partial"
    shutil.rmtree(staging, ignore_errors=True)
    counts: dict[str, int] = {}
    for bucket in buckets:
        counts[f"s3:{bucket}"] = _write_jsonl(staging / "s3" / f"{bucket}.jsonl", _s3_objects(bucket))
    for table in tables:
        counts[f"dynamodb:{table}"] = _write_jsonl(staging / "dynamodb" / f"{table}.jsonl", _dynamodb_items(table))
    for index in indices:
        mapping = search.indices.get_mapping(index=index)[index]["mappings"]
        (staging / "opensearch").mkdir(parents=True, exist_ok=True)
        (staging / "opensearch" / f"{index}.mapping.json").write_text(json.dumps(mapping))
        counts[f"opensearch:{index}"] = _write_jsonl(
            staging / "opensearch" / f"{index}.jsonl", _index_documents(search, index)
        )
    shutil.rmtree(final, ignore_errors=True)
    staging.rename(final)
    return counts


def restore(state_dir: Path, search: OpenSearch) -> dict[str, int]:
    """Load the last snapshot, if any, into freshly provisioned emulators; returns counts per store."""
    root = state_dir / "snapshot"
    counts: dict[str, int] = {}
    if not root.exists():
        return counts
    dynamodb = aws.client("dynamodb")
    for path in sorted((root / "dynamodb").glob("*.jsonl")):
        table = path.stem
        items = [_binary_as_text(item, encode=False) for item in _read_jsonl(path)]
        for start in range(0, len(items), 25):
            requests: dict[str, Any] = {table: [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]}
            while requests:
                requests = dynamodb.batch_write_item(RequestItems=requests).get("UnprocessedItems") or {}
        counts[f"dynamodb:{table}"] = len(items)
    s3 = aws.client("s3")  # after DynamoDB, and with no event fired: a restore is not an upload
    for path in sorted((root / "s3").glob("*.jsonl")):
        bucket = path.stem
        counts[f"s3:{bucket}"] = 0
        with notifications_paused(bucket):
            for obj in _read_jsonl(path):
                tagging = {"Tagging": urlencode(obj["tags"])} if obj.get("tags") else {}
                s3.put_object(
                    Bucket=bucket,
                    Key=obj["key"],
                    Body=base64.b64decode(obj["body"]),
                    ContentType=obj["content_type"],
                    Metadata=obj["metadata"],
                    **tagging,
                )
                counts[f"s3:{bucket}"] += 1
    for path in sorted((root / "opensearch").glob("*.jsonl")):
        index = path.stem
        mapping = json.loads((root / "opensearch" / f"{index}.mapping.json").read_text())
        if not search.indices.exists(index=index):
            search.indices.create(index=index, body={"mappings": mapping})
        else:
            search.indices.put_mapping(index=index, body=mapping)
        actions = ({"_index": index, "_id": doc["_id"], "_source": doc["_source"]} for doc in _read_jsonl(path))
        ok, _ = helpers.bulk(search, actions, chunk_size=500, refresh=True)
        counts[f"opensearch:{index}"] = ok
    return counts
