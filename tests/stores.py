"""What every store holds, as a fingerprint: two equal fingerprints mean nothing was written.

S3 objects (key, size, ETag and tags) in every bucket, every DynamoDB item, the Milvus row count, the
OpenSearch documents' versions and every Step Functions state machine's executions: a request that
must write nothing (and start nothing) leaves them all equal.

S3 has no call that lists tags for many objects, so tags cost one GetObjectTagging per object: on a
session's stack that earlier modules filled, two fingerprints per case took seconds. When moto runs
in this process (the tests' local stack), the tags are read from its S3 backend in one pass instead
(local/snapshot.py's in_process_tags, as the stack's snapshots read them),
for exactly the keys the listing returned; otherwise (or if that backend does not hold every listed
key) one request per object as before. So are the buckets' listings and the tables' items, through the
backends' own list and scan code: over HTTP, the fingerprint's 14 listings and scans were 90 % of the
bad-input corpus's seconds. tests/integration/test_store_fingerprint.py checks that both reads agree
and that a changed tag, object or item changes the fingerprint.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import requests

from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.jewelry import vector_index
from listing_vision.realestate.listings_index import opensearch_client
from local.provision import bucket_names, table_names
from local.snapshot import _binary_as_text, in_process_tags, table_items

if TYPE_CHECKING:
    from local.stack import LocalStack

Tags = list[tuple[str, str]]
# How long a test waits for the stack's asynchronous work (S3-triggered indexing and dedupe, generation
# runs, webhook deliveries with their backoffs) to end before it reads the stores: a hang guard, generous
# for a loaded machine. LambdaRouter.drain's own default (60 s) answered False past it, and the callers
# that ignored that read the stores while an invocation still wrote.
SETTLE_S = 600.0


def settle(stack: LocalStack) -> None:
    """Wait until no asynchronous invocation of the stack is running (one may start another)."""
    assert stack.router.drain(SETTLE_S), f"asynchronous invocations still running after {SETTLE_S:.0f} s"


def stored_through_api(stack: LocalStack, data: bytes, website: str, name: str = "piece.jpg") -> str:
    """Upload a photo the storefront has not seen through POST /image_similarity_search; its sha256."""
    answer = requests.post(
        f"{stack.url}/image_similarity_search",
        files={"file": (name, data, "image/jpeg")},
        data={"website": website},
        timeout=60,
    )
    assert answer.status_code == 200 and answer.json()["duplicate_found"] is False, answer.text
    return hashlib.sha256(data).hexdigest()


def api_tags(bucket: str, keys: list[str]) -> dict[str, Tags]:
    """These objects' tags, one GetObjectTagging each."""
    s3 = aws.client("s3")
    tags = {key: s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"] for key in keys}
    return {key: sorted((t["Key"], t["Value"]) for t in tag_set) for key, tag_set in tags.items()}


def api_objects(bucket: str) -> list[tuple[str, int, str]]:
    """The bucket's objects as list_objects_v2 answers them: key, size, ETag."""
    pages = aws.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [(item["Key"], item["Size"], item["ETag"]) for page in pages for item in page.get("Contents", [])]


def in_process_objects(bucket: str) -> list[tuple[str, int, str]] | None:
    """The same, from moto's S3 backend when moto runs in this process (its list_objects, which the API's
    listing calls); None when no backend here holds the bucket (moto elsewhere) or it changed mid-read."""
    from moto.s3.models import s3_backends

    for by_partition in list(s3_backends.values()):
        for backend in list(by_partition.values()):
            held = backend.buckets.get(bucket)
            if held is None:
                continue
            try:
                keys, _, _, _ = backend.list_objects(held, prefix=None, delimiter=None, marker=None, max_keys=None)
            except RuntimeError:  # written while read (dictionary changed size): ask the API
                return None
            return [(key.name, key.size, key.etag) for key in keys]
    return None


def scanned_items(table: str) -> list[dict[str, Any]]:
    """The table's items as Scan answers them, binary values as base64 text (as table_items reads them)."""
    pages = aws.client("dynamodb").get_paginator("scan").paginate(TableName=table)
    return [_binary_as_text(item, encode=True) for page in pages for item in page.get("Items", [])]


def canonical(rows: list[dict[str, Any]]) -> list[str]:
    """Records as comparable text: keys sorted, and the members of a set (SS, NS, BS) too."""

    def sort_sets(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: sorted(v) if k in ("SS", "NS", "BS") else sort_sets(v) for k, v in value.items()}
        if isinstance(value, list):
            return [sort_sets(v) for v in value]
        return value

    return sorted(json.dumps(sort_sets(row), sort_keys=True) for row in rows)


def fingerprint(with_tags: bool = False) -> dict[str, Any]:
    """Every store's content; object tags too when asked."""
    settings = get_settings()
    found: dict[str, Any] = {}
    for bucket in bucket_names(settings):
        listed = in_process_objects(bucket)
        listed = api_objects(bucket) if listed is None else listed
        keys = [key for key, _, _ in listed]
        tags: dict[str, Tags] = {}
        if with_tags:
            held = in_process_tags(bucket, keys)
            tags = api_tags(bucket, keys) if held is None else {key: sorted(t.items()) for key, t in held.items()}
        found[f"s3:{bucket}"] = sorted((key, size, etag, tags.get(key, [])) for key, size, etag in listed)
    for table in table_names(settings):
        found[f"dynamodb:{table}"] = items_digest(list(table_items(table)))
    found["milvus"] = vector_index.VectorIndex(settings.milvus_collection).count()
    search = opensearch_client()
    search.indices.refresh(index=settings.listings_index)
    hits = search.search(index=settings.listings_index, body={"size": 10_000, "version": True, "_source": False})
    found["opensearch"] = sorted((h["_id"], h["_version"]) for h in hits["hits"]["hits"])
    sfn = aws.client("stepfunctions")
    for machine in sfn.list_state_machines()["stateMachines"]:
        pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=machine["stateMachineArn"])
        found[f"stepfunctions:{machine['name']}"] = sorted(e["executionArn"] for p in pages for e in p["executions"])
    return found


def items_digest(items: list[dict[str, Any]]) -> str:
    return hashlib.sha256("\n".join(canonical(items)).encode()).hexdigest()


def changed(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The stores whose content differs."""
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))


class Settled:
    """The stores' fingerprint (tags too) once no asynchronous work is left, one read per case, not two.

    For the cases of one test function that run one after another on a stack nothing else uses between
    them (the parametrized cases of the bad-input modules), the stores after a case are the stores
    before the next: `before()` hands back what the previous case's `after()` read, and reads afresh
    when there is none, when another test function read last (its fixtures, or it, may have written
    since: `for_test` drops the reading), or when the previous case stopped before its `after()` (a
    failed assertion). A write is still caught by the case that made it."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.last: dict[str, Any] | None = None
        self.owner: object = None

    def for_test(self, function: object) -> Settled:
        if function is not self.owner:
            self.owner, self.last = function, None
        return self

    def before(self) -> dict[str, Any]:
        taken, self.last = self.last, None  # used once: a case that fails before after() leaves none
        return taken if taken is not None else self.read()

    def after(self) -> dict[str, Any]:
        self.last = self.read()
        return self.last

    def read(self) -> dict[str, Any]:
        settle(self.stack)  # no asynchronous work left that could write after the case
        return fingerprint(with_tags=True)
