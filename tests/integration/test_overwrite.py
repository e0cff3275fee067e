"""An object overwritten in place: other bytes PUT at a key already indexed (a console or bulk upload
writing the same name again). The indexer keeps the catalogue one-to-one with the key's bytes
(`jewelry/overwrites.py`): only the record and vector of what the key now holds remain, whatever the
order of the events, their redelivery, a race between two writes, or a death between two writes.
Most tests run on a catalogue of their own (tests/isolated_catalogue.py); the last one goes through
the local stack's own S3 events, in both storefronts."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest

from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.jewelry import storage
from listing_vision.jewelry.dedupe import Upload
from listing_vision.jewelry.stores import CatalogueStores
from listing_vision.jewelry.uploads import IndexOutcome, UploadIndexer
from listing_vision.jewelry.vector_index import VectorIndex, vector_id
from local.stack import LocalStack
from tests.crash import FunctionDied, Invocation, table
from tests.images import fresh_image, resized_copy
from tests.integration.dedupe.conftest import catalogue_record, milvus_rows, tags
from tests.isolated_catalogue import CALLER, Catalogue, isolated_catalogue
from tests.stores import settle

LEASE_S = 1  # a dead run's claims and marks are taken over after this
KEY = "console/ring.jpg"


@pytest.fixture
def catalogue(local_stack: LocalStack) -> Iterator[Catalogue]:
    with isolated_catalogue(lease_s=LEASE_S) as made:
        yield made


def put(catalogue: Catalogue, data: bytes, key: str = KEY) -> None:
    aws.client("s3").put_object(Bucket=catalogue.bucket, Key=key, Body=data, ContentType="image/jpeg")


def index(catalogue: Catalogue, stores: CatalogueStores | None = None, key: str = KEY) -> IndexOutcome:
    """The indexer handling one ObjectCreated event of `key` (whichever write raised it: it reads the key)."""
    return UploadIndexer(catalogue.dedupe(stores)).index_objects(catalogue.bucket, [key])[0]


def only(catalogue: Catalogue, data: bytes, gone: bytes, key: str = KEY) -> None:
    """The key's bytes `data` have their record and vector, naming the key; `gone` has neither."""
    stores, path = catalogue.stores, f"s3://{catalogue.bucket}/{key}"
    sha, old = storage.sha256_hex(data), storage.sha256_hex(gone)
    assert stores.images.read(storage.StoredImage(catalogue.bucket, key)) == data
    record = stores.claims.get("blysk", sha)
    assert record is not None and record.stored and record.path == path
    assert [(row.sha256, row.id) for row in stores.vectors.at_path(path, "blysk")] == [(sha, vector_id("blysk", sha))]
    assert stores.claims.get("blysk", old) is None and not stores.vectors.has(vector_id("blysk", old))
    report = catalogue.reconciler().run("blysk", dry_run=True)
    assert report["consistent"], report["findings"]


@pytest.mark.parametrize("new", ["another_photo", "an_edit_of_it"])
def test_a_key_overwritten_keeps_only_the_new_bytes_record_and_vector(catalogue: Catalogue, new: str) -> None:
    # Given a photo A indexed where it lies
    a = fresh_image(97_001)
    put(catalogue, a)
    assert index(catalogue).status == "indexed"
    # When other bytes B are put at the same key (another photo, or an edit of A: its near-duplicate)
    b = fresh_image(97_002) if new == "another_photo" else resized_copy(a, factor=0.8, quality=60)
    put(catalogue, b)
    outcome = index(catalogue)
    # Then B is indexed (not a duplicate of the key it is), and A's record and vector are gone
    assert (outcome.status, outcome.duplicate_of) == ("indexed", None)
    only(catalogue, b, gone=a)
    # And A uploaded again is a new photo (or, for an edit, a duplicate of the key now holding its edit)
    again = catalogue.dedupe().check_and_store(Upload(a, "a-again.jpg", "blysk"), caller=CALLER)
    if new == "another_photo":
        assert not again.duplicate_found and again.sha256 == storage.sha256_hex(a)
    else:
        assert again.duplicate_found and again.found[0].path == f"s3://{catalogue.bucket}/{KEY}"
    assert catalogue.reconciler().run("blysk", dry_run=True)["consistent"]


