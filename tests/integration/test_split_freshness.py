"""Splits that stay fresh: each listing's split record (the taxonomy and the hash of the cached
analyses it came from, DynamoDB beside the listing) tells coverage which splits are stale and
execute which to re-split, against the real emulators (moto DynamoDB, osmem-server OpenSearch).

Writes are counted where they land: a listing's `_version` in OpenSearch, and the BatchWriteItem
requests the records' own client sends (a botocore event hook on a client of this test)."""

from __future__ import annotations

import tomllib
from collections import Counter
from collections.abc import Iterator
from importlib import resources
from typing import Any

import boto3
import pytest
from opensearchpy import OpenSearch

from listing_vision.realestate.features import SPLIT_FIELDS
from listing_vision.realestate.listings_index import ListingsIndex
from listing_vision.realestate.migration import Migration
from listing_vision.realestate.phrase_store import PhraseStore
from listing_vision.realestate.split_records import SplitRecords
from listing_vision.realestate.taxonomy import Taxonomy, load_taxonomy, parse_taxonomy
from listing_vision.realestate.vision_cache import CachedImage, VisionCache
from local.stack import LocalStack
from tests.demo_stores import demo_stores, phrase_table, split_records_table

LISTINGS = 24
POOL = {"image_type": "exterior", "features": ["swimming pool", "pool deck"], "confidence": "high"}


