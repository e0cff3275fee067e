"""Backups, verify and rollback against the real emulators: backups in parts with a checksummed
manifest, verify and restore streaming the index against them, by parts in this process as one
pass would, and a rollback that leaves exactly the backup."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from listing_vision.errors import InvalidRequest
from listing_vision.realestate.backups import BackupReader
from listing_vision.realestate.migration import Migration
from tests.integration import migration_stores
from tests.integration.migration_stores import LISTINGS, all_sources

stores = migration_stores.stores  # a private index and cache table of demo listings
migration = migration_stores.migration  # the Migration over them


def test_backup_is_written_in_parts_with_a_manifest_of_checksums_and_refuses_tampering(
    migration: Migration, tmp_path: Path
) -> None:
    # Given the demo listings
    location = str(tmp_path / "backup.jsonl")
    # When they are backed up in parts of 7
    result = migration.backup(location, part_size=7)
    # Then there are 5 parts in id order, each with its checksum, first and last id, in the manifest
    manifest = json.loads((tmp_path / "backup.jsonl.manifest.json").read_text())
    assert manifest["count"] == result["count"] == LISTINGS and result["parts"] == len(manifest["parts"]) == 5
    ids: list[str] = []
    for part in manifest["parts"]:
        body = (tmp_path / "backup.jsonl.parts" / part["name"]).read_bytes()
        assert part["sha256"] == hashlib.sha256(body).hexdigest() and part["bytes"] == len(body)
        rows = [json.loads(line)["_id"] for line in body.splitlines()]
        assert rows == sorted(rows) and (part["first"], part["last"]) == (rows[0], rows[-1])
        ids += rows
    assert (
        ids == sorted(all_sources(migration))
        and manifest["sha256"] == hashlib.sha256("".join(p["sha256"] for p in manifest["parts"]).encode()).hexdigest()
    )
    assert Migration.load_backup(location) == all_sources(migration)
    # When one part is tampered with, reading the backup is refused
    tampered = tmp_path / "backup.jsonl.parts" / manifest["parts"][2]["name"]
    body = tampered.read_bytes()
    tampered.write_bytes(body.replace(b"ranch", b"ranck", 1) if b"ranch" in body else body + b" ")
    with pytest.raises(InvalidRequest) as corrupt:
        Migration.load_backup(location)
    assert corrupt.value.code == "backup_corrupt"
    # And a restore from it is refused before anything is written
    before = all_sources(migration)
    with pytest.raises(InvalidRequest):
        migration.rollback("restore", backup=location)
    assert all_sources(migration) == before


def test_a_backup_that_is_not_there_or_lacks_a_part_is_refused_by_name(migration: Migration, tmp_path: Path) -> None:
    # Given no backup at a location, When it is opened, Then it is refused as not found
    with pytest.raises(InvalidRequest) as missing:
        BackupReader(str(tmp_path / "typo.jsonl"))
    assert missing.value.code == "backup_not_found" and "typo.jsonl" in missing.value.message
    # Given a backup whose second part has gone, When it is read, Then it is refused as corrupt, naming the part
    location = migration.backup(str(tmp_path / "b.jsonl"), part_size=10)["location"]
    (tmp_path / "b.jsonl.parts" / "00001.jsonl").unlink()
    with pytest.raises(InvalidRequest) as corrupt:
        BackupReader(location).validate()
    assert corrupt.value.code == "backup_corrupt" and "00001.jsonl, named by its manifest, is missing" in str(
        corrupt.value
    )


def test_a_single_file_backup_from_before_parts_is_still_read(migration: Migration, tmp_path: Path) -> None:
    # Given a backup in the earlier format: one JSONL file and a manifest without parts
    sources = all_sources(migration)
    body = "".join(json.dumps({"_id": z, "_source": sources[z]}, sort_keys=True) + "\n" for z in sorted(sources))
    (tmp_path / "old.jsonl").write_text(body)
    manifest = {"count": len(sources), "bytes": len(body), "sha256": hashlib.sha256(body.encode()).hexdigest()}
    (tmp_path / "old.jsonl.manifest.json").write_text(json.dumps(manifest))
    # When the migration runs and is rolled back by restoring it
    migration.execute(batch_size=10)
    result = migration.rollback("restore", backup=str(tmp_path / "old.jsonl"), batch_size=11)
    # Then the sources are the backup's
    assert result["proof"]["identical"] is True and all_sources(migration) == sources


def test_verify_and_restore_stream_the_index_against_the_backups_parts(migration: Migration, tmp_path: Path) -> None:
    # Given a backup in parts of 4, then the migration, then a price changed and a listing deleted
    location = migration.backup(str(tmp_path / "b.jsonl"), part_size=4)["location"]
    before = all_sources(migration)
    migration.execute(batch_size=6)
    changed, deleted = sorted(before)[5], sorted(before)[17]
    search, index = migration.listings.client, migration.listings.name
    search.update(index=index, id=changed, body={"doc": {"price": 1}}, refresh=True)
    search.delete(index=index, id=deleted, refresh=True)
    # When verify compares the index with the backup
    report = migration.verify(location, spot_checks=3)
    # Then it finds exactly that change and that loss, and spot-checks three migrated listings
    assert report["other_fields_changed"] == 1 and report["other_fields_changed_sample"] == [changed]
    assert report["listings_lost_since_backup"] == 1 and report["listings_not_in_backup"] == 0
    assert report["passed"] is False and len(report["spot_checks"]) == 3
    assert all(spot["before"] == before[spot["zpid"]]["visual_features_text"] for spot in report["spot_checks"])
    # When a restoring batch is given three zpids, it reads only the part(s) they fall in
    reader = BackupReader(location)
    read: list[str] = []
    original = reader._checked_lines

    def recording(where: str, sha256: str, count: int) -> Iterator[bytes]:
        read.append(where)
        return original(where, sha256, count)

    reader._checked_lines = recording  # type: ignore[method-assign]
    assert set(reader.sources_for(sorted(before)[8:11])) == set(sorted(before)[8:11])
    assert read == [str(tmp_path / "b.jsonl.parts" / "00002.jsonl")]
    # And a whole restore puts back every listing the index still has as the backup holds it, but
    # the one whose price changed since: a newer write, which it lists and leaves alone
    changed_source = all_sources(migration)[changed]
    result = migration.rollback("restore", backup=location, batch_size=7)
    assert result["counts"]["changed_since_backup"] == 1 and result["left_alone"] == [changed]
    assert result["proof"]["missing"] == [deleted] and result["proof"]["differing"] == [changed]
    restored = all_sources(migration)
    assert restored.pop(changed) == changed_source and changed_source["price"] == 1
    assert restored == {z: s for z, s in before.items() if z not in (deleted, changed)}


def test_in_this_process_execute_verify_and_rollback_check_by_parts_as_one_pass_would(
    migration: Migration, tmp_path: Path
) -> None:
    # Given a backup in parts of 4, then a price changed, a listing deleted and one added
    location = migration.backup(str(tmp_path / "p.jsonl"), part_size=4)["location"]
    before = all_sources(migration)
    ids = sorted(before)
    changed, deleted, added = ids[5], ids[17], f"{ids[9]}_new"
    search, index = migration.listings.client, migration.listings.name
    search.update(index=index, id=changed, body={"doc": {"price": 1}}, refresh=True)
    search.delete(index=index, id=deleted, refresh=True)
    search.index(index=index, id=added, body=before[ids[9]], refresh=True)
    # And the whole-index stream noted whenever something reads it (it still reads)
    passes: list[str] = []
    stream = migration.listings.iter_docs_sorted

    def noted(page: int = 200) -> Iterator[Any]:
        passes.append("iter_docs_sorted")
        return stream(page)

    migration.listings.iter_docs_sorted = noted  # type: ignore[method-assign]
    # When the CLI's in-process execute runs (each batch checks its part once written), then verify on
    # its own (its parts read a few at once), then a rollback proved against the backup
    executed = migration.execute_verified(batch_size=6, backup=location, spot_checks=3)
    verified = migration.verify_by_parts(location, spot_checks=3, part_size=4)
    assert passes == []  # neither made a pass over the index
    one_pass = migration.verify_one_pass(location, spot_checks=3)
    # Then both reports are the one pass's: the change, the loss and the addition found
    assert executed["verify"] == verified == one_pass
    assert one_pass["other_fields_changed_sample"] == [changed] and one_pass["listings_lost_since_backup"] == 1
    assert one_pass["listings_not_in_backup"] == 1 and one_pass["added_while_running"] == 0
    assert executed["passed"] is False and len(one_pass["spot_checks"]) == 3
    # And the rollback's proof, made batch by batch, is the one-pass proof
    passes.clear()
    rolled = migration.rollback("remove", backup=location, batch_size=7)
    assert passes == []
    assert rolled["proof"] == migration.compare_with_backup(BackupReader(location), ignore_split=True)
    assert rolled["proof"]["differing"] == [changed] and rolled["proof"]["missing"] == [deleted]


def test_rollback_remove_leaves_exactly_the_backup(migration: Migration, tmp_path: Path) -> None:
    backup = migration.backup(str(tmp_path / "b.jsonl"))["location"]
    migration.execute(batch_size=10)
    result = migration.rollback("remove", backup=backup, batch_size=9)
    assert result["proof"]["identical"] is True
    assert all_sources(migration) == Migration.load_backup(backup)
    with pytest.raises(InvalidRequest):
        migration.rollback("restore")
