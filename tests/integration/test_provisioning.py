"""Provisioning (listing_vision/provisioning.py): what the code expects beyond what CloudFormation
creates, made on the local engines (Milvus Lite, osmem-server), idempotently; and the stores'
absence reported as `NotProvisioned` by the data-access objects.

osmem-server has no security plugin, so the fine-grained access control steps run against a small
stand-in of the plugin's REST API (`SecurityApi`: GET and PUT of roles and role mappings, as the
plugin answers them); everything else runs on the real engines."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
from opensearchpy import OpenSearch

from listing_vision.errors import NotProvisioned
from listing_vision.jewelry.vector_index import VectorIndex, milvus_client
from listing_vision.provisioning import LISTINGS_INDEX_ACTIONS, provision
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


class SecurityApi(BaseHTTPRequestHandler):
    """The security plugin's roles and rolesmapping endpoints: GET answers `{name: entry}` (with the
    fields the plugin adds) or 404; PUT stores the body. Every PUT is counted."""

    entries: dict[str, dict[str, Any]] = {}
    puts: list[str] = []

    def do_GET(self) -> None:
        entry = self.entries.get(self.path)
        if entry is None:
            self._answer(404, {"status": "NOT_FOUND", "message": f"Resource '{self.path}' not found."})
        else:
            self._answer(200, {self.path.rsplit("/", 1)[-1]: {**entry, "reserved": False, "hidden": False}})

    def do_PUT(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        created = self.path not in self.entries
        self.entries[self.path] = body
        self.puts.append(self.path)
        self._answer(201 if created else 200, {"status": "CREATED" if created else "OK"})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def security_api() -> Iterator[tuple[OpenSearch, type[SecurityApi]]]:
    SecurityApi.entries, SecurityApi.puts = {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), SecurityApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield OpenSearch(hosts=[f"http://127.0.0.1:{server.server_address[1]}"], max_retries=0), SecurityApi
    server.shutdown()
    server.server_close()


def test_fine_grained_access_maps_each_functions_role_once(
    local_stack: LocalStack,
    empty_stores: tuple[VectorIndex, ListingsIndex],
    security_api: tuple[OpenSearch, type[SecurityApi]],
) -> None:
    search, api = security_api
    vectors, listings = empty_stores
    arns = "arn:aws:iam::123456789012:role/dev-dedupe,arn:aws:iam::123456789012:role/dev-migration"
    settings = local_stack.settings.model_copy(
        update={"opensearch_access": "fine_grained", "opensearch_role_arns": arns, "listings_index": listings.name}
    )
    # Given a domain with fine-grained access control where an operator already mapped a user to the role
    api.entries["/_plugins/_security/api/rolesmapping/listing-vision-provisioning-test"] = {
        "backend_roles": [],
        "hosts": [],
        "users": ["ops"],
    }
    # When provisioning runs
    first = provision(settings, vectors=vectors, listings=listings, search=search)
    # Then the role grants the listings index only, and both functions' roles are mapped to it, the user kept
    assert first["opensearch:role:listing-vision-provisioning-test"] == "created"
    assert first["opensearch:rolesmapping:listing-vision-provisioning-test"] == "updated"
    role = api.entries["/_plugins/_security/api/roles/listing-vision-provisioning-test"]
    assert role["index_permissions"] == [
        {"index_patterns": ["provisioning-test"], "allowed_actions": list(LISTINGS_INDEX_ACTIONS)}
    ]
    mapping = api.entries["/_plugins/_security/api/rolesmapping/listing-vision-provisioning-test"]
    assert mapping == {"backend_roles": sorted(arns.split(",")), "hosts": [], "users": ["ops"]}
    # When it runs again, Then it writes nothing
    puts = len(api.puts)
    second = provision(settings, vectors=vectors, listings=listings, search=search)
    assert set(second.values()) == {"unchanged"} and len(api.puts) == puts
