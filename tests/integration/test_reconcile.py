"""The reconciler on a catalogue of its own (a bucket, a table and a collection made for this test, on
the local engines): each disagreement a crash between two writes can leave, found by a dry run
that writes nothing, then repaired, and the catalogue consistent afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from listing_vision import aws
from listing_vision.api.access import Caller
from listing_vision.config import get_settings
from listing_vision.embeddings.factory import get_embedder
from listing_vision.jewelry import storage
from listing_vision.jewelry.claims import ContentClaims, new_owner
from listing_vision.jewelry.dedupe import DedupeService, Upload
from listing_vision.jewelry.reconcile import Reconciler
from listing_vision.jewelry.stores import CatalogueStores
from listing_vision.jewelry.uploads import UploadIndexer
from listing_vision.jewelry.vector_index import VectorIndex, milvus_client, vector_id
from local.stack import LocalStack
from tests.images import fresh_image

CALLER = Caller("reconcile-test", frozenset({"blysk"}))


@dataclass
class Catalogue:
    stores: CatalogueStores
    dedupe: DedupeService
    reconciler: Reconciler
    bucket: str

    def store(self, seed: int) -> tuple[bytes, str]:
        data = fresh_image(seed)
        result = self.dedupe.check_and_store(Upload(data, f"{seed}.jpg", "blysk"), caller=CALLER)
        assert result.stored is not None
        return data, result.stored.s3_uri


@pytest.fixture
def catalogue(local_stack: LocalStack) -> Iterator[Catalogue]:
    suffix = uuid.uuid4().hex[:8]
    bucket, table, collection = f"reconcile-{suffix}", f"reconcile-{suffix}", f"reconcile_{suffix}"
    aws.client("s3").create_bucket(Bucket=bucket)
    aws.client("dynamodb").create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "content_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "content_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    vectors = VectorIndex(collection)
    vectors.ensure_collection(get_settings().embedding_dim)
    settings = get_settings().model_copy(update={"blysk_bucket": bucket})
    stores = CatalogueStores(vectors, storage.ImageStore(aws.client("s3"), settings), ContentClaims(table=table))
    dedupe = DedupeService(get_embedder(), stores)
    yield Catalogue(stores, dedupe, Reconciler(UploadIndexer(dedupe)), bucket)
    milvus_client().drop_collection(collection)


def test_a_consistent_catalogue_has_no_findings(catalogue: Catalogue) -> None:
    catalogue.store(81_001)
    report = catalogue.reconciler.run("blysk", dry_run=True)
    assert report["consistent"] and report["checked"] == {"records": 1, "vectors": 1, "objects": 1}


def test_each_disagreement_is_found_then_repaired(catalogue: Catalogue) -> None:
    stores, s3 = catalogue.stores, aws.client("s3")
    # Given a photo whose vector was lost (a crash after its record)
    lost_vector, lost_vector_path = catalogue.store(81_010)
    stores.vectors.delete(vector_id("blysk", storage.sha256_hex(lost_vector)))
    # and a photo whose object was deleted behind the platform's back
    gone, gone_path = catalogue.store(81_011)
    s3.delete_object(Bucket=catalogue.bucket, Key=gone_path.split("/", 3)[3])
    # and a vector left by an upload that lost a near-duplicate race and died before rolling back
    yielded = storage.sha256_hex(b"yielded")
    owner = new_owner()
    stores.claims.try_claim("blysk", yielded, owner)
    stores.claims.yield_claim("blysk", yielded, owner)
    stores.vectors.ensure_vector(get_embedder().embed([fresh_image(81_012)])[0], "s3://x/y.jpg", "blysk", yielded)
    # and a vector whose object never existed, with no record (a legacy row pointing nowhere)
    stores.vectors.ensure_vector(
        get_embedder().embed([fresh_image(81_013)])[0], f"s3://{catalogue.bucket}/legacy/gone.jpg", "blysk", "0" * 64
    )
    # and a catalogue object with no record (the API died after writing it)
    orphan = fresh_image(81_014)
    orphan_key = storage.catalogue_key(storage.sha256_hex(orphan), "JPEG")
    s3.put_object(Bucket=catalogue.bucket, Key=orphan_key, Body=orphan, ContentType="image/jpeg")
    # and two records naming one object (for a person to decide)
    twin, twin_path = catalogue.store(81_015)
    twin_owner = new_owner()
    other = storage.sha256_hex(b"twin")
    stores.claims.try_claim("blysk", other, twin_owner)
    stores.claims.complete("blysk", other, twin_owner, twin_path, vector_id("blysk", other), None)

    # When a dry run looks
    before = catalogue.reconciler.run("blysk", dry_run=True)
    # Then it finds each, and writes nothing
    expected = {
        "photo_without_vector": 1,
        "record_without_object": 1,
        "vector_rolled_back": 1,
        "vector_without_object": 1,
        "photo_without_record": 1,
        "two_records_one_object": 1,
    }
    assert before["findings"] == expected and before["repaired"] == {}
    assert catalogue.reconciler.run("blysk", dry_run=True)["findings"] == expected
    assert before["quarantined"] == [{"path": twin_path, "sha256": sorted([storage.sha256_hex(twin), other])}]

    # When it runs for real
    after = catalogue.reconciler.run("blysk")
    # Then everything but the quarantined conflict is repaired
    assert after["repaired"] == {k: v for k, v in expected.items() if k != "two_records_one_object"}
    assert stores.vectors.has(vector_id("blysk", storage.sha256_hex(lost_vector)))
    assert stores.claims.get("blysk", storage.sha256_hex(gone)) is None
    assert not stores.vectors.has(vector_id("blysk", storage.sha256_hex(gone)))
    assert not stores.vectors.has(vector_id("blysk", yielded))
    assert not stores.vectors.has(vector_id("blysk", "0" * 64))
    record = stores.claims.get("blysk", storage.sha256_hex(orphan))
    assert record is not None and record.stored and record.path == f"s3://{catalogue.bucket}/{orphan_key}"
    # And the next run finds only the conflict left for a person
    assert catalogue.reconciler.run("blysk", dry_run=True)["findings"] == {"two_records_one_object": 1}
    assert lost_vector_path and gone_path


def test_the_local_stack_reconciles_at_start(local_stack: LocalStack) -> None:
    # The session's stack ran the reconcile function when it started, over every storefront
    assert [report["website"] for report in local_stack.reconciled["reports"]] == ["alya", "blysk"]
