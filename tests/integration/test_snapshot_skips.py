"""The local stack's periodic snapshot is skipped while nothing was written (local/store_writes.py):
reads leave the stores' write counters as they were, and every kind of write the functions make
changes them, so the next save after it writes a snapshot. A write the counters missed would be lost
by a kill -9 after it; one counted that wrote nothing only costs a save."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.dynamodb_items import to_item
from listing_vision.realestate.listings_index import opensearch_client
from local import snapshot
from local.stack import LocalStack
from local.store_writes import SavesWhenWritten
from tests.stores import settle


def test_a_save_is_skipped_after_reads_and_made_after_every_kind_of_write(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    settings = get_settings()
    s3, dynamodb, ssm, search = aws.client("s3"), aws.client("dynamodb"), aws.client("ssm"), opensearch_client()
    bucket, table = settings.artifacts_bucket, settings.webhooks_table
    index = f"snapshot-probe-{uuid.uuid4().hex[:8]}"  # its own index: a mapping change here touches no test's
    search.indices.create(index=index, body={"mappings": {"properties": {"text": {"type": "text"}}}})
    probe = uuid.uuid4().hex
    key, item = f"snapshot-probe/{probe}", to_item({"webhook_key": probe, "n": 1})
    parameter = f"/snapshot-probe/{probe}"
    saves = SavesWhenWritten(lambda: local_stack.store_writes([settings.listings_index, index]))

    def save_now() -> dict[str, int]:
        return snapshot.save(tmp_path, [bucket], [table], search, [settings.listings_index, index])

    def written() -> bool:
        started = json.loads((tmp_path / "snapshot" / "meta.json").read_text())["started_at"]
        made = saves.save(save_now)[1]
        assert made == (json.loads((tmp_path / "snapshot" / "meta.json").read_text())["started_at"] != started)
        return made

    # Given a snapshot of the stores as they are, with something of each kind in them
    s3.put_object(Bucket=bucket, Key=key, Body=b"photo")
    dynamodb.put_item(TableName=table, Item=item)
    ssm.put_parameter(Name=parameter, Value="v1", Type="SecureString")
    search.index(index=index, id=probe, body={"text": "a listing"}, refresh=True)
    settle(local_stack)
    assert saves.save(save_now)[1]

    # When only reads are made, as the console and the API's GETs make them
    s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    s3.head_object(Bucket=bucket, Key=key)
    s3.list_objects_v2(Bucket=bucket, Prefix="snapshot-probe/")
    s3.get_object_tagging(Bucket=bucket, Key=key)
    dynamodb.get_item(TableName=table, Key={"webhook_key": item["webhook_key"]})
    dynamodb.batch_get_item(RequestItems={table: {"Keys": [{"webhook_key": item["webhook_key"]}]}})
    dynamodb.query(
        TableName=table,
        KeyConditionExpression="webhook_key = :k",
        ExpressionAttributeValues={":k": item["webhook_key"]},
    )
    dynamodb.scan(TableName=table, Limit=5)
    dynamodb.describe_table(TableName=table)
    ssm.get_parameter(Name=parameter, WithDecryption=True)
    search.search(index=index, body={"query": {"match_all": {}}})
    search.get(index=index, id=probe)
    search.count(index=index)
    # Then the next save is skipped: the last one holds everything
    assert not written(), "a read was counted as a write"

    # When each kind of write is made, Then the save after it writes a snapshot
    writes: dict[str, Callable[[], object]] = {
        "s3 put": lambda: s3.put_object(Bucket=bucket, Key=key, Body=b"photo 2"),
        "s3 copy": lambda: s3.copy_object(Bucket=bucket, Key=f"{key}-copy", CopySource={"Bucket": bucket, "Key": key}),
        "s3 tags": lambda: s3.put_object_tagging(
            Bucket=bucket, Key=key, Tagging={"TagSet": [{"Key": "k", "Value": "v"}]}
        ),
        "s3 delete": lambda: s3.delete_object(Bucket=bucket, Key=f"{key}-copy"),
        "dynamodb put": lambda: dynamodb.put_item(TableName=table, Item={**item, "n": {"N": "2"}}),
        "dynamodb update": lambda: dynamodb.update_item(
            TableName=table,
            Key={"webhook_key": item["webhook_key"]},
            UpdateExpression="SET n = :n",
            ExpressionAttributeValues={":n": {"N": "3"}},
        ),
        "dynamodb batch write": lambda: dynamodb.batch_write_item(
            RequestItems={table: [{"PutRequest": {"Item": to_item({"webhook_key": f"{probe}-2"})}}]}
        ),
        "dynamodb transaction": lambda: dynamodb.transact_write_items(
            TransactItems=[{"Delete": {"TableName": table, "Key": {"webhook_key": {"S": f"{probe}-2"}}}}]
        ),
        "dynamodb delete": lambda: dynamodb.delete_item(TableName=table, Key={"webhook_key": item["webhook_key"]}),
        "ssm put": lambda: ssm.put_parameter(Name=parameter, Value="v2", Type="SecureString", Overwrite=True),
        "opensearch index": lambda: search.index(index=index, id=f"{probe}-2", body={"text": "another"}),
        "opensearch update": lambda: search.update(index=index, id=probe, body={"doc": {"text": "changed"}}),
        "opensearch bulk": lambda: search.bulk(
            body=[{"update": {"_index": index, "_id": probe}}, {"doc": {"text": "bulk"}}]
        ),
        "opensearch delete": lambda: search.delete(index=index, id=f"{probe}-2"),
        "opensearch mapping": lambda: search.indices.put_mapping(
            index=index, body={"properties": {"amenities": {"type": "text"}}}
        ),
    }
    missed = []
    for name, write in writes.items():
        write()
        if not written():
            missed.append(name)
    assert missed == [], f"writes the counters missed (a kill -9 after them would lose them): {missed}"
    search.indices.delete(index=index)
    s3.delete_object(Bucket=bucket, Key=key)
    ssm.delete_parameter(Name=parameter)
