"""Migration operations against the real emulators (moto DynamoDB, osmem-server OpenSearch)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from opensearchpy import OpenSearch

from listing_vision.observability import metrics
from listing_vision.realestate.features import SPLIT_FIELDS
from listing_vision.realestate.listings_index import BULK_ROUNDS, ListingsIndex
from listing_vision.realestate.migration import Migration
from listing_vision.realestate.phrase_store import StoredPhrase
from listing_vision.realestate.taxonomy import load_taxonomy
from listing_vision.realestate.vision_cache import CachedImage, VisionCache
from local.stack import LocalStack
from tests.faults import BulkRejectingProxy, Fault, FaultProxy
from tests.integration import migration_stores
from tests.integration.migration_stores import LISTINGS, all_sources

stores = migration_stores.stores  # a private index and cache table of demo listings
migration = migration_stores.migration  # the Migration over them


def test_cache_reads_go_in_chunks_of_100_and_retry_unprocessed_keys(
    local_stack: LocalStack, stores: tuple[str, str]
) -> None:
    _, table = stores
    cache = VisionCache(table=table)
    urls = [f"https://photos.example/x/{i}.jpg" for i in range(250)]
    for url in urls:
        cache.put(CachedImage(url, {"image_type": "interior", "features": ["tile floors"]}, image_hash="h"))
    # Given DynamoDB handing back the first chunk's keys unprocessed the first time it is read
    # (through a proxy; the chunks are read in parallel, so it is told by its keys, not its turn)
    proxy = FaultProxy(local_stack.moto_url).start()
    calls: list[int] = []
    handed_back: list[bool] = []

    def partial_answer(method: str, path: str, headers: dict[str, str], body: bytes) -> bool:
        if headers.get("X-Amz-Target", "").endswith(".BatchGetItem"):
            keys = json.loads(body)["RequestItems"][table]["Keys"]
            calls.append(len(keys))
            if keys[0] == {"image_url": {"S": urls[0]}} and not handed_back:
                handed_back.append(True)
                return True
        return False

    unprocessed = {
        "Responses": {table: []},
        "UnprocessedKeys": {table: {"Keys": [{"image_url": {"S": u}} for u in urls[:100]]}},
    }
    proxy.add(
        Fault(
            partial_answer,
            200,
            json.dumps(unprocessed).encode(),
            headers={"Content-Type": "application/x-amz-json-1.0"},
            times=None,
        )
    )
    client = boto3.client(
        "dynamodb",
        endpoint_url=proxy.url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    slept: list[float] = []
    reader = VisionCache(table=table, client=client, sleep=slept.append)
    try:
        # When 250 URLs (with duplicates and blanks) are read
        found = reader.get_many(urls + urls[:40] + ["", urls[7]])
    finally:
        proxy.stop()
    # Then every item arrives, in chunks of at most 100, the unprocessed ones retried after a backoff
    assert set(found) == set(urls)
    assert sorted(calls) == [50, 100, 100, 100] and sum(calls) == 250 + 100
    assert reader.unprocessed_retries == 1 and len(slept) == 1 and 0 < slept[0] <= 0.05
    assert found[urls[0]].analysis == {"image_type": "interior", "features": ["tile floors"]}


def rejected_metric() -> float:
    return sum(metrics.metric_set.get("BulkRejected", {}).get("Value", []))


def test_bulk_rejections_back_off_with_jitter_and_are_retried_then_bounded(
    local_stack: LocalStack, migration: Migration
) -> None:
    before = all_sources(migration)
    zpids = sorted(before)
    metrics.clear_metrics()
    # Given a domain whose write queue is full for a moment: the first 3 actions of each of the next
    # 2 bulk requests rejected (429, es_rejected_execution_exception), never reaching the engine
    proxy = BulkRejectingProxy(local_stack.opensearch_url, reject=3, requests=2).start()
    slept: list[float] = []
    busy = Migration(
        ListingsIndex(OpenSearch(hosts=[proxy.url]), migration.listings.name, sleep=slept.append),
        migration.cache,
        migration.phrases,
        migration.artifacts_bucket,
        migration.records,
    )
    try:
        # When a batch is migrated in bulks of 5
        report = busy.execute_batch(zpids, bulk_size=5)
    finally:
        proxy.stop()
    # Then the 6 rejected updates were sent again after one jittered backoff, and every listing is written
    assert len(proxy.rejected) == 6 and not report.failed
    assert len(slept) == 1 and 0 <= slept[0] <= 0.5
    assert rejected_metric() == 6
    after = all_sources(migration)
    written = [z for z in zpids if all(f in after[z] for f in SPLIT_FIELDS)]
    assert set(proxy.rejected) <= set(written) and report.counts["updated"] == len(written)
    # and nothing but the three fields changed
    assert all({k: v for k, v in after[z].items() if k not in SPLIT_FIELDS} == before[z] for z in zpids)

    # Given the domain rejecting every bulk request's first action, for good
    migration.rollback("remove")
    metrics.clear_metrics()
    proxy = BulkRejectingProxy(local_stack.opensearch_url, reject=1, requests=1_000).start()
    slept.clear()
    busy.listings.client = OpenSearch(hosts=[proxy.url])
    try:
        report = busy.execute_batch(zpids, bulk_size=5)
    finally:
        proxy.stop()
    # Then the rejected listing is retried a bounded number of times, each after a longer possible
    # wait, and reported failed (the state machine retries the batch later); the others are written
    first = proxy.rejected[0]
    assert proxy.rejected.count(first) == BULK_ROUNDS and len(slept) == BULK_ROUNDS - 1
    assert all(0 <= wait <= 0.5 * 2**n for n, wait in enumerate(slept))
    assert report.failed[first].startswith("429") and rejected_metric() >= BULK_ROUNDS
    after = all_sources(migration)
    assert not any(f in after[first] for f in SPLIT_FIELDS)
    metrics.clear_metrics()


def test_coverage_and_dry_run_write_nothing(migration: Migration) -> None:
    before = all_sources(migration)
    coverage = migration.coverage(sample=None)
    assert coverage["sampled"] == LISTINGS
    assert coverage["full"] + coverage["partial"] + coverage["none"] == LISTINGS
    dry = migration.dry_run(sample=None)
    assert {row["status"] for row in dry["listings"]} <= {"would_update", "would_skip_no_cache"}
    one = next(row for row in dry["listings"] if row["status"] == "would_update")
    assert set(one["after"]) == set(SPLIT_FIELDS) and one["before"]["visual_features_text"]
    assert all_sources(migration) == before
    assert dry["written"] == 0


def test_a_concurrent_write_is_never_clobbered(migration: Migration) -> None:
    # Given a listing read by the migration, then changed by someone else (a price update)
    zpid = sorted(all_sources(migration))[0]
    listings = migration.listings
    listings.ensure_split_mapping()
    stale = listings.get_docs([zpid])[zpid]
    listings.client.update(index=listings.name, id=zpid, body={"doc": {"price": 123_456}}, refresh=True)
    # When the migration writes from its stale read, the guard refuses it
    results = listings.update_fields_guarded([(stale, {"exterior_visual_features": "x"})])
    assert results[0].status == 409
    # And the batch operation re-reads, recomputes and succeeds without losing the other write
    report = migration.execute_batch([zpid])
    source = all_sources(migration)[zpid]
    assert source["price"] == 123_456 and all(f in source for f in SPLIT_FIELDS)
    assert report.counts["updated"] == 1


def test_mapping_update_is_idempotent(migration: Migration) -> None:
    listings = migration.listings
    for _ in range(3):
        listings.ensure_split_mapping()
    properties = listings.client.indices.get_mapping(index=listings.name)[listings.name]["mappings"]["properties"]
    assert all(properties[f] == {"type": "text"} for f in SPLIT_FIELDS)


def test_execute_is_resumable_and_force_recomputes(migration: Migration) -> None:
    first = migration.execute(batch_size=7)
    assert first["counts"]["updated"] + first["counts"].get("skipped_no_cache", 0) == LISTINGS
    again = migration.execute(batch_size=7)
    assert again["counts"].get("updated", 0) == 0 and again["counts"]["skipped_migrated"] == first["counts"]["updated"]
    # Forced, every listing is recomputed; those that come out the same are not written
    forced = migration.execute(batch_size=7, force=True)
    assert forced["counts"]["unchanged"] == first["counts"]["updated"] and "updated" not in forced["counts"]


def test_coverage_counts_phrases_by_who_classes_them_and_the_split_uses_stored_classes(migration: Migration) -> None:
    taxonomy = load_taxonomy()
    # Given a listing, and then its photos showing two more phrases the taxonomy does not know
    zpid = sorted(all_sources(migration))[0]
    urls = [v["image_url"] for v in all_sources(migration)[zpid]["image_vectors"]]
    before = migration.coverage(zpids=[zpid])["phrases"]
    offline_before = migration.execute_batch([zpid], force=True).counts["phrases_offline_rule"]
    unknown = {"image_type": "exterior", "features": ["glass solarium", "koi bridge"], "confidence": "high"}
    migration.cache.put(CachedImage(urls[0], unknown, image_hash="h"))
    coverage = migration.coverage(zpids=[zpid])
    assert coverage["phrases"]["unclassified"] == before["unclassified"] + 2
    assert coverage["phrases"]["by_taxonomy"] >= 3 and coverage["phrases"]["classified_pct"] < 100
    # Without stored classes the offline rule keeps them out of the amenities, and the batch says so
    report = migration.execute_batch([zpid], force=True)
    assert report.counts["phrases_offline_rule"] == offline_before + 2
    assert "solarium" not in all_sources(migration)[zpid]["amenities_visual_features"]
    # Once a class is stored (as classify-phrases does), coverage counts it and a forced run uses it
    migration.phrases.put_many(
        [StoredPhrase(taxonomy.key("glass solarium"), "glass solarium", "amenity", "llm", "outdoor living", "m")]
    )
    coverage = migration.coverage(zpids=[zpid])
    assert coverage["phrases"]["cached_by_llm"] == 1
    assert coverage["phrases"]["unclassified"] == before["unclassified"] + 1
    assert coverage["phrase_catalogue"]["classified_by_llm"] >= 1
    assert migration.execute_batch([zpid], force=True).counts["updated"] == 1
    assert "glass solarium" in all_sources(migration)[zpid]["amenities_visual_features"]


def test_the_cli_runs_the_migration_through_the_stacks_state_machine_and_function(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    from listing_vision.realestate import migrate
    from local import demo_listings

    def cli(*args: str) -> tuple[int, dict[str, Any]]:
        code = migrate.main(["--via-stepfunctions", *args])
        # The CLI's answer is the last document (the functions' metric lines are printed here too)
        lines = capsys.readouterr().out.splitlines()
        start = max(i for i, line in enumerate(lines) if line == "{")
        return code, json.loads("\n".join(lines[start:]))

    # Given demo listings in the stack's own index and vision cache, and a backup of them
    demo_listings.load(40, seed=9)
    backup = "s3://artifacts/backups/cli-test.jsonl"
    code, saved = cli("backup", "--destination", backup)
    # (the backup fans out too: one part per batch of the Map, then the manifest)
    assert code == 0 and saved["count"] >= 40 and saved["parts"] == saved["batches"] >= 1, saved
    # When the CLI runs execute as an execution of the deployed state machine (the migration function)
    _, result = cli("execute", "--batch-size", "10", "--backup", backup)
    # Then every batch ran through Plan -> distributed Map -> Verify and none failed
    assert result["batches"] >= 4 and result["batches_failed"] == 0, result
    assert result["counts"].get("updated", 0) + result["counts"].get("skipped_migrated", 0) >= 35
    assert result["verify"]["has_all_three"] >= 35 and result["verify"]["other_fields_changed"] == 0
    # And a rollback restoring the backup, through the same state machine, gives back exactly the backup
    code, rolled = cli("rollback", "--mode", "restore", "--backup", backup)
    assert code == 0 and rolled["proof"]["identical"] is True, rolled


def statuses(dry: dict[str, Any]) -> list[str]:
    return [row["status"] for row in dry["listings"]]


def test_a_run_over_chosen_listings_is_verified_on_them_and_dry_run_says_what_execute_would_do(
    migration: Migration,
) -> None:
    # Given the demo listings, none migrated, and two of them with cached analyses
    chosen = [row["zpid"] for row in migration.dry_run(sample=None)["listings"] if row["status"] == "would_update"][:2]
    assert len(chosen) == 2 and statuses(migration.dry_run(zpids=chosen)) == ["would_update"] * 2
    # When execute migrates those two only
    result = migration.execute(zpids=chosen)
    assert result["counts"]["updated"] == 2, result
    # Then verify of the chosen listings passes (2 of 2 with all three fields), while the index as a whole does not
    report = migration.verify(zpids=chosen)
    assert report["passed"] is True, report["failures"]
    assert (report["total"], report["has_all_three"], report["not_found"]) == (2, 2, 0)
    assert {spot["zpid"] for spot in report["spot_checks"]} == set(chosen)
    assert migration.verify()["passed"] is False
    # And a dry run of them now says what execute would do: skip them (migrated); forced, leave them as they are
    before = all_sources(migration)
    assert statuses(migration.dry_run(zpids=chosen)) == ["would_skip_migrated"] * 2
    assert statuses(migration.dry_run(zpids=chosen, force=True)) == ["would_leave_unchanged"] * 2
    assert migration.execute(zpids=chosen)["counts"]["skipped_migrated"] == 2
    forced = migration.execute(zpids=chosen, force=True)["counts"]
    assert forced["unchanged"] == 2 and "updated" not in forced, forced
    assert all_sources(migration) == before


def test_the_cli_verifies_a_small_run_on_its_zpids(local_stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
    from listing_vision.realestate import migrate
    from local import demo_listings

    def cli(*args: str) -> tuple[int, dict[str, Any]]:
        code = migrate.main(list(args))
        lines = capsys.readouterr().out.splitlines()
        start = max(i for i, line in enumerate(lines) if line == "{")
        return code, json.loads("\n".join(lines[start:]))

    # Given 40 demo listings in the stack's own index, none migrated, and two of them with cached analyses
    demo_listings.load(40, seed=9)
    ids = [str(10_000_000 + number * 7 + 3) for number in range(40)]
    _, dry = cli("dry-run", "--zpids", ",".join(ids))
    chosen = [row["zpid"] for row in dry["listings"] if row["status"] == "would_update"][:2]
    assert len(chosen) == 2
    # When the small test run executes them, in this process and as a state machine execution
    code, here = cli("execute", "--zpids", ",".join(chosen))
    # Then it passes, verified on those two listings only
    assert code == 0 and here["passed"] is True, here["verify"]
    assert (here["verify"]["total"], here["verify"]["has_all_three"]) == (2, 2)
    code, sfn = cli("--via-stepfunctions", "execute", "--zpids", ",".join(chosen))
    assert code == 0 and sfn["passed"] is True and sfn["verify"]["total"] == 2, sfn
    code, verified = cli("verify", "--zpids", ",".join(chosen))
    assert code == 0 and verified["total"] == 2, verified
    # And verify on its own as a state machine execution fans out over them (a Map batch each part)
    code, fanned = cli("--via-stepfunctions", "verify", "--zpids", ",".join(chosen))
    assert code == 0 and fanned["passed"] is True and fanned["batches"] == 1, fanned
    assert {key: fanned["verify"][key] for key in verified if key != "spot_checks"} == {
        key: value for key, value in verified.items() if key != "spot_checks"
    }
    # And a dry run of them says execute would skip them
    _, again = cli("dry-run", "--zpids", ",".join(chosen))
    assert statuses(again) == ["would_skip_migrated"] * 2


@pytest.mark.parametrize(
    ("args", "rule"),
    [
        (["coverage", "--sample", "0"], "sample: Input should be greater than or equal to 1"),
        (["dry-run", "--sample", "-1"], "sample: Input should be greater than or equal to 1"),
        (["execute", "--batch-size", "0"], "batch_size: Input should be greater than or equal to 1"),
        (["execute", "--batch-size", "-5"], "batch_size: Input should be greater than or equal to 1"),
        (["execute", "--batch-size", "1001"], "batch_size: Input should be less than or equal to 1000"),
    ],
)
def test_an_option_out_of_range_is_a_usage_error_not_a_traceback(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str], args: list[str], rule: str
) -> None:
    from listing_vision.realestate import migrate

    # When the CLI is given an option the operation refuses (in this process as on Step Functions),
    # Then it exits 2 naming the option's rule, having done nothing
    with pytest.raises(SystemExit) as refused:
        migrate.main(args)
    assert refused.value.code == 2
    error = capsys.readouterr().err
    assert rule in error and "Traceback" not in error


def test_a_backup_that_is_not_there_or_not_in_s3_stops_the_run_before_anything_is_written(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from listing_vision.realestate import migrate
    from local import demo_listings

    # Given demo listings, none migrated by this test, and a backup location with a typo in it
    demo_listings.load(40, seed=9)
    migration = Migration.from_settings()
    before = all_sources(migration)
    typo = "s3://artifacts/backups/no-such-backup.jsonl"
    # When execute, verify and a restore name it in this process, Then each is a usage error naming the code
    for args in (
        ["execute", "--backup", typo],
        ["verify", "--backup", typo],
        ["rollback", "--mode", "restore", "--backup", typo],
    ):
        with pytest.raises(SystemExit) as refused:
            migrate.main(args)
        error = capsys.readouterr().err
        assert refused.value.code == 2 and "[backup_not_found]" in error and "Traceback" not in error, (args, error)
    # And as state machine executions each fails in its first task, the error named for it
    for args in (["execute", "--backup", typo], ["verify", "--backup", typo]):
        code = migrate.main(["--via-stepfunctions", *args])
        lines = capsys.readouterr().out.splitlines()
        failed = json.loads("\n".join(lines[max(i for i, line in enumerate(lines) if line == "{") :]))
        assert (code, failed["status"], failed["error"]) == (1, "FAILED", "BackupNotFound"), failed
        assert failed["message"].startswith("No backup at s3://artifacts/backups/no-such-backup.jsonl"), failed
        assert "cause" not in failed  # the function's stack trace stays in the execution's history
    # And a fanned-out backup to a path (each batch's own Lambda /tmp on AWS) is refused as well
    code = migrate.main(["--via-stepfunctions", "backup", "--destination", str(tmp_path / "b.jsonl")])
    lines = capsys.readouterr().out.splitlines()
    failed = json.loads("\n".join(lines[max(i for i, line in enumerate(lines) if line == "{") :]))
    assert (code, failed["error"]) == (1, "BackupNotInS3") and "is not an S3 location" in failed["message"], failed
    assert list(tmp_path.iterdir()) == []
    # Then no listing was written
    assert all_sources(migration) == before
