"""The local stack's snapshot reads its stores one after another while functions keep writing. A
photo is written object first, record after (dedupe.py), as are a job's images and its record: so
the snapshot reads the tables before the buckets, and a record it keeps always has its object (a
kill -9 then never restores a record whose object is gone, which AWS, whose stores are each
durable, never shows). Raced here: a writer puts an object then its record at the moment the
snapshot has read one store and not yet the other."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.dynamodb_items import to_item
from listing_vision.realestate.listings_index import opensearch_client
from local import snapshot
from local.stack import LocalStack


def test_a_record_in_a_snapshot_has_its_object_even_if_written_during_the_save(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    settings = get_settings()
    bucket, table = settings.artifacts_bucket, settings.webhooks_table
    s3, dynamodb = aws.client("s3"), aws.client("dynamodb")
    key = f"snapshot-order/{uuid.uuid4().hex}"
    read: set[str] = set()
    written: list[str] = []

    def write_pair() -> None:
        # the pipeline's order: the object, then the record naming it
        s3.put_object(Bucket=bucket, Key=key, Body=b"photo")
        dynamodb.put_item(TableName=table, Item=to_item({"webhook_key": key, "path": f"s3://{bucket}/{key}"}))
        written.append(key)

    def between(store: str) -> Any:
        def hook(**_: Any) -> None:
            read.add(store)
            if len(read) == 2 and not written:  # one store read, the other's read starting
                write_pair()

        return hook

    on_s3, on_dynamodb = between("s3"), between("dynamodb")
    s3.meta.events.register("before-call.s3.ListObjectsV2", on_s3)
    dynamodb.meta.events.register("before-call.dynamodb.Scan", on_dynamodb)
    try:
        # When a snapshot is saved, the writer putting an object and its record between its two stores' reads
        snapshot.save(tmp_path, [bucket], [table], opensearch_client(), [])
    finally:
        s3.meta.events.unregister("before-call.s3.ListObjectsV2", on_s3)
        dynamodb.meta.events.unregister("before-call.dynamodb.Scan", on_dynamodb)
        s3.delete_object(Bucket=bucket, Key=key)
        dynamodb.delete_item(TableName=table, Key=to_item({"webhook_key": key}))
    assert written == [key]
    # Then if the snapshot kept the record, it kept its object too
    records = [json.loads(line) for line in (tmp_path / "snapshot" / "dynamodb" / f"{table}.jsonl").open()]
    objects = [json.loads(line) for line in (tmp_path / "snapshot" / "s3" / f"{bucket}.jsonl").open()]
    has_record = any(record["webhook_key"]["S"] == key for record in records)
    has_object = any(obj["key"] == key for obj in objects)
    assert has_object or not has_record, "the snapshot kept a record whose object it did not"
