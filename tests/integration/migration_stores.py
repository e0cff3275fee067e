"""The migration operation tests' stores: a private listings index and cache table of demo listings
on the local engines, and the Migration over them (`stores`, `migration`; test modules re-export
them by name)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opensearchpy import OpenSearch

from listing_vision.realestate.listings_index import ListingsIndex
from listing_vision.realestate.migration import Migration
from listing_vision.realestate.phrase_store import PhraseStore
from listing_vision.realestate.split_records import SplitRecords
from listing_vision.realestate.vision_cache import VisionCache
from local.stack import LocalStack
from tests.demo_stores import demo_stores, phrase_table, split_records_table

LISTINGS = 30


@pytest.fixture
def stores(local_stack: LocalStack) -> Iterator[tuple[str, str]]:
    index, table = demo_stores("ops", LISTINGS, seed=5)
    yield index, table


@pytest.fixture
def migration(local_stack: LocalStack, stores: tuple[str, str]) -> Migration:
    index, table = stores
    return Migration(
        ListingsIndex(OpenSearch(hosts=[local_stack.opensearch_url]), index),
        VisionCache(table=table),
        PhraseStore(table=phrase_table()),
        local_stack.settings.artifacts_bucket,
        SplitRecords(table=split_records_table()),
    )


def all_sources(migration: Migration) -> dict[str, dict[str, Any]]:
    migration.listings.refresh()
    hits = migration.listings.client.search(index=migration.listings.name, size=1000)["hits"]["hits"]
    return {hit["_id"]: hit["_source"] for hit in hits}