def test_the_same_bytes_put_again_change_nothing(catalogue: Catalogue) -> None:
    # Given a photo indexed where it lies
    a = fresh_image(97_010)
    put(catalogue, a)
    index(catalogue)
    before = catalogue.stores.claims.get("blysk", storage.sha256_hex(a))
    # When the same bytes are put at the key again, and the event delivered twice
    put(catalogue, a)
    outcomes = [index(catalogue).status for _ in range(2)]
    # Then it is already indexed: the same record, the same single vector
    assert outcomes == ["already_indexed", "already_indexed"]
    assert catalogue.stores.claims.get("blysk", storage.sha256_hex(a)) == before
    only(catalogue, a, gone=b"never stored")


@pytest.mark.parametrize("dies_after_tagging", [False, True])
def test_a_key_overwritten_by_a_photo_stored_elsewhere_leaves_it_a_duplicate_and_drops_the_old_record(
    catalogue: Catalogue, dies_after_tagging: bool
) -> None:
    # Given photo A at the key, and photo B stored by the API (under its content key)
    a, b = fresh_image(97_020), fresh_image(97_021)
    put(catalogue, a)
    index(catalogue)
    stored = catalogue.dedupe().check_and_store(Upload(b, "b.jpg", "blysk"), caller=CALLER)
    assert stored.stored is not None
    # When B's bytes are put at A's key (and the run dies right after tagging it, before it settles the key)
    put(catalogue, b)
    if dies_after_tagging:
        invocation = Invocation(die_after=1)
        with pytest.raises(FunctionDied):
            index(catalogue, invocation.stores(catalogue.stores))
        assert invocation.writes == ["tag"]
        assert catalogue.stores.claims.get("blysk", storage.sha256_hex(a)) is not None
    outcome = index(catalogue)  # (the event redelivered)
    # Then the key is a duplicate of B's photo, and nothing claims it any more
    assert outcome.status == "duplicate"
    assert (
        catalogue.stores.images.tags(storage.StoredImage(catalogue.bucket, KEY))["duplicate-of"] == stored.stored.s3_uri
    )
    path = f"s3://{catalogue.bucket}/{KEY}"
    assert catalogue.stores.vectors.at_path(path, "blysk") == []
    assert catalogue.stores.claims.get("blysk", storage.sha256_hex(a)) is None
    assert catalogue.reconciler().run("blysk", dry_run=True)["consistent"]


def test_a_catalogue_key_overwritten_then_its_photo_uploaded_again_ends_with_the_photo(catalogue: Catalogue) -> None:
    # Given photo A stored by the API under its content key, then other bytes B put straight at that key
    a, b = fresh_image(97_070), fresh_image(97_071)
    stored = catalogue.dedupe().check_and_store(Upload(a, "a.jpg", "blysk"), caller=CALLER)
    assert stored.stored is not None
    key = stored.stored.key
    put(catalogue, b, key)
    # When the key's event is handled
    assert index(catalogue, key=key).status == "indexed"
    # Then B is what the key is catalogued as, and A is gone from the catalogue
    only(catalogue, b, gone=a, key=key)
    # When A is uploaded through the API again (it writes its content key back), and that write's event handled
    again = catalogue.dedupe().check_and_store(Upload(a, "a-again.jpg", "blysk"), caller=CALLER)
    assert not again.duplicate_found
    assert index(catalogue, key=key).status == "already_indexed"
    # Then the key is A's again, and B's record and vector are gone
    only(catalogue, a, gone=b, key=key)


