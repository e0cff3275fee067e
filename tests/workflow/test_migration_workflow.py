"""The migration's state machine, synthesized from the CDK construct and executed by moto's
interpreter, each task answered by the real regenerate handler code, with faults injected on the
wire: a throttled batch is retried, a poisoned batch is reported without failing the rest, a run
killed half-way completes on rerun, and nothing but the three fields ever changes."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from doubles.loopback import LoopbackServer, openai_completion
from evaluation.legacy_split import LegacyVocabulary
from listing_vision import aws
from listing_vision.realestate.backups import BackupReader
from listing_vision.realestate.features import SPLIT_FIELDS, split_visual_features
from listing_vision.realestate.migration import Migration
from listing_vision.realestate.vision_cache import CachedImage
from tests.faults import (
    DYNAMODB_THROTTLED,
    OPENSEARCH_TOO_MANY,
    OPENSEARCH_UNAVAILABLE,
    Fault,
    dynamodb_operation,
    opensearch_path,
)
from tests.workflow import migration_sandbox
from tests.workflow.migration_sandbox import LISTINGS, Sandbox, dynamodb_batch_get, sources

sandbox = migration_sandbox.sandbox  # the private index, cache and state machine


def test_throttled_batches_are_retried_and_a_poisoned_batch_is_reported(sandbox: Sandbox) -> None:
    # Given a backup, DynamoDB throttling the first reads hard enough to beat the client's own retries,
    # and one listing whose every write fails (a poisoned batch)
    backup = f"s3://artifacts/test/{sandbox.index}.jsonl"
    assert sandbox.run({"operation": "backup", "destination": backup})["status"] == "SUCCEEDED"
    before = sources(sandbox)
    poisoned = sorted(before)[17]
    throttled = sorted(before)[2]  # in the first batch; both of its client attempts are refused
    sandbox.dynamodb_proxy.add(Fault(dynamodb_batch_get(throttled), 400, DYNAMODB_THROTTLED, times=2))
    sandbox.opensearch_proxy.add(
        Fault(opensearch_path("_bulk", poisoned.encode()), 500, OPENSEARCH_UNAVAILABLE, times=None)
    )
    # When the migration runs as a state machine, in batches of 5
    run = sandbox.run({"operation": "execute", "batch_size": 5, "backup": backup})
    # Then the run finishes, the throttled batch having been retried by Step Functions
    assert run["status"] == "SUCCEEDED", run
    assert sandbox.raised.count("Throttled") == 1
    result = json.loads(run["output"])
    # And the poisoned batch is reported (after its retries) without failing the others
    assert result["batches"] == 8 and result["batches_failed"] == 1
    assert sandbox.raised.count("BatchFailed") == 3  # the first try and Step Functions' two retries
    failed = result["failed_batches"][0]
    assert failed["zpids"] == 5 and failed["error"] == "BatchFailed"
    # And its child execution failed, which is what the Map's tolerated failure percentage counts
    sfn = aws.client("stepfunctions")
    (map_run,) = sfn.list_map_runs(executionArn=run["executionArn"])["mapRuns"]
    counts = sfn.describe_map_run(mapRunArn=map_run["mapRunArn"])["itemCounts"]
    assert (counts["failed"], counts["succeeded"]) == (1, 7)
    after = sources(sandbox)
    migrated = {zpid for zpid, source in after.items() if all(f in source for f in SPLIT_FIELDS)}
    assert poisoned not in migrated
    assert len(migrated) == result["counts"]["updated"] >= LISTINGS - 5 - 3
    # And, below 90 %, verify says so
    assert result["verify"]["passed"] is False and result["passed"] is False
    # And nothing but the three fields changed anywhere
    assert result["verify"]["other_fields_changed"] == 0
    assert all({k: v for k, v in after[z].items() if k not in SPLIT_FIELDS} == before[z] for z in before)
    # When the poison is gone and the run is repeated, it completes and passes
    sandbox.opensearch_proxy.faults.clear()
    rerun = json.loads(sandbox.run({"operation": "execute", "batch_size": 5, "backup": backup})["output"])
    assert rerun["batches_failed"] == 0 and rerun["counts"]["updated"] == 5 - (poisoned not in before)
    assert rerun["verify"]["passed"] is True


def test_each_batch_verifies_its_part_and_finish_only_adds_them_up_reading_no_listing(sandbox: Sandbox) -> None:
    # Given a backup, then the index changing since: a listing edited in a field the migration never
    # writes, one deleted, one added (between two others), and one whose images are not cached (it
    # will miss the three fields)
    backup = f"s3://artifacts/test/{sandbox.index}-parts.jsonl"
    assert sandbox.run({"operation": "backup", "destination": backup})["status"] == "SUCCEEDED"
    ids = sorted(sources(sandbox))
    changed, deleted, uncached = ids[30], ids[20], ids[9]
    added = f"{ids[12]}_new"  # sorts right after ids[12]
    client = sandbox.migration().listings.client
    client.update(index=sandbox.index, id=changed, body={"doc": {"agent_note": "edited after the backup"}})
    client.delete(index=sandbox.index, id=deleted)
    client.index(index=sandbox.index, id=added, body=sources(sandbox)[ids[12]])
    for image in sources(sandbox)[uncached]["image_vectors"]:
        aws.client("dynamodb").delete_item(TableName=sandbox.table, Key={"image_url": {"S": image["image_url"]}})
    # And every OpenSearch request noted in the order it comes, beside the tasks' starts
    sandbox.opensearch_proxy.add(
        Fault(lambda m, p, h, b: sandbox.log.append(f"os {m} {p} {b.decode()[:300]}") is not None, 500, b"")
    )
    # When the migration runs as a state machine, in batches of 5, with the backup
    sandbox.log.clear()
    run = sandbox.run({"operation": "execute", "batch_size": 5, "backup": backup})
    assert run["status"] == "SUCCEEDED", run
    result = json.loads(run["output"])
    report = result["verify"]
    finish = sandbox.log[sandbox.log.index("task finish") :]  # what the Verify state asked
    # Then verify reports every change since the backup, each found by the batch whose part holds it
    assert report["other_fields_changed"] == 1 and report["other_fields_changed_sample"] == [changed]
    assert report["listings_lost_since_backup"] == 1 and report["listings_not_in_backup"] == 1
    assert report["passed"] is False and result["passed"] is False
    # And the listing missing the three fields is counted as missing them
    after = sources(sandbox)
    assert not any(name in after[uncached] for name in SPLIT_FIELDS)
    assert report["total"] == len(after) == LISTINGS
    assert report["has_all_three"] == sum(all(f in s for f in SPLIT_FIELDS) for s in after.values()) < LISTINGS
    for name in SPLIT_FIELDS:
        assert report[f"has_{name.split('_')[0]}"] == sum(name in s for s in after.values())
    # And the report is the one a single pass over the whole index gives, spot checks included
    assert report == sandbox.migration().verify_one_pass(backup, spot_checks=10)
    assert len(report["spot_checks"]) == 10
    # And finish read no listing: after its start, no mget and only searches of no hits (the counts)
    assert "task finish" not in finish[1:] and not [line for line in finish if "_mget" in line]
    searches = [line for line in finish if "_search" in line]
    assert searches and all('"size":0,' in line.replace(" ", "") for line in searches), searches
    # When the fields are removed again through the state machine, proved against the backup
    sandbox.log.clear()
    rolled = json.loads(sandbox.run({"operation": "rollback", "backup": backup, "batch_size": 5})["output"])
    finish = sandbox.log[sandbox.log.index("task finish") :]
    # Then each batch's part of the proof finds the same changes, and the proof is the one-pass proof
    proof = rolled["proof"]
    assert proof["identical"] is False and proof["differing"] == [changed] and proof["missing"] == [deleted]
    assert proof["not_in_backup"] == 1 and proof["compared"] == LISTINGS
    migration = sandbox.migration()
    assert proof == migration.compare_with_backup(BackupReader(backup), ignore_split=True)
    # And that finish read no listing either
    assert not [line for line in finish if "_mget" in line or "_search" in line], finish


def test_a_run_killed_half_way_completes_on_rerun_and_changes_nothing_else(sandbox: Sandbox) -> None:
    migration = sandbox.migration()
    backup = migration.backup(f"s3://artifacts/test/{sandbox.index}-kill.jsonl")["location"]
    before = sources(sandbox)

    # Given a run killed after two of its batches
    class Killed(Exception):
        pass

    done = []

    def kill_after_two(count: int) -> None:
        done.append(count)
        if len(done) == 2:
            raise Killed

    with pytest.raises(Killed):
        migration.execute(batch_size=8, progress=kill_after_two)
    half = sources(sandbox)
    assert sum(all(f in s for f in SPLIT_FIELDS) for s in half.values()) == 16 - sum(
        1
        for z in sorted(before)[:16]
        if not migration.cache.get_many(u["image_url"] for u in before[z]["image_vectors"])
    )
    # When it is rerun through the state machine, with OpenSearch answering 429 and 503 now and then
    sandbox.opensearch_proxy.add(Fault(opensearch_path("_mget"), 429, OPENSEARCH_TOO_MANY, times=2))
    sandbox.opensearch_proxy.add(Fault(opensearch_path("_bulk"), 503, OPENSEARCH_UNAVAILABLE, times=1))
    sandbox.dynamodb_proxy.add(Fault(dynamodb_operation("BatchGetItem"), 400, DYNAMODB_THROTTLED, times=1))
    run = sandbox.run({"operation": "execute", "batch_size": 8, "backup": backup})
    result = json.loads(run["output"])
    # Then it completes: what was done is skipped, the rest migrated, verify passes
    assert result["batches_failed"] == 0
    assert result["counts"]["skipped_migrated"] == sum(all(f in s for f in SPLIT_FIELDS) for s in half.values())
    assert result["verify"]["passed"] is True and result["verify"]["other_fields_changed"] == 0
    # And every listing's source equals the backup's but for the three fields
    restored = Migration.load_backup(backup)
    after = sources(sandbox)
    assert set(after) == set(restored)
    for zpid, source in after.items():
        assert {k: v for k, v in source.items() if k not in SPLIT_FIELDS} == restored[zpid]
    # And a rollback restoring the backup, through the state machine, proves the sources identical
    rolled = json.loads(
        sandbox.run({"operation": "rollback", "mode": "restore", "backup": backup, "batch_size": 8})["output"]
    )
    assert rolled["proof"]["identical"] is True and rolled["counts"]["rolled_back"] > 0
    assert sources(sandbox) == before


def test_phrases_classified_once_then_a_forced_run_refreshes_the_amenities_safely(
    sandbox: Sandbox, provider_env: Callable[..., None]
) -> None:
    # Given listings migrated by the split before the taxonomy (29 words), and a photo showing a phrase
    # the taxonomy does not know
    migration = sandbox.migration()
    migration.listings.ensure_split_mapping()
    docs = migration.listings.get_docs(sorted(sources(sandbox)))
    cached = migration.cache.get_many(url for doc in docs.values() for url in doc.image_urls)
    legacy = [
        (doc, split_visual_features([cached[u].analysis for u in doc.image_urls if u in cached], LegacyVocabulary()))
        for doc in docs.values()
    ]
    migration.listings.update_fields_guarded([(doc, s.as_fields()) for doc, s in legacy])
    zpid = sorted(docs)[0]
    first_url = docs[zpid].image_urls[0]
    analysis = {"image_type": "exterior", "features": ["glass solarium", "front porch"], "confidence": "high"}
    migration.cache.put(CachedImage(first_url, analysis, image_hash="h"))
    model = LoopbackServer(
        {
            "/v1/chat/completions": lambda request: openai_completion(
                json.dumps(
                    {
                        "verdicts": [
                            {"phrase": p, "label": "amenity", "facet": "outdoor living"}
                            if p == "glass solarium"
                            else {"phrase": p, "label": "interior", "facet": None}
                            for p in [
                                json.loads(line)["phrase"]
                                for line in request.json()["messages"][1]["content"].splitlines()
                                if line.startswith("{")
                            ]
                        ]
                    }
                )
            )
        }
    ).start()
    provider_env(OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=f"{model.url}/v1")
    try:
        # When classify_phrases runs as a state machine execution (a parallel scan of the cache), twice
        first = json.loads(sandbox.run({"operation": "classify_phrases", "segments": 3})["output"])
        asked = len(model.calls("/v1/chat/completions"))
        second = json.loads(sandbox.run({"operation": "classify_phrases", "segments": 3})["output"])
    finally:
        model.stop()
    # Then each unknown phrase was asked once, and the second run asked nothing
    assert first["passed"] is True and first["provider"] == "openai" and first["amenities_found"] == 1
    assert first["classified"] == first["unknown"] and second["to_classify"] == 0
    assert len(model.calls("/v1/chat/completions")) == asked >= 1
    # When the migration is forced, with a backup taken first
    backup = f"s3://artifacts/test/{sandbox.index}-refresh.jsonl"
    assert sandbox.run({"operation": "backup", "destination": backup})["status"] == "SUCCEEDED"
    before = sources(sandbox)
    run = json.loads(sandbox.run({"operation": "execute", "force": True, "batch_size": 8, "backup": backup})["output"])
    # Then the amenities are refreshed where the taxonomy or the stored classes differ, nothing else changes,
    # and verify passes
    after = sources(sandbox)
    changed = {
        z for z in after if after[z].get("amenities_visual_features") != before[z].get("amenities_visual_features")
    }
    assert run["passed"] is True and run["verify"]["other_fields_changed"] == 0
    assert zpid in changed and "glass solarium" in after[zpid]["amenities_visual_features"]
    assert run["counts"]["updated"] >= len(changed) >= 1
    assert (
        run["counts"]["updated"] + run["counts"].get("unchanged", 0) + run["counts"].get("skipped_no_cache", 0)
        == LISTINGS
    )
    for z in after:
        assert {k: v for k, v in after[z].items() if k not in SPLIT_FIELDS} == {
            k: v for k, v in before[z].items() if k not in SPLIT_FIELDS
        }
    # And a restore from the backup, after an ingest update to one listing, puts every other listing
    # back exactly and leaves the updated one alone, naming it
    listings = sandbox.migration().listings
    newer = sorted(after)[3]
    listings.client.update(index=sandbox.index, id=newer, body={"doc": {"price": 7}}, refresh=True)
    updated = sources(sandbox)[newer]
    rolled = json.loads(sandbox.run({"operation": "rollback", "mode": "restore", "backup": backup})["output"])
    assert rolled["left_alone"] == [newer] and rolled["counts"]["changed_since_backup"] == 1
    assert rolled["proof"]["differing"] == [newer]
    restored = sources(sandbox)
    assert restored.pop(newer) == updated
    assert restored == {z: source for z, source in before.items() if z != newer}
