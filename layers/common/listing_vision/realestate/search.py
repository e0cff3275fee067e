"""Context-aware listing search: each part of a query goes to the split field that describes it.

`build_query` sends each part of a query to the field that describes it: amenity words (pool,
garage, porch, …) to `amenities_visual_features`, interior words (kitchen, cabinets, floors, …)
to `interior_visual_features`, anything else (exterior, siding, roof, a style) to
`exterior_visual_features`; so "white exterior" no longer matches "white cabinets". Without the
split fields the same words can only go to `visual_features_text`. `evaluation/search_quality.py`
measures the effect on the demo listings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from listing_vision.realestate.features import AMENITY_VOCABULARY

INTERIOR_WORDS = (
    "interior",
    "inside",
    "kitchen",
    "cabinet",
    "cabinets",
    "countertop",
    "countertops",
    "floor",
    "floors",
    "ceiling",
    "closet",
    "bathroom",
    "tub",
    "shower",
    "vanity",
    "island",
    "walls",
    "molding",
    "shelves",
    "nook",
    "beams",
    "carpet",
    "appliances",
)


@dataclass(frozen=True)
class Routed:
    field: str
    text: str


def route(query: str) -> Routed:
    """Which split field a query is about (amenities, then interior, then exterior words win)."""
    text = " ".join(query.lower().split())
    words = set(re.findall(r"[a-z-]+", text))
    if any(re.search(rf"\b{re.escape(term)}s?\b", text) for term in AMENITY_VOCABULARY):
        return Routed("amenities_visual_features", text)
    if words & set(INTERIOR_WORDS):
        return Routed("interior_visual_features", text)
    return Routed("exterior_visual_features", text)


def build_query(query: str, use_split_fields: bool = True, size: int = 10) -> dict[str, Any]:
    """The OpenSearch body: all terms must match, in the routed field or in the combined text."""
    routed = route(query)
    target = routed.field if use_split_fields else "visual_features_text"
    return {"size": size, "query": {"match": {target: {"query": routed.text, "operator": "and"}}}}
