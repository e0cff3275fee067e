"""DELETE /images/{id} dying between two of its writes (catalogue.py has their order), on a catalogue of
the test's own (tests/isolated_catalogue.py): whatever it left is never answered as a duplicate with
a dead link, and it is finished by a rerun of the delete or by the reconciler. Either way the
catalogue ends consistent, and a photo whose delete was finished uploads as new."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from listing_vision import aws
from listing_vision.errors import NotFound
from listing_vision.jewelry import storage
from listing_vision.jewelry.catalogue import Catalogue as CatalogueService
from listing_vision.jewelry.dedupe import Upload
from listing_vision.jewelry.stores import CatalogueStores
from listing_vision.jewelry.vector_index import Hit, VectorIndex, vector_id
from local.stack import LocalStack
from tests.crash import FunctionDied, Invocation
from tests.images import resized_copy
from tests.isolated_catalogue import CALLER, Catalogue, isolated_catalogue

LEASE_S = 1  # a dead delete's mark is taken over after this
DELETE_WRITES = ["begin_delete", "delete", "delete", "end_delete"]  # mark, object, vector, record


@pytest.fixture
def catalogue(local_stack: LocalStack) -> Iterator[Catalogue]:
    with isolated_catalogue(lease_s=LEASE_S) as made:
        yield made


def delete(stores: CatalogueStores, sha: str) -> None:
    CatalogueService(stores).delete(CALLER, "blysk", sha)


@pytest.mark.parametrize("recovery", ["rerun", "reconcile"])
@pytest.mark.parametrize("kill_point", range(1, len(DELETE_WRITES) + 1))
def test_a_delete_killed_after_any_write_is_finished_and_never_leaves_a_dead_duplicate(
    catalogue: Catalogue, kill_point: int, recovery: str
) -> None:
    # Given a stored photo, and a delete of it that dies right after its k-th write
    data, path = catalogue.store(93_000 + kill_point)
    sha, stores = storage.sha256_hex(data), catalogue.stores
    invocation = Invocation(die_after=kill_point)
    with pytest.raises(FunctionDied):
        delete(invocation.stores(stores), sha)
    assert invocation.writes == DELETE_WRITES[:kill_point]
    # Then what it left answers no upload as a duplicate: a near copy finds no match (none with a dead link)
    copy = catalogue.dedupe().embedder.describe([resized_copy(data)])[0]
    assert catalogue.dedupe().duplicate_matches(copy, "blysk", "storefront") == []
    catalogue.clock.advance(LEASE_S + 0.2)  # the dead delete's lease runs out
    # When the client runs the delete again (a second delete answers 404), or the reconciler runs
    if recovery == "rerun":
        try:
            delete(stores, sha)
        except NotFound:
            assert kill_point == len(DELETE_WRITES)  # only once the record itself was gone
    findings = catalogue.reconciler().run("blysk")["findings"]
    # Then the catalogue is consistent
    assert catalogue.reconciler().run("blysk", dry_run=True)["consistent"]
    if recovery == "reconcile" and kill_point == 1:
        # a delete that died before deleting the object is undone: the photo is all there, found as itself
        assert findings == {"delete_abandoned": 1}
        record = stores.claims.get("blysk", sha)
        assert record is not None and record.stored and stores.vectors.has(vector_id("blysk", sha))
        again = catalogue.dedupe().check_and_store(Upload(data, "again.jpg", "blysk"), caller=CALLER)
        assert again.duplicate_found and again.results[0]["match"] == "exact"
        return
    # and otherwise the photo is gone from all three stores, and uploads as new
    assert findings == ({"delete_unfinished": 1} if recovery == "reconcile" and kill_point in (2, 3) else {})
    assert stores.claims.get("blysk", sha) is None and not stores.vectors.has(vector_id("blysk", sha))
    assert stores.images.head(storage.StoredImage.from_uri(path)) is None
    again = catalogue.dedupe().check_and_store(Upload(data, "again.jpg", "blysk"), caller=CALLER)
    assert not again.duplicate_found and again.stored is not None and again.stored.s3_uri == path


def test_an_upload_of_the_same_bytes_takes_over_a_delete_that_died(catalogue: Catalogue) -> None:
    # Given a photo whose delete died after deleting its object (its record still marked deleting)
    data, path = catalogue.store(93_100)
    invocation = Invocation(die_after=2)
    with pytest.raises(FunctionDied):
        delete(invocation.stores(catalogue.stores), storage.sha256_hex(data))
    catalogue.clock.advance(LEASE_S + 0.2)
    # When the same bytes are uploaded once the dead delete's lease has run out
    again = catalogue.dedupe().check_and_store(Upload(data, "again.jpg", "blysk"), caller=CALLER)
    # Then they are stored as new, under the same keys, and the catalogue is consistent
    assert not again.duplicate_found and again.stored is not None and again.stored.s3_uri == path
    assert catalogue.reconciler().run("blysk", dry_run=True)["consistent"]


class ReuploadedWhileChecked(VectorIndex):
    """The catalogue's own collection, where the same photo is uploaded again (its object put back)
    while the ObjectRemoved trigger reads the vectors of the path: the race a trigger must not lose."""

    def __init__(self, index: VectorIndex, image: storage.StoredImage, data: bytes):
        super().__init__(index.collection, index.connect)
        self.image, self.data = image, data

    def at_path(self, path: str, website: str) -> list[Hit]:
        rows = super().at_path(path, website)
        aws.client("s3").put_object(Bucket=self.image.bucket, Key=self.image.key, Body=self.data)
        return rows


def test_a_photo_uploaded_again_while_the_removed_trigger_runs_keeps_its_record_and_vector(
    catalogue: Catalogue,
) -> None:
    # Given a stored photo deleted in S3, and its upload again landing while the trigger checks its rows
    data, path = catalogue.store(93_100)
    sha, stores = storage.sha256_hex(data), catalogue.stores
    image = storage.StoredImage.from_uri(path)
    aws.client("s3").delete_object(Bucket=image.bucket, Key=image.key)
    racing = replace(stores, vectors=ReuploadedWhileChecked(stores.vectors, image, data))
    # When the ObjectRemoved trigger runs
    [outcome] = CatalogueService(racing).removed([(image.bucket, image.key)])
    # Then it leaves the photo whole: object, record (stored, not deleting) and vector
    assert (outcome.status, outcome.reason) == ("skipped", "object_present")
    record = stores.claims.get("blysk", sha)
    assert record is not None and record.stored and record.path == path
    assert stores.vectors.has(vector_id("blysk", sha))
    assert stores.images.head(image) is not None
