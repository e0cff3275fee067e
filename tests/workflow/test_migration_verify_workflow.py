"""The migration's verify and rollback on the state machine, by parts: verify on its own fans out and
writes nothing, a rollback of chosen listings proves those alone, and a listing uploaded mid-run
into a range already checked is in the verdict."""

from __future__ import annotations

import json

from listing_vision.embeddings.factory import get_embedder
from listing_vision.realestate import migration_progress
from listing_vision.realestate.backups import BackupReader
from listing_vision.realestate.features import SPLIT_FIELDS
from listing_vision.realestate.ingest import ListingDocument, ListingIngest
from tests.faults import Fault
from tests.workflow import migration_sandbox
from tests.workflow.migration_sandbox import LISTINGS, Sandbox, sources

sandbox = migration_sandbox.sandbox  # the private index, cache and state machine


def test_verify_on_its_own_fans_out_over_parts_writes_nothing_and_is_the_last_run(sandbox: Sandbox) -> None:
    # Given a backup, the index migrated in this process, then one listing edited in a field the
    # migration never writes (verify must find it) and every OpenSearch request noted
    backup = f"s3://artifacts/test/{sandbox.index}-verify.jsonl"
    migration = sandbox.migration()
    migration.backup(backup)
    migration.execute(batch_size=10)
    edited = sorted(sources(sandbox))[23]
    migration.listings.client.update(index=sandbox.index, id=edited, body={"doc": {"agent_note": "edited"}})
    before = sources(sandbox)
    sandbox.opensearch_proxy.add(
        Fault(lambda m, p, h, b: sandbox.log.append(f"os {m} {p} {b.decode()[:300]}") is not None, 500, b"")
    )
    # When verify runs on its own as a state machine execution, in parts of 5
    sandbox.log.clear()
    run = sandbox.run({"operation": "verify", "backup": backup, "batch_size": 5})
    assert run["status"] == "SUCCEEDED", run
    result = json.loads(run["output"])
    # Then it fanned out: a plan, a Map batch per part checking it, and finish adding the parts up
    tasks = [line for line in sandbox.log if line.startswith("task ")]
    assert tasks[0] == "task plan" and tasks[-1] == "task finish" and "task verify" not in tasks
    assert sorted(tasks[1:-1]) == ["task verify_batch"] * 8 and result["batches"] == 8
    # And the report is the one-pass report: the edited listing found, nothing else
    report = result["verify"]
    assert report == sandbox.migration().verify_one_pass(backup, spot_checks=10)
    assert report["other_fields_changed_sample"] == [edited] and result["passed"] is False
    # And finish read no listing, and nothing was written
    finish = sandbox.log[sandbox.log.index("task finish") :]
    assert not [line for line in finish if "_mget" in line], finish
    assert not [line for line in sandbox.log if "_bulk" in line or "_update" in line]
    assert sources(sandbox) == before
    # And GET /listings/migration shows it as the last run, with verify's fields
    shown = migration_progress.last_run()
    assert shown is not None and (shown["run_id"], shown["operation"]) == (result["run_id"], "verify")
    assert shown["passed"] is False and shown["batches_done"] == 8
    assert shown["verify"] == {key: report[key] for key in migration_progress.VERIFY_SHOWN}


