"""Search quality on the demo listings, three ways in one run: the combined text, the split before
the feature taxonomy (29 words, with its query router) and the split now (the taxonomy and the
phrase cache, with its router), per labelled query.

Both splits are computed here from the cached analyses of every listing in the index and written
to two scratch indices (deleted afterwards), so the live index is only read and the comparison
does not depend on what has been migrated. Relevance comes from the demo generator's ground truth
(local/demo_listings.py), so this runs against a stack holding the demo data: the running local
stack, found as `make migrate` finds it (LOCAL_MOTO_PORT, LOCAL_OPENSEARCH_PORT; local/endpoints.py),
unless AWS_ENDPOINT_URL or OPENSEARCH_URL say otherwise.

    python -m evaluation.search_quality [--listings 1588] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from opensearchpy import helpers

from evaluation.legacy_split import LegacyVocabulary, legacy_field, legacy_query
from listing_vision.realestate.features import SplitFeatures, feature_phrases, split_visual_features
from listing_vision.realestate.listings_index import ListingsIndex
from listing_vision.realestate.phrase_store import PhraseStore
from listing_vision.realestate.search import build_query, route
from listing_vision.realestate.vision_cache import VisionCache
from local.demo_listings import Truth, generate
from local.endpoints import Endpoints

SYSTEMS = ("combined", "before", "after")
Relevant = Callable[[Truth], bool]


def _has(name: str) -> Relevant:
    return lambda t: name in t.amenities


def labelled_queries() -> dict[str, Relevant]:
    """Context queries and, for each, which demo ground truth makes a listing relevant; the last
    twelve are amenities the demo names in several words each."""
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
        "hot tub": _has("hot tub"),
        "wood stove": _has("wood stove"),
        "screened porch": _has("screened porch"),
        "sunroom": _has("sunroom"),
        "dock": _has("dock"),
        "basement": _has("basement"),
        "ev charger": _has("ev charger"),
        "outdoor kitchen": _has("outdoor kitchen"),
        "home gym": _has("home gym"),
        "fire pit": _has("fire pit"),
        "guest house": _has("guest house"),
        "carport": _has("carport"),
    }


@contextmanager
def scratch_indices(
    index: ListingsIndex, cache: VisionCache, phrases: PhraseStore, batch: int = 200
) -> Iterator[dict[str, str]]:
    """Two copies of the listings (their combined text), one with each split's three fields."""
    search = index.client  # the scratch indices live beside it
    suffix = uuid.uuid4().hex[:8]
    names = {"before": f"{index.name}-eval-before-{suffix}", "after": f"{index.name}-eval-after-{suffix}"}
    for name in names.values():
        scratch = ListingsIndex(search, name)
        scratch.ensure_index()
        scratch.ensure_split_mapping()
    try:
        docs = list(index.scan_docs())
        for start in range(0, len(docs), batch):
            group = docs[start : start + batch]
            cached = cache.get_many(url for doc in group for url in doc.image_urls)
            classifier, _ = phrases.classifier_for(
                p for image in cached.values() for p in feature_phrases(image.analysis)[1]
            )
            splits: dict[str, list[tuple[str, str, SplitFeatures]]] = {"before": [], "after": []}
            for doc in group:
                analyses = [cached[url].analysis for url in doc.image_urls if url in cached]
                text = doc.source.get("visual_features_text", "")
                splits["before"].append((doc.zpid, text, split_visual_features(analyses, LegacyVocabulary())))
                splits["after"].append((doc.zpid, text, split_visual_features(analyses, classifier)))
            for system, rows in splits.items():
                helpers.bulk(
                    search,
                    (
                        {
                            "_index": names[system],
                            "_id": zpid,
                            "_source": {"visual_features_text": text, **s.as_fields()},
                        }
                        for zpid, text, s in rows
                    ),
                )
        for name in names.values():
            search.indices.refresh(index=name)
        yield names
    finally:
        for name in names.values():
            search.indices.delete(index=name, ignore_unavailable=True)