def test_a_key_overwritten_with_what_is_no_photo_keeps_nothing_catalogued_there(catalogue: Catalogue) -> None:
    # Given photo A at the key
    a = fresh_image(97_080)
    put(catalogue, a)
    index(catalogue)
    # When a text file is put at the same key
    put(catalogue, b"not a photo any more")
    outcome = index(catalogue)
    # Then it is recorded invalid, and A's record and vector are gone
    assert (outcome.status, outcome.reason) == ("invalid", "not_an_image")
    assert catalogue.stores.vectors.at_path(f"s3://{catalogue.bucket}/{KEY}", "blysk") == []
    assert catalogue.stores.claims.get("blysk", storage.sha256_hex(a)) is None
    assert catalogue.reconciler().run("blysk", dry_run=True)["consistent"]


@pytest.mark.parametrize("order", ["B,A", "A,B", "B,A,B,A"])
def test_events_late_out_of_order_or_twice_end_one_to_one(catalogue: Catalogue, order: str) -> None:
    # Given A put and indexed, then B put at the same key
    a, b = fresh_image(97_030), fresh_image(97_031)
    put(catalogue, a)
    index(catalogue)
    put(catalogue, b)
    # When A's event arrives again (late, or redelivered) and B's, in any order, some twice
    for _ in order.split(","):
        index(catalogue)  # either event makes the indexer read the key as it is now
    # Then only B is catalogued
    only(catalogue, b, gone=a)


def test_two_writes_never_indexed_before_both_landed_keep_only_the_last(catalogue: Catalogue) -> None:
    # Given A then B put at a key before either event was handled
    a, b = fresh_image(97_040), fresh_image(97_041)
    put(catalogue, a)
    put(catalogue, b)
    # When A's event, then B's, arrive
    assert [index(catalogue).status for _ in range(2)] == ["indexed", "already_indexed"]
    # Then A was never stored: only B is
    only(catalogue, b, gone=a)


class OverwrittenWhileStaging(VectorIndex):
    """The catalogue's own collection, where the key is overwritten with `data`, and that write's event
    fully handled, while a run that read the key's earlier bytes is inserting their vector."""

    def __init__(self, catalogue: Catalogue, data: bytes):
        super().__init__(catalogue.stores.vectors.collection, catalogue.stores.vectors.connect)
        self.catalogue, self.data, self.done = catalogue, data, False

    def ensure_vector(self, vector: np.ndarray, path: str, website: str, sha256: str) -> int:
        row = super().ensure_vector(vector, path, website, sha256)
        if not self.done:
            self.done = True
            put(self.catalogue, self.data)
            assert index(self.catalogue).status == "indexed"  # B's run: A's claim is still in flight
        return row


def test_a_run_that_read_the_old_bytes_and_stores_them_last_removes_them(catalogue: Catalogue) -> None:
    # Given a run indexing A that is overtaken: B is put at the key and indexed while A's run stages
    a, b = fresh_image(97_050), fresh_image(97_051)
    put(catalogue, a)
    racing = replace(catalogue.stores, vectors=OverwrittenWhileStaging(catalogue, b))
    # When A's run completes its record after B's run has finished
    index(catalogue, racing)
    # Then A's run, checking the key after storing, finds B there and removes its own record and vector
    only(catalogue, b, gone=a)


def overwrite_writes(catalogue: Catalogue) -> list[str]:
    """The writes of indexing B over A at the key, in order (a run that does not die)."""
    put(catalogue, fresh_image(97_060), key="console/probe.jpg")
    index(catalogue, key="console/probe.jpg")
    put(catalogue, fresh_image(97_061), key="console/probe.jpg")
    invocation = Invocation(die_after=0)
    index(catalogue, invocation.stores(catalogue.stores), key="console/probe.jpg")
    return invocation.writes


