"""The split before the feature taxonomy: a feature containing one of 29 words was an amenity.

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
