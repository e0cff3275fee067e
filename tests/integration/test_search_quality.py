"""Search quality on demo listings, three ways in one run: the combined text, the split before the
taxonomy and the split now; the split fields make context queries precise, and the taxonomy finds
amenities in whatever words the vision model used."""

from __future__ import annotations

from opensearchpy import OpenSearch

from evaluation.search_quality import evaluate, render
from listing_vision.realestate.listings_index import ListingsIndex
from listing_vision.realestate.phrase_store import PhraseStore
from listing_vision.realestate.vision_cache import VisionCache
from local.stack import LocalStack
from tests.demo_stores import demo_stores, phrase_table


def test_context_queries_and_amenities_both_splits_side_by_side(local_stack: LocalStack) -> None:
    # Given 300 demo listings (not migrated: both splits are computed from the cache by the evaluation)
    index, table = demo_stores("quality", 300, seed=3)
    search = OpenSearch(hosts=[local_stack.opensearch_url])
    # When the labelled queries run three ways
    listings = ListingsIndex(search, index)
    result = evaluate(listings, VisionCache(table=table), PhraseStore(table=phrase_table()), 300, seed=3)
    rows = {row["query"]: row for row in result["queries"]}
    shown: list[str] = []
    render(result, shown.append)
    assert len(shown) == len(rows) + 3
    # Then an exterior colour query matches only exteriors of that colour with either split, while the
    # combined text also returns listings whose white is inside
    white = rows["white exterior"]
    assert white["after_match_precision"] == white["before_match_precision"] == 1.0
    assert white["combined_matched"] > 2 * white["after_matched"] and white["combined_match_precision"] < 0.5
    # And amenity queries find the amenity in whatever words the model used: recall rises, precision holds
    assert result["mean_recall_after_amenity"] > result["mean_recall_before_amenity"] + 0.3
    assert result["mean_match_precision_after_amenity"] >= result["mean_match_precision_before_amenity"]
    assert rows["hot tub"]["after_recall"] > rows["hot tub"]["before_recall"]
    # (a phrasing the taxonomy does not know, "solarium", stays unfound without a stored class)
    assert rows["sunroom"]["after_recall"] < 1.0
    # And a look-alike no longer passes for the amenity: "pool table" was in the old amenities field
    assert rows["pool"]["after_match_precision"] > rows["pool"]["before_match_precision"]
    # And across all queries the new split is at least as precise as the old one and the combined text
    assert result["mean_match_precision_after_all"] >= result["mean_match_precision_before_all"]
    assert result["mean_match_precision_after_all"] > result["mean_match_precision_combined_all"]
    # The scratch indices are gone afterwards
    assert not [name for name in search.indices.get(index=f"{index}-eval-*") if name.startswith(index)]