def test_a_rollback_of_chosen_zpids_proves_those_listings_only(sandbox: Sandbox) -> None:
    # Given a backup, then every listing migrated (each now differs from the backup in the three
    # fields), and another listing edited since
    backup = f"s3://artifacts/test/{sandbox.index}-chosen.jsonl"
    migration = sandbox.migration()
    migration.backup(backup)
    migration.execute(batch_size=10)
    ids = sorted(sources(sandbox))
    chosen, edited = [ids[3], ids[17], ids[31]], ids[8]
    migration.listings.client.update(index=sandbox.index, id=edited, body={"doc": {"agent_note": "edited"}})
    migrated = sources(sandbox)
    saved = dict(BackupReader(backup).rows())
    assert all(migrated[zpid] != saved[zpid] for zpid in chosen)
    sandbox.opensearch_proxy.add(Fault(lambda m, p, h, b: sandbox.log.append(f"os {m} {p}") is not None, 500, b""))
    # When those three are restored from the backup through the state machine, in batches of 2
    sandbox.log.clear()
    run = sandbox.run({"operation": "rollback", "mode": "restore", "backup": backup, "zpids": chosen, "batch_size": 2})
    assert run["status"] == "SUCCEEDED", run
    asked = list(sandbox.log)  # what the tasks asked (the test's own reads come after)
    result = json.loads(run["output"])
    # Then the proof covers those three listings, identical to the backup (the rest of the index,
    # migrated and edited, is not theirs to prove)
    assert result["counts"]["rolled_back"] == 3
    assert result["proof"] == {
        "identical": True,
        "compared": 3,
        "differing": [],
        "differing_count": 0,
        "missing": [],
        "missing_count": 0,
        "not_in_backup": 0,
    }
    after = sources(sandbox)
    assert all(after[zpid] == saved[zpid] for zpid in chosen)
    assert all(after[zpid] == migrated[zpid] for zpid in ids if zpid not in chosen)
    # And no task read the index beyond them: no search at all, only reads by id
    assert not [line for line in asked if "_search" in line], asked
    # And in this process the same rollback proves the same, reading the same listings
    migration.execute(zpids=chosen)
    here = migration.rollback("restore", backup=backup, zpids=chosen, batch_size=2)
    assert here["proof"] == result["proof"]


def test_a_listing_uploaded_mid_run_into_a_checked_range_is_in_verify_s_verdict(sandbox: Sandbox) -> None:
    # Given a backup, and an upload that lands once every batch has checked its part: a new listing
    # whose id sorts into the first batch's range, ingested as uploads are (its photos cached)
    backup = f"s3://artifacts/test/{sandbox.index}-upload.jsonl"
    assert sandbox.run({"operation": "backup", "destination": backup})["status"] == "SUCCEEDED"
    ids = sorted(sources(sandbox))
    uploaded = f"{ids[0]}_new"  # after ids[0], before ids[1]: inside the first part, checked long before

    def upload() -> None:
        migration = sandbox.migration()
        stores = (migration.cache, migration.phrases, migration.listings, migration.records)
        photos = [image["image_url"] for image in sources(sandbox)[ids[0]]["image_vectors"]]
        document = {"zpid": uploaded, "image_urls": photos, "price": 1}
        outcome = ListingIngest(get_embedder(), None, *stores).ingest(ListingDocument.model_validate(document))
        assert outcome.status == "indexed" and not outcome.pending

    sandbox.before["finish"] = upload
    # When the migration runs as a state machine, in batches of 5, with the backup
    run = sandbox.run({"operation": "execute", "batch_size": 5, "backup": backup})
    assert run["status"] == "SUCCEEDED", run
    report = json.loads(run["output"])["verify"]
    # Then the upload came with the three fields (ingest writes them), and verify counts it: in the
    # success figure, as a listing no part read, and (after the backup) as not in it
    after = sources(sandbox)
    assert uploaded in after and all(after[uploaded].get(name) is not None for name in SPLIT_FIELDS)
    assert report["total"] == len(after) == LISTINGS + 1
    assert report["has_all_three"] == sum(all(s.get(f) is not None for f in SPLIT_FIELDS) for s in after.values())
    assert report["added_while_running"] == 1 and report["removed_while_running"] == 0
    assert report["listings_not_in_backup"] == 1 and report["listings_lost_since_backup"] == 0
    assert report["other_fields_changed"] == 0
    # And its figures are those a pass over the index now gives
    now = sandbox.migration().verify_one_pass(backup, spot_checks=10)
    figures = ("total", "has_all_three", "listings_not_in_backup", "listings_lost_since_backup", "failures")
    assert {key: report[key] for key in figures} == {key: now[key] for key in figures}
