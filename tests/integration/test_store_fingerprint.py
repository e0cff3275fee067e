"""Object tags read in one pass from moto's in-process S3 backend (local/snapshot.py's in_process_tags,
used by the stack's snapshots and by the stores' fingerprint, tests/stores.py, that the bad-input tests
compare before and after each case) agree with S3's API, and a changed tag changes the fingerprint; so
do the buckets' listings and the tables' items the fingerprint reads from moto's backends."""

from __future__ import annotations

import base64

from listing_vision import aws
from local import snapshot
from local.provision import bucket_names, table_names
from local.snapshot import notifications_paused
from local.stack import LocalStack
from tests.stores import (
    Settled,
    api_objects,
    api_tags,
    canonical,
    changed,
    fingerprint,
    in_process_objects,
    in_process_tags,
    scanned_items,
    settle,
)


def test_tags_read_in_process_are_those_the_api_answers_and_a_retag_changes_the_fingerprint(
    local_stack: LocalStack,
) -> None:
    # Given an object with tags in a storefront bucket, put without the upload trigger
    bucket = local_stack.settings.bucket_for("alya")
    s3 = aws.client("s3")
    with notifications_paused(bucket):
        s3.put_object(Bucket=bucket, Key="fingerprint/tagged.bin", Body=b"x", Tagging="dedupe-status=unique&b=2")
        s3.put_object(Bucket=bucket, Key="fingerprint/untagged.bin", Body=b"y")
    settle(local_stack)
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    # When the tags are read from moto's backend in this process and through the API
    fast, slow = in_process_tags(bucket, keys), api_tags(bucket, keys)
    # Then both reads hold every listed object with the same tags
    assert fast is not None and {key: sorted(tags.items()) for key, tags in fast.items()} == slow
    assert fast["fingerprint/tagged.bin"] == {"b": "2", "dedupe-status": "unique"}
    assert fast["fingerprint/untagged.bin"] == {}
    # And a key the backend does not hold sends the read back to the API
    assert in_process_tags(bucket, [*keys, "fingerprint/never-put.bin"]) is None
    # When only a tag changes
    before, before_without_tags = fingerprint(with_tags=True), fingerprint()
    s3.put_object_tagging(
        Bucket=bucket, Key="fingerprint/tagged.bin", Tagging={"TagSet": [{"Key": "dedupe-status", "Value": "x"}]}
    )
    try:
        # Then the fingerprint with tags names that bucket (the one without tags cannot see a tag)
        assert changed(before, fingerprint(with_tags=True)) == [f"s3:{bucket}"]
        assert changed(before_without_tags, fingerprint()) == []
    finally:
        with notifications_paused(bucket):
            s3.delete_object(Bucket=bucket, Key="fingerprint/tagged.bin")
            s3.delete_object(Bucket=bucket, Key="fingerprint/untagged.bin")


def test_one_reading_per_case_still_names_the_case_that_wrote(local_stack: LocalStack) -> None:
    # Given the bad-input tests' store reader, in the cases of one test function
    bucket = local_stack.settings.bucket_for("alya")
    s3 = aws.client("s3")
    reads = Settled(local_stack).for_test(test_one_reading_per_case_still_names_the_case_that_wrote)
    first = reads.before()
    # When the first case writes nothing, then the second writes an object
    assert changed(first, reads.after()) == []
    second = reads.before()
    # Then the second case's 'before' is the first case's 'after', as a fresh read finds the stores
    assert second == first == reads.read()
    with notifications_paused(bucket):
        s3.put_object(Bucket=bucket, Key="fingerprint/written.bin", Body=b"z")
    try:
        # And the write is seen by the case that made it
        assert changed(second, reads.after()) == [f"s3:{bucket}"]
        # And the third case's 'before' is the store after the write: it does not inherit the change
        assert changed(reads.before(), reads.read()) == []
        # And a reading is not handed to another test function (its fixtures may have written since)
        reads.after()
        with notifications_paused(bucket):
            s3.delete_object(Bucket=bucket, Key="fingerprint/written.bin")
        other = reads.for_test(test_tags_read_in_process_are_those_the_api_answers_and_a_retag_changes_the_fingerprint)
        assert changed(other.before(), reads.read()) == []
    finally:
        with notifications_paused(bucket):
            s3.delete_object(Bucket=bucket, Key="fingerprint/written.bin")


def test_listings_and_items_read_in_process_are_those_the_api_answers_and_a_write_changes_the_fingerprint(
    local_stack: LocalStack,
) -> None:
    # Given a stored object, and an item holding every kind of attribute value (binary ones nested too)
    settings = local_stack.settings
    bucket, table = settings.bucket_for("alya"), settings.idempotency_table
    s3, dynamodb = aws.client("s3"), aws.client("dynamodb")
    with notifications_paused(bucket):
        s3.put_object(Bucket=bucket, Key="fingerprint/listed.bin", Body=b"listed")
    keys = dynamodb.describe_table(TableName=table)["Table"]["AttributeDefinitions"]
    item = {attribute["AttributeName"]: {attribute["AttributeType"]: "fingerprint-1"} for attribute in keys}
    item |= {
        "number": {"N": "12.50"},
        "blob": {"B": b"\x00\xffbytes"},
        "nested": {"M": {"blob": {"B": b"\x01"}, "list": {"L": [{"S": "a"}, {"N": "2"}, {"BOOL": True}]}}},
        "strings": {"SS": ["b", "a"]},
        "nothing": {"NULL": True},
    }
    dynamodb.put_item(TableName=table, Item=item)
    settle(local_stack)
    try:
        # When every bucket and table is read from moto's backends in this process and through the API
        # Then both reads answer the same objects and the same items
        for name in bucket_names(settings):
            assert in_process_objects(name) == api_objects(name), name
        for name in table_names(settings):
            held = snapshot.in_process_items(name)
            assert held is not None and canonical(held) == canonical(scanned_items(name)), name
        blob = {"B": base64.b64encode(b"\x00\xffbytes").decode()}
        assert any(row.get("blob") == blob for row in snapshot.in_process_items(table) or [])
        # And a changed item, or a changed object, changes the fingerprint, naming its store
        before = fingerprint()
        dynamodb.put_item(TableName=table, Item={**item, "nested": {"M": {"blob": {"B": b"\x02"}}}})
        assert changed(before, fingerprint()) == [f"dynamodb:{table}"]
        before = fingerprint()
        with notifications_paused(bucket):
            s3.put_object(Bucket=bucket, Key="fingerprint/listed.bin", Body=b"LISTED")
        assert changed(before, fingerprint()) == [f"s3:{bucket}"]
    finally:
        dynamodb.delete_item(TableName=table, Key={name["AttributeName"]: item[name["AttributeName"]] for name in keys})
        with notifications_paused(bucket):
            s3.delete_object(Bucket=bucket, Key="fingerprint/listed.bin")
