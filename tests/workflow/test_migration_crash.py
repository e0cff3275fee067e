"""A migration batch dying right after each of its writes, with the stores kept, as AWS fails
(tests/crash.py kills the batch's function on the local stack; the state machine is the deployed
construct's, run by moto's interpreter).

A batch's writes, recorded from a run that nobody kills: the guarded update of its listings (one
`_bulk` request: OpenSearch receives it whole or not at all, so there is no kill point inside it),
then the split records of those listings (one BatchWriteItem), then the batch's record under the
run (S3). The batch's function dies right after each in turn;
Lambda answers `Runtime.ExitError`, Step Functions' Retry runs the batch again, and then:

- the run succeeds and verify passes;
- every listing of the batch is migrated exactly once (its document's version went up by one: the
  retry skips what the dead attempt migrated and recorded, and re-splits without writing what it
  migrated but did not record; nothing is written twice) and none is lost;
- the batch's record says what the retry did.

Each kill point and what it left before the retry are printed as a table (`pytest -s`).
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Iterator
from typing import Any

import pytest

from listing_vision import aws
from listing_vision.realestate.features import SPLIT_FIELDS
from local.stack import LocalStack
from tests.crash import dying, table
from tests.workflow import migration_sandbox
from tests.workflow.migration_sandbox import Sandbox, sources

sandbox = migration_sandbox.sandbox  # the private index, cache and state machine of the workflow tests
BATCH = 4
OPERATION: contextvars.ContextVar[str] = contextvars.ContextVar("operation", default="")
BATCH_WRITES = ["POST /{index}/_bulk", "BatchWriteItem", "PutObject artifacts/00000.json"]


@pytest.fixture
def batches(sandbox: Sandbox, local_stack: LocalStack) -> Iterator[str]:
    """The sandbox's function, its invocations named by their operation (the kill only counts
    `execute_batch` ones, not the plan's or the finish's)."""
    function = f"regenerate-{sandbox.index.rsplit('-', 1)[-1]}"
    handler = local_stack.router.handler_for(function)

    def named(event: dict[str, Any], context: Any) -> Any:
        token = OPERATION.set(str(event.get("operation", "")))
        try:
            return handler(event, context)
        finally:
            OPERATION.reset(token)

    local_stack.router.register(function, named)
    yield function
    local_stack.router.register(function, handler)


def versions(box: Sandbox, zpids: list[str]) -> dict[str, int]:
    found = box.migration().listings.client.mget(index=box.index, body={"ids": zpids})["docs"]
    return {doc["_id"]: doc["_version"] for doc in found if doc.get("found")}


def batch_records() -> int:
    listing = aws.client("s3").list_objects_v2(Bucket="artifacts", Prefix="migrations/")
    return sum("/batches/" in item["Key"] for item in listing.get("Contents", []))


def migrated(box: Sandbox, zpids: list[str]) -> int:
    found = sources(box)
    return sum(all(f in found[z] for f in SPLIT_FIELDS) for z in zpids)


def test_a_batch_killed_after_any_write_resumes_to_the_same_verified_state(sandbox: Sandbox, batches: str) -> None:
    migration = sandbox.migration()
    backup = migration.backup(f"s3://artifacts/test/{sandbox.index}-crash.jsonl")["location"]
    before = sources(sandbox)
    # Given groups of listings that all have their images analysed (so each batch migrates them all)
    cached = [z for z in sorted(before) if migration.cache.get_many(u["image_url"] for u in before[z]["image_vectors"])]
    groups = [cached[i : i + BATCH] for i in range(0, len(cached) - BATCH + 1, BATCH)]
    expected = [write.format(index=sandbox.index) for write in BATCH_WRITES]

    def execute(zpids: list[str]) -> dict[str, Any]:
        run = sandbox.run({"operation": "execute", "batch_size": BATCH, "zpids": zpids, "backup": backup})
        assert run["status"] == "SUCCEEDED", run
        return dict(json.loads(run["output"]))

    def a_batch() -> bool:
        return OPERATION.get() == "execute_batch"

    # And a batch's writes, recorded from a run that nobody kills
    with dying(batches, after=None, when=a_batch) as recorded:
        clean = execute(groups[0])
    assert [[w.rsplit("/", 1)[-1] if w.startswith("PutObject") else w for w in a] for a in recorded.writes] == [
        [expected[0], expected[1], "00000.json"]
    ]
    assert clean["passed"] and clean["counts"]["updated"] == BATCH
    rows = []
    for kill_point, group in enumerate(groups[1 : len(BATCH_WRITES) + 1], start=1):
        versions_before, records_before = versions(sandbox, group), batch_records()

        def probe(group: list[str] = group, records_before: int = records_before) -> dict[str, int]:
            return {"migrated": migrated(sandbox, group), "records": batch_records() - records_before}

        # When the batch's function dies right after its k-th write, and Step Functions retries it
        with dying(batches, after=kill_point, probe=probe, when=a_batch) as death:
            result = execute(group)
        # Then the run succeeded and verify passed
        assert death.died == 1 and len(death.writes[0]) == kill_point
        assert result["passed"] is True and result["verify"]["passed"] is True and result["batches_failed"] == 0
        # And every listing is migrated, each written exactly once (its version up by one), none lost
        assert migrated(sandbox, group) == BATCH
        assert versions(sandbox, group) == {z: v + 1 for z, v in versions_before.items()}
        # And the batch's record says what the retry did: the listings the dead attempt migrated,
        # skipped when their split was recorded, else re-split to the same fields and only recorded
        counts = result["counts"]
        left = death.left[0]
        assert counts.get("updated", 0) == BATCH - left["migrated"]
        assert counts.get("skipped_migrated", 0) + counts.get("unchanged", 0) == left["migrated"]
        assert counts.get("recorded", 0) == BATCH - counts.get("skipped_migrated", 0)
        rows.append(
            (
                str(kill_point),
                death.writes[0][-1],
                f"{left['migrated']}/{BATCH} listings migrated, {left['records']} batch record",
                f"verify passed, updated {counts.get('updated', 0)}, skipped {counts.get('skipped_migrated', 0)}, "
                f"same split recorded {counts.get('unchanged', 0)}, "
                f"each version +1, retry wrote {len(death.writes[1])}",
            )
        )
    print("\n" + table(rows, ("kill", "right after", "left before the retry", "after Step Functions' Retry")))
    # And nothing but the three fields changed anywhere; the whole index still verifies
    after = sources(sandbox)
    assert all({k: v for k, v in after[z].items() if k not in SPLIT_FIELDS} == before[z] for z in before)
