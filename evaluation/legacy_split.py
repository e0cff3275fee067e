"""The split and the query router before the feature taxonomy: a feature containing one of 29
words was an amenity, and a query went to the field its words named.

Kept only to measure the taxonomy against, in the same run (the phrase and search evaluations).
"""

from __future__ import annotations

import re

from listing_vision.realestate.features import normalise

LEGACY_AMENITY_VOCABULARY: tuple[str, ...] = (
    "porch",
    "garage",
    "carport",
    "pool",
    "hot tub",
    "spa",
    "deck",
    "patio",
    "balcony",
    "fireplace",
    "fence",
    "fenced yard",
    "yard",
    "garden",
    "pergola",
    "gazebo",
    "fire pit",
    "outdoor kitchen",
    "shed",
    "solar panels",
    "sprinkler",
    "dock",
    "tennis court",
    "basketball court",
    "playground",
    "sauna",
    "gym",
    "wine cellar",
    "elevator",
)
_LEGACY_PATTERN = re.compile(r"\b(" + "|".join(re.escape(term) for term in LEGACY_AMENITY_VOCABULARY) + r")s?\b")


class LegacyVocabulary:
    """The 29-word amenity test the split used before the taxonomy."""

    def is_amenity(self, phrase: str) -> bool:
        return bool(_LEGACY_PATTERN.search(normalise(phrase)))


# The query router before the taxonomy: an amenity word sends a query to the amenities field, an
# interior word to the interior field, anything else to the exterior field; all words must match.
LEGACY_INTERIOR_WORDS = (
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


def legacy_field(query: str) -> str:
    text = " ".join(query.lower().split())
    if _LEGACY_PATTERN.search(text):
        return "amenities_visual_features"
    if set(re.findall(r"[a-z-]+", text)) & set(LEGACY_INTERIOR_WORDS):
        return "interior_visual_features"
    return "exterior_visual_features"


def legacy_query(query: str, size: int = 10) -> dict[str, object]:
    text = " ".join(query.lower().split())
    return {"size": size, "query": {"match": {legacy_field(text): {"query": text, "operator": "and"}}}}