@pytest.mark.parametrize("recovery", ["retry", "reconcile_then_retry"])
def test_an_overwrite_run_killed_after_any_write_ends_one_to_one_after_the_retry(
    catalogue: Catalogue, recovery: str, capsys: pytest.CaptureFixture[str]
) -> None:
    writes = overwrite_writes(catalogue)
    # (claim B, its vector, its number, staged, stored, key tagged, claim given back, A marked, A's vector, A's record)
    assert writes[-3:] == ["begin_delete", "delete", "end_delete"] and "complete" in writes, writes
    rows = []
    for kill_point in range(1, len(writes) + 1):
        # Given A indexed at a key, then B put there, and the run indexing B dying right after its k-th write
        key = f"console/kill-{kill_point}-{uuid.uuid4().hex[:6]}.jpg"
        a, b = fresh_image(97_100 + 2 * kill_point), fresh_image(97_101 + 2 * kill_point)
        put(catalogue, a, key)
        index(catalogue, key=key)
        put(catalogue, b, key)
        invocation = Invocation(die_after=kill_point)
        with pytest.raises(FunctionDied):
            index(catalogue, invocation.stores(catalogue.stores), key=key)
        path = f"s3://{catalogue.bucket}/{key}"
        left = sorted(row.sha256[:6] for row in catalogue.stores.vectors.at_path(path, "blysk"))
        catalogue.clock.advance(LEASE_S + 0.2)  # the dead run's leases run out
        # When the reconciler runs first (or not), then S3's redelivery of the event is handled
        repaired = catalogue.reconciler().run("blysk")["repaired"] if recovery != "retry" else {}
        assert index(catalogue, key=key).status in ("indexed", "already_indexed")
        if recovery == "retry" and invocation.writes[-2:] == ["begin_delete", "delete"]:
            # Then (died between A's vector and A's record) A's record is left marked deleting: no image,
            # nobody's duplicate, not listed; the retry cannot find it (no vector names the key), and the
            # reconciler finishes it, as it finishes a DELETE that died there (catalogue.py)
            record = catalogue.stores.claims.get("blysk", storage.sha256_hex(a))
            assert record is not None and record.deleting
            repaired = catalogue.reconciler().run("blysk")["repaired"]
            assert repaired == {"delete_unfinished": 1}
        rows.append((str(kill_point), invocation.writes[-1], f"vectors at key {left}", str(repaired or "-")))
        # Then the key has B's record and vector only, and the reconciler finds nothing to do
        only(catalogue, b, gone=a, key=key)
    with capsys.disabled():
        print(f"\noverwrite kill points ({recovery}):\n" + table(rows, ["k", "died after", "left", "reconciler"]))


@pytest.mark.parametrize("website", ["alya", "blysk"])
def test_an_overwrite_through_the_stacks_own_events_keeps_one_to_one(local_stack: LocalStack, website: str) -> None:
    s3, bucket = aws.client("s3"), get_settings().bucket_for(website)  # type: ignore[arg-type]
    key = f"console/overwrite-{uuid.uuid4().hex[:8]}.jpg"
    seed = 97_200 if website == "alya" else 97_210
    a, b = fresh_image(seed), fresh_image(seed + 1)
    # Given a console upload of A, indexed by the bucket's trigger
    s3.put_object(Bucket=bucket, Key=key, Body=a)
    settle(local_stack)
    # When B is uploaded under the same name
    s3.put_object(Bucket=bucket, Key=key, Body=b)
    settle(local_stack)
    # Then B is indexed there, A has neither record nor vector, and A is a new photo again
    assert tags(bucket, key) == {"dedupe-status": "indexed"}
    assert milvus_rows(storage.sha256_hex(b), website) == 1 and milvus_rows(storage.sha256_hex(a), website) == 0
    assert catalogue_record(website, storage.sha256_hex(b))["path"]["S"] == f"s3://{bucket}/{key}"
    assert catalogue_record(website, storage.sha256_hex(a)) == {}