class Stores:
    """A private index, cache, phrase cache and split records table, and the record writes counted."""

    def __init__(self, local_stack: LocalStack):
        self.index, self.cache_table = demo_stores("fresh", LISTINGS, seed=21)
        self.phrases, self.records_table = phrase_table(), split_records_table()
        self.search = OpenSearch(hosts=[local_stack.opensearch_url])
        self.client = boto3.client(
            "dynamodb",
            endpoint_url=local_stack.moto_url,
            region_name=local_stack.settings.aws_region,
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        self.requests: Counter[str] = Counter()
        self.client.meta.events.register("provide-client-params.dynamodb", self.count)

    def count(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.requests[model.name] += 1
        if model.name == "BatchWriteItem":
            self.requests["records_written"] += len(params["RequestItems"][self.records_table])

    def migration(self, taxonomy: Taxonomy | None = None) -> Migration:
        return Migration(
            ListingsIndex(self.search, self.index),
            VisionCache(table=self.cache_table),
            PhraseStore(table=self.phrases),
            "artifacts",
            SplitRecords(table=self.records_table, client=self.client),
            taxonomy,
        )

    def versions(self) -> dict[str, int]:
        self.search.indices.refresh(index=self.index)
        hits = self.search.search(index=self.index, body={"size": 1000, "version": True})["hits"]["hits"]
        return {hit["_id"]: hit["_version"] for hit in hits}

    def writes(self) -> int:
        """Record writes since the last call."""
        written = self.requests["records_written"]
        self.requests.clear()
        return written


@pytest.fixture
def stores(local_stack: LocalStack) -> Iterator[Stores]:
    yield Stores(local_stack)


def migrated(stores: Stores) -> tuple[Migration, dict[str, Any]]:
    """The index migrated once, its records written."""
    migration = stores.migration()
    first = migration.execute(batch_size=10)
    assert first["counts"]["updated"] == first["counts"]["recorded"] > 0, first
    stores.writes()
    return migration, first


def test_a_new_cached_analysis_makes_only_its_listing_stale_and_execute_resplits_only_it(stores: Stores) -> None:
    # Given the demo index migrated, its splits recorded: coverage finds none stale
    migration, first = migrated(stores)
    splits = migration.coverage(sample=None)["splits"]
    assert (splits["migrated"], splits["fresh"], splits["stale"]) == (first["counts"]["updated"],) * 2 + (0,)
    assert splits["taxonomy"] == load_taxonomy().fingerprint
    # And a rerun writes nothing: no listing, no record
    versions = stores.versions()
    again = migration.execute(batch_size=10)
    assert again["counts"]["skipped_migrated"] == first["counts"]["updated"] and "updated" not in again["counts"]
    assert "recorded" not in again["counts"] and stores.writes() == 0 and stores.versions() == versions
    # Given a listing with a photo the cache did not hold, and then an analysis of it cached (a pool)
    rows = migration.dry_run(sample=None, force=True)["listings"]
    partial = next(row["zpid"] for row in rows if row.get("coverage") == "partial")
    doc = migration.listings.get_docs([partial])[partial]
    missing = next(url for url in doc.image_urls if not migration.cache.get_many([url]))
    migration.cache.put(CachedImage(missing, POOL, image_hash="h"))
    # When coverage looks: that listing alone is stale, because its analyses changed
    splits = migration.coverage(sample=None)["splits"]
    assert (splits["stale"], splits["stale_analyses_changed"], splits["stale_taxonomy_changed"]) == (1, 1, 0)
    assert splits["fresh"] == first["counts"]["updated"] - 1
    # And a dry run says execute would re-split it, and leave another alone
    other = next(row["zpid"] for row in rows if row["zpid"] != partial and row["status"] == "would_leave_unchanged")
    dry = {row["zpid"]: row for row in migration.dry_run(zpids=[partial, other])["listings"]}
    assert (dry[partial]["split"], dry[partial]["status"]) == ("analyses_changed", "would_update")
    assert (dry[other]["split"], dry[other]["status"]) == ("fresh", "would_skip_migrated")
    # When execute runs, not forced
    result = migration.execute(batch_size=10)
    # Then it re-split that listing only: one listing written (its version alone went up), one record
    assert result["counts"]["updated"] == 1 and result["counts"]["stale_analyses_changed"] == 1
    assert result["counts"]["skipped_migrated"] == first["counts"]["updated"] - 1
    after = stores.versions()
    assert {z for z in after if after[z] != versions[z]} == {partial} and after[partial] == versions[partial] + 1
    assert stores.writes() == 1
    assert "swimming pool" in migration.listings.get_docs([partial])[partial].source["amenities_visual_features"]
    # And then nothing is stale, and a rerun writes nothing
    assert migration.coverage(sample=None)["splits"]["stale"] == 0
    rerun = migration.execute(batch_size=10)
    assert "updated" not in rerun["counts"] and stores.writes() == 0 and stores.versions() == after


def test_a_rewritten_analysis_is_a_change_and_rewriting_the_same_one_is_not(stores: Stores) -> None:
    # Given the demo index migrated, and one listing's first cached photo
    migration, _ = migrated(stores)
    rows = migration.dry_run(sample=None, force=True)["listings"]
    zpid = next(row["zpid"] for row in rows if row.get("coverage") == "full")
    url = migration.listings.get_docs([zpid])[zpid].image_urls[0]
    image = migration.cache.get_many([url])[url]
    # When the same analysis is cached again (a re-analysis that came out the same): nothing is stale
    migration.cache.put(CachedImage(url, dict(image.analysis), image_hash="h2"))
    assert migration.coverage(zpids=[zpid])["splits"]["stale"] == 0
    # When it is re-analysed differently: that listing is stale
    migration.cache.put(CachedImage(url, {**image.analysis, "features": ["hot tub"]}, image_hash="h3"))
    assert migration.coverage(zpids=[zpid])["splits"]["stale_analyses_changed"] == 1


def test_a_taxonomy_change_makes_every_split_stale(stores: Stores) -> None:
    # Given the demo index migrated under the shipped taxonomy
    _, first = migrated(stores)
    versions = stores.versions()
    # When a new taxonomy version ships (the same terms, its version bumped)
    data = tomllib.loads(
        resources.files("listing_vision.realestate").joinpath("feature_taxonomy.toml").read_text(encoding="utf-8")
    )
    bumped = parse_taxonomy({**data, "version": data["version"] + "-next"})
    migration = stores.migration(bumped)
    # Then coverage counts every migrated split stale, for that reason
    splits = migration.coverage(sample=None)["splits"]
    migrated_count = first["counts"]["updated"]
    assert (splits["stale"], splits["stale_taxonomy_changed"], splits["fresh"]) == (migrated_count, migrated_count, 0)
    assert splits["taxonomy"] == bumped.fingerprint != load_taxonomy().fingerprint
    # And execute, not forced, re-splits them all: the same terms give the same fields, so no
    # listing is written, only every record (in BatchWriteItems of 25)
    result = migration.execute(batch_size=10)
    assert result["counts"]["stale_taxonomy_changed"] == migrated_count and "updated" not in result["counts"]
    assert result["counts"]["unchanged"] == result["counts"]["recorded"] == migrated_count
    assert stores.versions() == versions and stores.writes() == migrated_count
    # And a rerun under the new version writes nothing
    again = migration.execute(batch_size=10)
    assert again["counts"]["skipped_migrated"] == migrated_count and stores.writes() == 0


def test_an_edit_without_a_version_bump_still_changes_the_fingerprint() -> None:
    # Given the shipped taxonomy's parsed file, and the same file with one more term in a concept
    data = tomllib.loads(
        resources.files("listing_vision.realestate").joinpath("feature_taxonomy.toml").read_text(encoding="utf-8")
    )
    concepts = [dict(concept) for concept in data["concept"]]
    concepts[0]["terms"] = [*concepts[0]["terms"], "zzz unheard of term"]
    # When both are parsed, the version is the same and the fingerprint is not
    edited = parse_taxonomy({**data, "concept": concepts})
    assert edited.version == load_taxonomy().version and edited.fingerprint != load_taxonomy().fingerprint
    # And the same content parses to the same fingerprint
    assert parse_taxonomy(data).fingerprint == load_taxonomy().fingerprint


def test_listings_migrated_before_records_were_kept_are_recorded_without_being_rewritten(stores: Stores) -> None:
    # Given the index migrated, then its records lost (as for listings migrated before records were kept)
    migration, first = migrated(stores)
    versions = stores.versions()
    stores.client.delete_table(TableName=stores.records_table)
    stores.records_table = split_records_table()
    migration = stores.migration()
    splits = migration.coverage(sample=None)["splits"]
    assert splits["stale_unrecorded"] == splits["stale"] == first["counts"]["updated"]
    # When execute runs, not forced: every split is recomputed, none differs, so only records are written
    result = migration.execute(batch_size=10)
    assert result["counts"]["unchanged"] == result["counts"]["recorded"] == first["counts"]["updated"]
    assert stores.versions() == versions
    assert migration.coverage(sample=None)["splits"]["stale"] == 0
    # And the listings' documents still hold the three fields and nothing of the records
    doc = next(iter(migration.listings.get_docs(sorted(versions)[:1]).values()))
    assert all(f in doc.source for f in SPLIT_FIELDS) and not {"taxonomy", "analyses"} & set(doc.source)


def test_a_rollback_leaves_the_records_and_the_next_execute_rewrites_only_the_listings(stores: Stores) -> None:
    # Given the index migrated, then rolled back (the three fields removed; the records stay)
    migration, first = migrated(stores)
    migration.rollback("remove", batch_size=10)
    splits = migration.coverage(sample=None)["splits"]
    assert (splits["migrated"], splits["unmigrated"]) == (0, LISTINGS)
    # When execute runs again
    result = migration.execute(batch_size=10)
    # Then every listing is migrated again, and its record, already naming these inputs, is not rewritten
    assert result["counts"]["updated"] == first["counts"]["updated"] and "recorded" not in result["counts"]
    assert stores.writes() == 0 and migration.coverage(sample=None)["splits"]["fresh"] == first["counts"]["updated"]
