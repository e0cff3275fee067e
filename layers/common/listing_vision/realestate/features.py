"""Aggregating per-image vision analyses into listing text: the combined `visual_features_text`
and its split into `exterior`, `interior` and `amenities` fields.

Pure and deterministic: the same analyses in any order give the same text (BatchGetItem returns
items in no particular order). The rules, in full:

- Strings are normalised: trimmed, lower-cased, inner whitespace collapsed; empty values dropped.
- `image_type` decides where an analysis counts: `exterior` or `interior` (any casing); other
  types (aerial, floor plan, missing) are ignored.
- Every vote is weighted by the analysis's confidence: high 3, medium 2, low 1 (missing or
  unknown: medium). A value's weight is the sum over the analyses that name it; an analysis that
  repeats a value counts it once.
- Exterior style and colour: the heaviest value wins (a confidence-weighted majority vote); a tie goes to the
  alphabetically first value. Both come from exterior analyses only.
- Lists (materials, features, visual features) are ordered by weight, heaviest first, ties
  alphabetically, and capped (`LIMITS`).
- Amenities are the features, from either kind of image, that the feature taxonomy
  (`taxonomy.py`, data in `feature_taxonomy.toml`) classes as amenities; a phrase the taxonomy
  does not know takes its cached class (`PhraseClassifier(cached=…)`, filled once per phrase by
  the `classify-phrases` operation), else the offline rule: not an amenity. Amenities appear only
  in the amenities text. Everything else an interior image names stays in the interior text;
  nothing from an interior analysis reaches the exterior text.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from listing_vision.realestate.taxonomy import PhraseClassifier

CONFIDENCE_WEIGHT = {"high": 3, "medium": 2, "low": 1}
DEFAULT_WEIGHT = 2

# Amenities feed filters, and a listing names one amenity in several words (one per photo): a cap
# that cut one off would hide the listing from that filter, so theirs is the widest.
LIMITS = {"materials": 4, "exterior": 8, "interior": 12, "amenities": 24}


@dataclass(frozen=True)
class SplitFeatures:
    exterior: str
    interior: str
    amenities: str

    def as_fields(self) -> dict[str, str]:
        """The three OpenSearch fields the migration writes."""
        return {
            "exterior_visual_features": self.exterior,
            "interior_visual_features": self.interior,
            "amenities_visual_features": self.amenities,
        }


SPLIT_FIELDS: tuple[str, ...] = ("exterior_visual_features", "interior_visual_features", "amenities_visual_features")


def normalise(value: Any) -> str:
    return " ".join(str(value).split()).lower() if value is not None else ""


class AmenityTest(Protocol):
    def is_amenity(self, phrase: str) -> bool: ...


def _weight(analysis: Mapping[str, Any]) -> int:
    return CONFIDENCE_WEIGHT.get(normalise(analysis.get("confidence")), DEFAULT_WEIGHT)


def _values(analysis: Mapping[str, Any], key: str) -> set[str]:
    raw = analysis.get(key)
    if raw is None:
        return set()
    items = [raw] if isinstance(raw, str) else list(raw) if isinstance(raw, Iterable) else [raw]
    return {v for v in (normalise(item) for item in items) if v and v not in ("null", "none", "n/a", "unknown")}


def _ranked(weights: Mapping[str, int], limit: int | None = None) -> list[str]:
    ordered = sorted(weights, key=lambda value: (-weights[value], value))
    return ordered[:limit] if limit else ordered


PHRASE_KEYS = ("features", "visual_features")  # the values the split classifies as amenity or not


def feature_phrases(analysis: Mapping[str, Any]) -> tuple[str, set[str]]:
    """An analysis's image type (`exterior`, `interior` or other) and the normalised phrases the split classifies."""
    if not isinstance(analysis, Mapping):
        return "", set()
    return normalise(analysis.get("image_type")), {v for key in PHRASE_KEYS for v in _values(analysis, key)}


def _tally(analyses: Iterable[Mapping[str, Any]], key: str) -> dict[str, int]:
    weights: dict[str, int] = defaultdict(int)
    for analysis in analyses:
        for value in _values(analysis, key):
            weights[value] += _weight(analysis)
    return weights


def _winner(weights: Mapping[str, int]) -> str | None:
    ranked = _ranked(weights)
    return ranked[0] if ranked else None


def _of_type(analyses: Iterable[Mapping[str, Any]], image_type: str) -> list[Mapping[str, Any]]:
    return [a for a in analyses if isinstance(a, Mapping) and normalise(a.get("image_type")) == image_type]


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def split_visual_features(
    analyses: Iterable[Mapping[str, Any]], classifier: AmenityTest | None = None
) -> SplitFeatures:
    """Per-image analyses → the three context texts (empty strings where nothing is known).
    `classifier` decides which features are amenities (default: the taxonomy, offline rule)."""
    analyses = list(analyses)
    classifier = classifier or PhraseClassifier()
    exterior = _of_type(analyses, "exterior")
    interior = _of_type(analyses, "interior")

    amenity_weights: dict[str, int] = defaultdict(int)
    exterior_weights: dict[str, int] = defaultdict(int)
    interior_weights: dict[str, int] = defaultdict(int)
    for kind, target in ((exterior, exterior_weights), (interior, interior_weights)):
        for key in PHRASE_KEYS:
            for value, weight in _tally(kind, key).items():
                (amenity_weights if classifier.is_amenity(value) else target)[value] += weight

    style = _winner(_tally(exterior, "architecture_style"))
    colour = _winner(_tally(exterior, "exterior_color"))
    materials = _ranked(_tally(exterior, "materials"), LIMITS["materials"])
    exterior_features = _ranked(exterior_weights, LIMITS["exterior"])

    head = " ".join(part for part in (f"{style} style" if style else "", f"{colour}" if colour else "") if part)
    exterior_text = ""
    if head or exterior_features or materials:
        exterior_text = f"{head} exterior".strip() if head else "exterior"
        if exterior_features:
            exterior_text += " with " + _join(exterior_features)
        if materials:
            exterior_text += "; materials: " + ", ".join(materials)
    return SplitFeatures(
        exterior=exterior_text,
        interior=", ".join(_ranked(interior_weights, LIMITS["interior"])),
        amenities=", ".join(_ranked(amenity_weights, LIMITS["amenities"])),
    )


def visual_features_text(analyses: Iterable[Mapping[str, Any]], classifier: AmenityTest | None = None) -> str:
    """The combined text, as uploads produced it before the split: the parts joined into sentences."""
    split = split_visual_features(analyses, classifier)
    parts = [
        split.exterior.capitalize() if split.exterior else "",
        f"Interior: {split.interior}" if split.interior else "",
        f"Amenities: {split.amenities}" if split.amenities else "",
    ]
    text = ". ".join(part for part in parts if part)
    return text + "." if text else ""
