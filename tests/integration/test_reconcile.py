"""The reconciler on a catalogue of its own (a bucket, a table and a collection made for this test, on
the local engines): each disagreement a crash between two writes can leave, found by a dry run
that writes nothing, then repaired, and the catalogue consistent afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.embeddings.factory import get_embedder
from listing_vision.jewelry import storage
from listing_vision.jewelry.claims import new_owner
from listing_vision.jewelry.stores import CatalogueStores
from listing_vision.jewelry.uploads import UploadIndexer
from listing_vision.jewelry.vector_index import VectorIndex, vector_id
from local.stack import LocalStack
from tests.images import fresh_image, resized_copy
from tests.isolated_catalogue import Catalogue, isolated_catalogue
from tests.stores import settle


@pytest.fixture
def catalogue(local_stack: LocalStack) -> Iterator[Catalogue]:
    with isolated_catalogue() as made:
        yield made


def test_a_consistent_catalogue_has_no_findings(catalogue: Catalogue) -> None:
    catalogue.store(81_001)
    report = catalogue.reconciler().run("blysk", dry_run=True)
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
    # and a presigned upload indexed by a run that died before tagging it (its status would read pending)
    upload_key = f"incoming/{'c' * 32}.jpg"
    s3.put_object(Bucket=catalogue.bucket, Key=upload_key, Body=fresh_image(81_016), ContentType="image/jpeg")
    UploadIndexer(catalogue.dedupe()).index_objects(catalogue.bucket, [upload_key])
    s3.delete_object_tagging(Bucket=catalogue.bucket, Key=upload_key)
    # and two records naming one object (for a person to decide)
    twin, twin_path = catalogue.store(81_015)
    twin_owner = new_owner()
    other = storage.sha256_hex(b"twin")
    stores.claims.try_claim("blysk", other, twin_owner)
    stores.claims.complete("blysk", other, twin_owner, twin_path, vector_id("blysk", other), None)

    # When a dry run looks
    before = catalogue.reconciler().run("blysk", dry_run=True)
    # Then it finds each, and writes nothing
    expected = {
        "photo_without_vector": 1,
        "record_without_object": 1,
        "vector_rolled_back": 1,
        "vector_without_object": 1,
        "photo_without_record": 1,
        "upload_status_missing": 1,
        "two_records_one_object": 1,
    }
    assert before["findings"] == expected and before["repaired"] == {}
    assert catalogue.reconciler().run("blysk", dry_run=True)["findings"] == expected
    assert before["quarantined"] == [{"path": twin_path, "sha256": sorted([storage.sha256_hex(twin), other])}]

    # When it runs for real
    after = catalogue.reconciler().run("blysk")
    # Then everything but the quarantined conflict is repaired
    assert after["repaired"] == {k: v for k, v in expected.items() if k != "two_records_one_object"}
    assert stores.vectors.has(vector_id("blysk", storage.sha256_hex(lost_vector)))
    assert stores.claims.get("blysk", storage.sha256_hex(gone)) is None
    assert not stores.vectors.has(vector_id("blysk", storage.sha256_hex(gone)))
    assert not stores.vectors.has(vector_id("blysk", yielded))
    assert not stores.vectors.has(vector_id("blysk", "0" * 64))
    record = stores.claims.get("blysk", storage.sha256_hex(orphan))
    assert record is not None and record.stored and record.path == f"s3://{catalogue.bucket}/{orphan_key}"
    assert s3.get_object_tagging(Bucket=catalogue.bucket, Key=upload_key)["TagSet"] == [
        {"Key": "dedupe-status", "Value": "indexed"}
    ]
    # And the next run finds only the conflict left for a person
    assert catalogue.reconciler().run("blysk", dry_run=True)["findings"] == {"two_records_one_object": 1}
    assert lost_vector_path and gone_path


def test_the_local_stack_reconciles_at_start(local_stack: LocalStack) -> None:
    # The session's stack ran the reconcile function when it started, over every storefront
    assert [report["website"] for report in local_stack.reconciled["reports"]] == ["alya", "blysk"]


def test_the_reconcile_function_repairs_each_storefront_of_the_stack(local_stack: LocalStack) -> None:
    s3, settings = aws.client("s3"), get_settings()
    index = VectorIndex(settings.milvus_collection)
    lost, gone, unrecorded = {}, {}, {}
    for offset, website in enumerate(("alya", "blysk")):
        bucket = settings.bucket_for(website)  # type: ignore[arg-type]

        def store(data: bytes, website: str = website) -> str:
            answer = requests.post(
                f"{local_stack.url}/image_similarity_search",
                files={"file": ("piece.jpg", data, "image/jpeg")},
                data={"website": website},
                timeout=30,
            )
            assert answer.status_code == 200 and answer.json()["duplicate_found"] is False, answer.text
            return storage.sha256_hex(data)

        # Given, in each storefront, a photo whose vector was lost and one whose object was deleted
        lost[website] = store(fresh_image(82_000 + 10 * offset))
        index.delete(vector_id(website, lost[website]))
        gone[website] = store(fresh_image(82_001 + 10 * offset))
        settle(local_stack)  # the uploads' own ObjectCreated events handled
        # (deleted while the bucket's triggers were off: the ObjectRemoved trigger would remove its record)
        saved = s3.get_bucket_notification_configuration(Bucket=bucket)
        saved.pop("ResponseMetadata", None)
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
        s3.delete_object(Bucket=bucket, Key=storage.catalogue_key(gone[website], "JPEG"))
        # and objects written while the upload trigger was off: a new photo, and a smaller copy of a stored one
        original = fresh_image(82_002 + 10 * offset)
        store(original)
        keys = [f"incoming/{offset}{'d' * 31}.jpg", f"incoming/{offset}{'e' * 31}.jpg"]
        for key, data in zip(keys, (fresh_image(82_003 + 10 * offset), resized_copy(original)), strict=True):
            s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType="image/jpeg")
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=saved)
        unrecorded[website] = keys
    # When the reconcile function runs, as its hourly schedule runs it
    result = local_stack.router.call("dedupe-reconcile", {})
    # Then in each storefront the vector is back, the dangling record is gone, and the new photo is
    # indexed while the copy is recorded as a duplicate of its original
    for website in ("alya", "blysk"):
        bucket = settings.bucket_for(website)  # type: ignore[arg-type]
        assert index.has(vector_id(website, lost[website]))
        assert CatalogueStores.from_settings().claims.get(website, gone[website]) is None
        statuses = [
            {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}.get("dedupe-status")
            for key in unrecorded[website]
        ]
        assert statuses == ["indexed", "duplicate"]
    assert [report["website"] for report in result["reports"]] == ["alya", "blysk"]


def test_an_object_whose_claim_is_in_flight_is_left_and_the_rest_repaired(
    catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch
) -> None:
    stores, s3 = catalogue.stores, aws.client("s3")
    monkeypatch.setattr("listing_vision.jewelry.dedupe.CLAIM_WAIT_S", 0.2)  # the wait, not the store: shortened
    # Given a presigned upload whose indexing run was killed holding its content's claim (a live lease)
    held = fresh_image(81_020)
    held_key = f"incoming/{'d' * 32}.jpg"
    s3.put_object(Bucket=catalogue.bucket, Key=held_key, Body=held, ContentType="image/jpeg")
    assert stores.claims.try_claim("blysk", storage.sha256_hex(held), new_owner())
    # and a catalogue object with no record
    orphan = fresh_image(81_021)
    orphan_key = storage.catalogue_key(storage.sha256_hex(orphan), "JPEG")
    s3.put_object(Bucket=catalogue.bucket, Key=orphan_key, Body=orphan, ContentType="image/jpeg")

    # When the reconciler runs
    report = catalogue.reconciler().run("blysk")

    # Then the claimed upload is left to its claim's holder (or a run after the lease), reported, not failed
    assert report["findings"] == {"photo_without_record": 2}
    assert report["repaired"] == {"photo_without_record": 1}
    assert report["checked"]["left_to_a_claim_in_flight"] == 1
    assert s3.get_object_tagging(Bucket=catalogue.bucket, Key=held_key)["TagSet"] == []
    # And the rest of the catalogue is reconciled
    record = stores.claims.get("blysk", storage.sha256_hex(orphan))
    assert record is not None and record.stored
