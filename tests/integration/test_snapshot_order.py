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

import pytest

from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.dynamodb_items import to_item
from listing_vision.realestate.listings_index import opensearch_client
from local import snapshot
from local.stack import LocalStack
from tests.stores import canonical, scanned_items


def test_a_record_in_a_snapshot_has_its_object_even_if_written_during_the_save(
    local_stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
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
    read_table = snapshot.in_process_items  # the tables are read in this process, from moto's backend

    def table_read(name: str) -> list[dict[str, Any]] | None:
        on_dynamodb()
        return read_table(name)

    monkeypatch.setattr(snapshot, "in_process_items", table_read)
    try:
        # When a snapshot is saved, the writer putting an object and its record between its two stores' reads
        snapshot.save(tmp_path, [bucket], [table], opensearch_client(), [])
    finally:
        s3.meta.events.unregister("before-call.s3.ListObjectsV2", on_s3)
        s3.delete_object(Bucket=bucket, Key=key)
        dynamodb.delete_item(TableName=table, Key=to_item({"webhook_key": key}))
    assert written == [key]
    # Then if the snapshot kept the record, it kept its object too
    records = [json.loads(line) for line in (tmp_path / "snapshot" / "dynamodb" / f"{table}.jsonl").open()]
    objects = [json.loads(line) for line in (tmp_path / "snapshot" / "s3" / f"{bucket}.jsonl").open()]
    has_record = any(record["webhook_key"]["S"] == key for record in records)
    has_object = any(obj["key"] == key for obj in objects)
    assert has_object or not has_record, "the snapshot kept a record whose object it did not"


def test_a_table_read_in_process_holds_what_a_scan_reads_every_type_included(local_stack: LocalStack) -> None:
    # Given a record holding every DynamoDB type, binary ones at the top level and nested
    table = get_settings().webhooks_table
    dynamodb = aws.client("dynamodb")
    key = f"snapshot-types/{uuid.uuid4().hex}"
    item = {
        "webhook_key": {"S": key},
        "n": {"N": "12.5"},
        "b": {"B": b"\x00\xffbytes"},
        "ss": {"SS": ["a", "b"]},
        "ns": {"NS": ["1", "2.5"]},
        "bs": {"BS": [b"\x01", b"\x02\x03"]},
        "m": {"M": {"b": {"B": b"\x04"}, "s": {"S": "x"}, "l": {"L": [{"N": "3"}, {"B": b"\x05"}]}}},
        "l": {"L": [{"B": b"\x06"}, {"BOOL": True}, {"NULL": True}, {"M": {"n": {"N": "-1"}}}]},
    }
    dynamodb.put_item(TableName=table, Item=item)
    try:
        # When the snapshot reads the table from moto's backend in this process, and a scan reads it
        in_process = snapshot.in_process_items(table)
        scanned = scanned_items(table)
    finally:
        dynamodb.delete_item(TableName=table, Key={"webhook_key": {"S": key}})
    # Then both hold the same records, the binary values as the same base64 text (sets in any order)
    assert in_process is not None
    assert canonical(in_process) == canonical(scanned)
    assert any(row["webhook_key"]["S"] == key for row in in_process)
    # And a table no backend here holds sends the read back to the API
    assert snapshot.in_process_items("no-such-table") is None
