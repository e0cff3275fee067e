"""Provisioning (listing_vision/provisioning.py): what the code expects beyond what CloudFormation
creates, made on the local engines (Milvus Lite, osmem-server), idempotently; and the stores'
absence reported as `NotProvisioned` by the data-access objects.

osmem-server has no security plugin and no engine that has one installs here, so the fine-grained
access control steps' decisions are unit-tested as data (tests/unit/test_provisioning_roles.py)
and their REST calls are not exercised against an engine."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from listing_vision.errors import NotProvisioned
from listing_vision.jewelry.vector_index import VectorIndex, milvus_client
from listing_vision.provisioning import provision
from listing_vision.realestate.listings_index import LISTINGS_MAPPING, ListingsIndex, MappingConflict, opensearch_client
from local.stack import LocalStack


@pytest.fixture
def empty_stores(local_stack: LocalStack) -> Iterator[tuple[VectorIndex, ListingsIndex]]:
    """A collection and an index nothing has made yet (dropped again after the test)."""
    vectors = VectorIndex("provisioning_test")
    listings = ListingsIndex(opensearch_client(), "provisioning-test")
    yield vectors, listings
    milvus_client().drop_collection(vectors.collection)
    opensearch_client().indices.delete(index=listings.name, ignore_unavailable=True)


def test_provisioning_creates_each_store_and_a_second_run_changes_nothing(
    local_stack: LocalStack, empty_stores: tuple[VectorIndex, ListingsIndex]
) -> None:
    vectors, listings = empty_stores
    # Given neither the collection nor the index exists
    assert not vectors.exists() and not listings.exists()
    # When provisioning runs
    first = provision(local_stack.settings, vectors=vectors, listings=listings)
    # Then it made both: the collection with its HNSW/IP index, loaded; the index with the platform's mapping
    assert first == {
        "milvus:collection:provisioning_test": "created",
        "opensearch:index:provisioning-test": "created",
        # every stored catalogue record already in GET /images' index (test_catalogue_listing.py lists old ones)
        f"dynamodb:listed:{local_stack.settings.catalogue_table}": "unchanged",
    }
    client = milvus_client()
    index = client.describe_index(vectors.collection, index_name="embedding")
    assert (index["index_type"], index["metric_type"]) == ("HNSW", "IP")
    assert str(client.get_load_state(vectors.collection)["state"]).endswith("Loaded")
    mapping = opensearch_client().indices.get_mapping(index=listings.name)[listings.name]["mappings"]
    assert mapping["properties"] == LISTINGS_MAPPING["properties"]
    # And a row written now is found (the collection is usable as created)
    row = vectors.ensure_vector(np.eye(local_stack.settings.embedding_dim)[0], "p.jpg", "alya", "a" * 64)
    assert vectors.has(row)
    # When it runs again
    second = provision(local_stack.settings, vectors=vectors, listings=listings)
    # Then nothing changed, the row included
    assert set(second.values()) == {"unchanged"}
    assert vectors.count() == 1


def test_a_listings_index_mapped_otherwise_is_refused_and_left_alone(
    local_stack: LocalStack, empty_stores: tuple[VectorIndex, ListingsIndex]
) -> None:
    vectors, listings = empty_stores
    # Given an index someone made with zpid as text (dynamic mapping)
    opensearch_client().indices.create(
        index=listings.name, body={"mappings": {"properties": {"zpid": {"type": "text"}}}}
    )
    # When provisioning runs, Then it refuses, naming the field, and changes nothing
    with pytest.raises(MappingConflict, match="zpid"):
        provision(local_stack.settings, vectors=vectors, listings=listings)
    mapping = opensearch_client().indices.get_mapping(index=listings.name)[listings.name]["mappings"]
    assert mapping["properties"] == {"zpid": {"type": "text"}}


def test_the_stacks_provisioning_function_ran_and_runs_again_without_changes(local_stack: LocalStack) -> None:
    # Given the stack started from empty stores and ran its provisioning function
    settings = local_stack.settings
    assert local_stack.provisioning == {
        f"milvus:collection:{settings.milvus_collection}": "created",
        f"opensearch:index:{settings.listings_index}": "created",
        f"dynamodb:listed:{settings.catalogue_table}": "unchanged",  # an empty table: nothing to list
    }
    # When the function is invoked again (as a redeploy's trigger would)
    again = local_stack.provision_stores()
    # Then it reports nothing to do
    assert set(again.values()) == {"unchanged"}


def test_missing_stores_are_not_provisioned_errors_and_no_write_creates_them(local_stack: LocalStack) -> None:
    vectors = VectorIndex("never_provisioned")
    listings = ListingsIndex(opensearch_client(), "never-provisioned")
    # Given neither exists, When the data-access objects read or write, Then each raises NotProvisioned
    with pytest.raises(NotProvisioned) as search:
        vectors.search(np.eye(local_stack.settings.embedding_dim)[0], website="alya", limit=1, ef=8)
    assert search.value.code == "not_provisioned" and search.value.details["name"] == "never_provisioned"
    with pytest.raises(NotProvisioned):
        vectors.require()
    with pytest.raises(NotProvisioned):
        list(listings.iter_ids())
    with pytest.raises(NotProvisioned):
        listings.get_docs(["1"])
    with pytest.raises(NotProvisioned):
        listings.put_guarded("1", {"zpid": "1"}, None)
    # And the write did not create the index with a guessed mapping
    assert not listings.exists() and not vectors.exists()
