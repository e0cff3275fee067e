"""Search quality on the demo listings: the split fields against the combined text, per labelled query.

Relevance comes from the demo generator's ground truth (local/demo_listings.py), so this runs
against a stack holding the demo data (`make run`, then `make evaluate-search`).

    python -m evaluation.search_quality [--listings 1588] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from listing_vision.realestate.search import build_query, route
from local.demo_listings import generate


def labelled_queries() -> dict[str, Any]:
    """Context queries and, for each, which demo ground truth makes a listing relevant."""
    return {
        "white exterior": lambda t: t.colour == "white",
        "gray exterior": lambda t: t.colour == "gray",
        "red exterior": lambda t: t.colour == "red",
        "brown exterior": lambda t: t.colour == "brown",
        "brick exterior": lambda t: "brick" in t.materials,
        "stone exterior": lambda t: "stone" in t.materials,
        "ranch style": lambda t: t.style == "ranch",
        "modern style": lambda t: t.style in ("modern", "mid-century modern"),
        "white cabinets": lambda t: "white cabinets" in t.interior,
        "white walls": lambda t: "white walls" in t.interior,
        "hardwood floors": lambda t: "hardwood floors" in t.interior,
        "stone accents exterior": lambda t: "stone accents" in t.exterior,
        "pool": lambda t: "in-ground pool" in t.exterior,
        "fireplace": lambda t: "fireplace" in t.interior,
        "front porch": lambda t: "front porch" in t.exterior,
        "wood deck": lambda t: "wood deck" in t.exterior,
    }


def evaluate(search: Any, index: str, listings: int = 1588, seed: int = 0) -> dict[str, Any]:
    """Per labelled query, with the combined text alone and with the split fields: precision@10,
    precision@50, and the precision of everything the query matches (with how many it matches)."""
    truth = {listing.truth.zpid: listing.truth for listing in generate(listings, seed)}
    rows = []
    for query, relevant in labelled_queries().items():
        row: dict[str, Any] = {
            "query": query,
            "field": route(query).field,
            "relevant": sum(1 for t in truth.values() if relevant(t)),
        }
        for label, split in (("combined", False), ("split", True)):
            hits = search.search(index=index, body=build_query(query, split, size=len(truth)))["hits"]["hits"]
            good = [hit["_id"] in truth and relevant(truth[hit["_id"]]) for hit in hits]
            for k in (10, 50):
                row[f"{label}_p@{k}"] = sum(good[:k]) / k
            row[f"{label}_matched"] = len(good)
            row[f"{label}_match_precision"] = round(sum(good) / len(good), 3) if good else 0.0
        rows.append(row)
    summary = {
        f"mean_{metric}_{label}": round(sum(r[f"{label}_{metric}"] for r in rows) / len(rows), 3)
        for metric in ("p@10", "p@50", "match_precision")
        for label in ("combined", "split")
    }
    return {"queries": rows, **summary}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluation.search_quality")
    parser.add_argument("--listings", type=int, default=1588, help="the demo data's size (it must be loaded)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from listing_vision.config import get_settings
    from listing_vision.realestate.listings_index import opensearch_client

    result = evaluate(opensearch_client(), get_settings().listings_index, args.listings, args.seed)
    width = max(len(r["query"]) for r in result["queries"])
    print(
        f"{'query'.ljust(width)}  relevant  P@10 comb/split  P@50 comb/split  matched comb/split  "
        "match precision comb/split"
    )
    for r in result["queries"]:
        print(
            f"{r['query'].ljust(width)}  {r['relevant']:>8}  {r['combined_p@10']:>6.2f} / {r['split_p@10']:<5.2f}  "
            f"{r['combined_p@50']:>6.2f} / {r['split_p@50']:<5.2f}  {r['combined_matched']:>7} / "
            f"{r['split_matched']:<7}   {r['combined_match_precision']:>8.3f} / {r['split_match_precision']:.3f}"
        )
    print(
        f"{'mean'.ljust(width)}  {'':>8}  {result['mean_p@10_combined']:>6.3f} / {result['mean_p@10_split']:<5.3f} "
        f" {result['mean_p@50_combined']:>6.3f} / {result['mean_p@50_split']:<5.3f}  {'':>17}   "
        f"{result['mean_match_precision_combined']:>8.3f} / {result['mean_match_precision_split']:.3f}"
    )
    print(json.dumps({k: v for k, v in result.items() if k != "queries"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