def evaluate(
    index: ListingsIndex,
    cache: VisionCache | None = None,
    phrases: PhraseStore | None = None,
    listings: int = 1588,
    seed: int = 0,
) -> dict[str, Any]:
    """Per labelled query and way of searching: precision@10, precision@50, how many listings match,
    the precision of all of them, and recall (relevant listings matched / relevant listings)."""
    truth = {listing.truth.zpid: listing.truth for listing in generate(listings, seed)}
    rows = []
    with scratch_indices(index, cache or VisionCache(), phrases or PhraseStore()) as names:
        for query, relevant in labelled_queries().items():
            wanted = {zpid for zpid, t in truth.items() if relevant(t)}
            row: dict[str, Any] = {
                "query": query,
                "field_before": legacy_field(query),
                "field_after": route(query).field,
                "relevant": len(wanted),
            }
            bodies = {
                "combined": (names["after"], build_query(query, use_split_fields=False, size=len(truth))),
                "before": (names["before"], legacy_query(query, size=len(truth))),
                "after": (names["after"], build_query(query, size=len(truth))),
            }
            for system, (target, body) in bodies.items():
                hits = index.client.search(index=target, body=body)["hits"]["hits"]
                good = [hit["_id"] in wanted for hit in hits]
                for k in (10, 50):
                    row[f"{system}_p@{k}"] = sum(good[:k]) / k
                row[f"{system}_matched"] = len(good)
                row[f"{system}_match_precision"] = round(sum(good) / len(good), 3) if good else 0.0
                row[f"{system}_recall"] = round(sum(good) / len(wanted), 3) if wanted else 0.0
            rows.append(row)
    amenity_queries = list(labelled_queries())[-12:]
    summary: dict[str, Any] = {}
    for subset, chosen in (("all", rows), ("amenity", [r for r in rows if r["query"] in amenity_queries])):
        for metric in ("p@10", "p@50", "match_precision", "recall"):
            for system in SYSTEMS:
                values = [r[f"{system}_{metric}"] for r in chosen]
                summary[f"mean_{metric}_{system}_{subset}"] = round(sum(values) / len(values), 3)
    return {"queries": rows, **summary}


def render(result: dict[str, Any], show: Callable[[str], None] = print) -> None:
    width = max(len(r["query"]) for r in result["queries"])
    show(
        f"{'query'.ljust(width)}  relevant   matched comb/before/after   match precision comb/before/after   "
        "recall comb/before/after   P@10 comb/before/after"
    )

    def three(row: dict[str, Any], metric: str, fmt: str) -> str:
        return " / ".join(format(row[f"{system}_{metric}"], fmt) for system in SYSTEMS)

    for r in result["queries"]:
        show(
            f"{r['query'].ljust(width)}  {r['relevant']:>8}   {three(r, 'matched', '>5'):>23}   "
            f"{three(r, 'match_precision', '.3f'):>33}   {three(r, 'recall', '.3f'):>24}   "
            f"{three(r, 'p@10', '.2f'):>20}"
        )
    for subset, label in (("all", f"mean, all {len(result['queries'])}"), ("amenity", "mean, 12 amenity queries")):
        means = {
            m: " / ".join(f"{result[f'mean_{m}_{s}_{subset}']:.3f}" for s in SYSTEMS)
            for m in ("match_precision", "recall", "p@10")
        }
        show(
            f"{label.ljust(width)}  {'':>8}   {'':>23}   {means['match_precision']:>33}   {means['recall']:>24}   "
            f"{means['p@10']:>20}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluation.search_quality")
    parser.add_argument("--listings", type=int, default=1588, help="the demo data's size (it must be loaded)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    Endpoints.from_environment().apply_defaults()  # the running local stack's, as `make migrate` reaches it
    result = evaluate(ListingsIndex.from_settings(), listings=args.listings, seed=args.seed)
    render(result)
    print(json.dumps({k: v for k, v in result.items() if k != "queries"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
