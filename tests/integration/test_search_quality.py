"""The split fields make context queries precise: measured on migrated demo listings."""

from __future__ import annotations

from opensearchpy import OpenSearch

from evaluation.search_quality import evaluate
from listing_vision.realestate.migration import Migration
from listing_vision.realestate.vision_cache import VisionCache
from local.stack import LocalStack
from tests.demo_stores import demo_stores


def test_white_exterior_no_longer_matches_white_cabinets(local_stack: LocalStack) -> None:
    # Given 300 demo listings, migrated
    index, table = demo_stores("quality", 300, seed=3)
    search = OpenSearch(hosts=[local_stack.opensearch_url])
    Migration(search=search, cache=VisionCache(table=table), index=index).execute(batch_size=100)
    search.indices.refresh(index=index)
    # When the labelled context queries run both ways
    result = evaluate(search, index, listings=300, seed=3)
    rows = {row["query"]: row for row in result["queries"]}
    # Then an exterior colour query matches only exteriors of that colour with the split fields,
    # while the combined text also returns listings whose white is inside
    white = rows["white exterior"]
    assert white["split_match_precision"] == 1.0
    assert white["combined_matched"] > 2 * white["split_matched"]
    assert white["combined_match_precision"] < 0.5
    # And across all queries the split fields are at least as precise
    assert result["mean_match_precision_split"] > result["mean_match_precision_combined"]
    assert result["mean_p@10_split"] >= result["mean_p@10_combined"] - 0.05
