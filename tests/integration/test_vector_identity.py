"""Vectors keyed by what they describe: a repeated write replaces its own row, a lost vector is
restored by the indexer, and a backfill fills a new collection (the way off auto-id collections)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.embeddings.factory import get_embedder
from listing_vision.jewelry import backfill, storage
from listing_vision.jewelry.dedupe import DedupeService
from listing_vision.jewelry.stores import CatalogueStores
from listing_vision.jewelry.uploads import UploadIndexer
from listing_vision.jewelry.vector_index import AutoIdCollection, VectorIndex, milvus_client, vector_id
from local.stack import LocalStack
from tests.images import fresh_image
from tests.stores import settle, stored_through_api


def indexer() -> UploadIndexer:
    return UploadIndexer(DedupeService(get_embedder(), CatalogueStores.from_settings()))


def stored(local_stack: LocalStack, data: bytes) -> storage.StoredImage:
    sha = stored_through_api(local_stack, data, "blysk")
    return storage.StoredImage("blyskimg", storage.catalogue_key(sha, "JPEG"))


def test_a_vector_id_is_the_same_for_the_same_photo_in_the_same_storefront() -> None:
    sha = "ab" * 32
    assert vector_id("alya", sha) == vector_id("alya", sha)
    assert vector_id("alya", sha) != vector_id("blysk", sha)
    assert 0 <= vector_id("alya", sha) < 2**63  # an INT64 primary key


def test_a_lost_vector_is_restored_by_the_indexer_under_the_same_id(local_stack: LocalStack) -> None:
    # Given a photo stored through the API, whose vector was then lost (a crash between writes)
    data = fresh_image(71_001)
    image = stored(local_stack, data)
    # the upload's own S3 event runs the indexer asynchronously; let it finish, or it may restore the
    # vector between the delete below and this test's delivery
    settle(local_stack)
    index = VectorIndex(get_settings().milvus_collection)
    row = vector_id("blysk", storage.sha256_hex(data))
    assert index.has(row)
    index.delete(row)
    # When its S3 event is delivered again
    outcome = indexer().index_objects(image.bucket, [image.key])[0]
    # Then its vector is back under the same id, and another delivery changes nothing
    assert (outcome.status, outcome.reason) == ("indexed", "vector_restored")
    assert index.has(row)
    again = indexer().index_objects(image.bucket, [image.key])[0]
    assert again.status == "already_indexed"
    assert len(index.find_exact(storage.sha256_hex(data), "blysk")) == 1


@contextmanager
def collection_switched_to(name: str) -> Iterator[VectorIndex]:
    """The platform pointed at another collection (MILVUS_COLLECTION), created empty; undone after."""
    saved = os.environ.get("MILVUS_COLLECTION")
    os.environ["MILVUS_COLLECTION"] = name
    get_settings.cache_clear()
    aws.reset_clients()
    index = VectorIndex(name)
    index.ensure_collection(get_settings().embedding_dim, get_embedder().model_signature)
    try:
        yield index
    finally:
        milvus_client().drop_collection(name)
        if saved is None:
            os.environ.pop("MILVUS_COLLECTION", None)
        else:
            os.environ["MILVUS_COLLECTION"] = saved
        get_settings.cache_clear()
        aws.reset_clients()


def test_a_backfill_fills_a_new_collection_from_the_catalogue(local_stack: LocalStack) -> None:
    # Given photos in the catalogue, indexed in the current collection
    photos = [fresh_image(71_100 + i) for i in range(3)]
    for data in photos:
        stored(local_stack, data)
    settle(local_stack)  # their S3-triggered indexing must not land in the new collection
    # When the platform moves to a new, empty collection and the backfill runs over their keys
    with collection_switched_to("image_embeddings_ip_next") as index:
        outcomes = []
        for data in photos:
            key = storage.catalogue_key(storage.sha256_hex(data), "JPEG")
            page = backfill.backfill_page(indexer(), "blysk", prefix=key)
            outcomes.append(page["counts"])
        # Then every photo has its vector in the new collection, under its own id
        assert outcomes == [{"indexed": 1}] * len(photos)
        assert index.count() == len(photos)
        for data in photos:
            assert index.has(vector_id("blysk", storage.sha256_hex(data)))
        # And a rerun changes nothing
        again = [
            backfill.backfill_page(indexer(), "blysk", prefix=storage.catalogue_key(storage.sha256_hex(d), "JPEG"))
            for d in photos
        ]
        assert [page["counts"] for page in again] == [{"already_indexed": 1}] * len(photos)
        assert index.count() == len(photos)


def test_a_collection_with_auto_ids_is_refused_with_the_way_out(local_stack: LocalStack) -> None:
    # Given a collection made the way earlier versions made it (Milvus's own ids)
    from pymilvus import DataType

    client = milvus_client()
    schema = client.create_schema(auto_id=True, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=8)
    client.create_collection("image_embeddings_auto", schema=schema)
    try:
        # When it is to be used, then it is refused with the way out: a backfill into a new collection
        with pytest.raises(AutoIdCollection, match="backfill"):
            VectorIndex("image_embeddings_auto").ensure_collection(8, "any-model")
    finally:
        client.drop_collection("image_embeddings_auto")


def test_reading_a_storefronts_rows_from_milvus_lite_logs_no_timestamp_warning(
    local_stack: LocalStack, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a storefront with a stored photo, on Milvus Lite (which gives a query iterator no session time)
    stored(local_stack, fresh_image(71_077))
    settle(local_stack)
    # When its rows are read a page at a time (the reconciler and the backfill do)
    with caplog.at_level("WARNING"):
        rows = list(VectorIndex(get_settings().milvus_collection).rows("blysk", page=1))
    # Then they are read, and pymilvus's fallback to its own clock is not warned about on every read
    assert rows
    assert not [r for r in caplog.records if "mvccTs" in r.getMessage()], caplog.text
