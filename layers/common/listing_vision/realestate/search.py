"""Context-aware listing search: each query goes to the split field that describes it.

`build_query` classes a query the way the split classes a feature phrase (the feature taxonomy):
amenities (pool, hot tub, garage, …) go to `amenities_visual_features`, interior phrases (kitchen,
cabinets, floors, …) to `interior_visual_features`, exterior ones (exterior, siding, roof, a
style) to `exterior_visual_features`; so "white exterior" no longer matches "white cabinets".
Without the split fields the same words can only go to `visual_features_text`.
`evaluation/search_quality.py` measures the effect on the demo listings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from listing_vision.realestate.taxonomy import PhraseClassifier

FIELD_OF = {
    "amenity": "amenities_visual_features",
    "interior": "interior_visual_features",
    "exterior": "exterior_visual_features",
}


@dataclass(frozen=True)
class Routed:
    field: str
    text: str


def route(query: str, classifier: PhraseClassifier | None = None) -> Routed:
    """Which split field a query is about: the query is classed like a feature phrase (the
    feature taxonomy), so an amenity query goes to the amenities field."""
    text = " ".join(query.lower().split())
    return Routed(FIELD_OF[(classifier or PhraseClassifier()).classify(text).label], text)


def build_query(query: str, use_split_fields: bool = True, size: int = 10) -> dict[str, Any]:
    """The OpenSearch body: all terms must match, in the routed field or in the combined text."""
    routed = route(query)
    target = routed.field if use_split_fields else "visual_features_text"
    return {"size": size, "query": {"match": {target: {"query": routed.text, "operator": "and"}}}}
