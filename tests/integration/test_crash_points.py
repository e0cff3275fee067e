"""A function dying between two writes to durable stores, at every write boundary, as AWS fails.

The stores are the real local engines (a catalogue of the test's own: tests/isolated_catalogue.py);
what dies is the function: after its k-th write, every further call of that invocation raises, so
no cleanup of its own runs (a killed process runs none). Then the platform's own retry happens (a
client retry of the API upload, S3's redelivery of the event), the reconciler runs, and the
catalogue must hold the photo exactly once: its record, its object and its vector, found as a
duplicate of itself, with nothing dangling. Each kill point prints what it left before repair.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from listing_vision.jewelry import storage
from listing_vision.jewelry.dedupe import Upload
from listing_vision.jewelry.stores import CatalogueStores
from listing_vision.jewelry.uploads import UploadIndexer
from listing_vision.jewelry.vector_index import vector_id
from listing_vision.resources import INCOMING_PREFIX
from local.stack import LocalStack
from tests.crash import FunctionDied, Invocation
from tests.images import fresh_image
from tests.isolated_catalogue import CALLER, Catalogue, isolated_catalogue

LEASE_S = 1  # a dead request's claim is taken over after this
API_UPLOAD_WRITES = ["try_claim", "put_image", "ensure_vector", "next_order", "stage", "complete"]
# A presigned upload: its upload id and content claimed, its vector staged, its catalogue copy written
# once it has won, its record completed, its upload id spent, its inbox object tagged (uploads.py)
INDEXER_WRITES = [
    *("claim", "try_claim", "ensure_vector", "next_order", "stage"),
    *("put_image", "complete", "settle", "tag"),
]


@pytest.fixture
def catalogue(local_stack: LocalStack) -> Iterator[Catalogue]:
    with isolated_catalogue(lease_s=LEASE_S) as made:
        yield made


def left_behind(catalogue: Catalogue) -> dict[str, int]:
    """What the dead invocation left, as the reconciler sees it once its claim's lease has run out."""
    catalogue.clock.advance(LEASE_S + 0.2)  # the dead run's leases run out
    return dict(catalogue.reconciler().run("blysk", dry_run=True)["findings"])


def assert_stored_once(catalogue: Catalogue, data: bytes, path: str) -> None:
    """One record, its object, its vector; nothing else in the catalogue; the reconciler agrees."""
    stores, sha = catalogue.stores, storage.sha256_hex(data)
    record = stores.claims.get("blysk", sha)
    assert record is not None and record.stored and record.path == path
    assert stores.images.head(storage.StoredImage.from_uri(path)) is not None
    assert stores.vectors.has(vector_id("blysk", sha)) and stores.vectors.count() == 1
    assert [s for s, r in stores.claims.records("blysk") if r.stored] == [sha]
    assert catalogue.reconciler().run("blysk", dry_run=True)["consistent"]
    # and the photo is found as a duplicate of itself
    again = catalogue.dedupe().check_and_store(Upload(data, "again.jpg", "blysk"), caller=CALLER)
    assert again.duplicate_found and again.results[0]["match"] == "exact"


def die_then_recover(
    catalogue: Catalogue, kill_point: int, attempt: Callable[[CatalogueStores], Any]
) -> tuple[list[str], dict[str, int]]:
    invocation = Invocation(die_after=kill_point)
    with pytest.raises(FunctionDied):
        attempt(invocation.stores(catalogue.stores))
    left = left_behind(catalogue)
    attempt(catalogue.stores)  # the platform's own retry, on live stores
    catalogue.reconciler().run("blysk")
    print(f"kill after write {kill_point} ({invocation.writes[-1]}): left {left or 'nothing to repair'}")
    return invocation.writes, left


@pytest.mark.parametrize("kill_point", range(1, len(API_UPLOAD_WRITES) + 1))
def test_an_api_upload_killed_after_any_write_ends_stored_once(catalogue: Catalogue, kill_point: int) -> None:
    # Given a new photo, and an API upload of it that dies right after its k-th write
    data = fresh_image(91_000 + kill_point)

    def upload(stores: CatalogueStores) -> Any:
        return catalogue.dedupe(stores).check_and_store(Upload(data, "piece.jpg", "blysk"), caller=CALLER)

    # When the client retries and the reconciler runs
    writes, _ = die_then_recover(catalogue, kill_point, upload)
    assert writes == API_UPLOAD_WRITES[:kill_point]  # the kill points are the API's writes, in order
    # Then the photo is stored exactly once, under its content key
    assert_stored_once(
        catalogue, data, f"s3://{catalogue.bucket}/{storage.catalogue_key(storage.sha256_hex(data), 'JPEG')}"
    )


@pytest.mark.parametrize("kill_point", range(1, len(INDEXER_WRITES) + 1))
def test_an_s3_triggered_index_killed_after_any_write_ends_indexed_once(catalogue: Catalogue, kill_point: int) -> None:
    # Given a presigned upload's object, and its indexing that dies right after its k-th write
    data = fresh_image(92_000 + kill_point)
    key = f"{INCOMING_PREFIX}{kill_point:032x}.jpg"
    catalogue.stores.images.put(storage.StoredImage(catalogue.bucket, key), data, "image/jpeg")

    def index(stores: CatalogueStores) -> Any:
        return UploadIndexer(catalogue.dedupe(stores)).index_objects(catalogue.bucket, [key])

    # When S3 delivers the event again and the reconciler runs
    writes, _ = die_then_recover(catalogue, kill_point, index)
    assert writes == INDEXER_WRITES[:kill_point]
    # Then the photo is catalogued exactly once, by its copy under its content key, and its inbox object
    # and its upload id say so
    sha = storage.sha256_hex(data)
    assert_stored_once(catalogue, data, f"s3://{catalogue.bucket}/{storage.catalogue_key(sha, 'JPEG')}")
    assert catalogue.stores.images.tags(storage.StoredImage(catalogue.bucket, key)) == {"dedupe-status": "indexed"}
    spent = catalogue.stores.uploads.get("blysk", f"{kill_point:032x}")
    assert spent is not None and spent.catalogued and spent.sha256 == sha
