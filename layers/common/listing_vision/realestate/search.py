"""Context-aware listing search: each query goes to the split field that describes it.

`build_query` classes a query the way the split classes a feature phrase (the feature taxonomy):
amenities (pool, hot tub, garage, …) go to `amenities_visual_features`, interior phrases (kitchen,
cabinets, floors, …) to `interior_visual_features`, exterior ones (exterior, siding, roof, a
style) to `exterior_visual_features`; so "white exterior" no longer matches "white cabinets".
Without the split fields the same words can only go to `visual_features_text`.

An amenity query matches the amenity in whatever words the vision model used: any term of the
taxonomy concept it names ("hot tub" finds "jacuzzi" and "swim spa"; plurals too), with the
query's own qualifiers still required ("front porch" needs "front", "boat dock" needs "boat"; not
generic words, like "home" in "home gym", nor words that name something else, like "kitchen" in
"kitchen with a fireplace"); or all the query's own words, as before. `evaluation/search_quality.py`
measures the effect on the demo listings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from listing_vision.realestate.taxonomy import Concept, PhraseClassifier, Taxonomy, load_taxonomy

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


def _with_plural(term: str) -> list[str]:
    last = term.rsplit(" ", 1)[-1]
    if last.endswith(("s", "x", "z", "ch", "sh")):
        return [term, term + "es"]
    if last.endswith("y") and last[-2:-1] not in ("a", "e", "i", "o", "u"):
        return [term, term[:-1] + "ies"]
    return [term, term + "s"]


def _qualifiers(taxonomy: Taxonomy, concept: Concept, words: list[str]) -> list[str]:
    """The words of a named term that narrow the concept: what precedes the longest shorter term
    of the same concept it ends with ("wood deck" → "wood"), less generic words and words that
    name something other than an amenity."""
    own = [taxonomy.term_words(t) for t in concept.terms]
    base = max((w for w in own if len(w) < len(words) and words[len(words) - len(w) :] == w), key=len, default=words)
    return [w for w in words[: len(words) - len(base)] if not _describes_elsewhere(taxonomy, w)]


def _describes_elsewhere(taxonomy: Taxonomy, word: str) -> bool:
    """A generic word ("home") or one that names something other than an amenity ("kitchen")."""
    concept = taxonomy.concept_of_word(word)
    return concept is not None and (concept.generic or concept.label != "amenity")


def amenity_query(
    text: str, field: str = FIELD_OF["amenity"], taxonomy: Taxonomy | None = None
) -> dict[str, Any] | None:
    """The amenities-field query for an amenity query, or None when it names no amenity."""
    taxonomy = taxonomy or load_taxonomy()
    tokens, named = taxonomy.amenity_matches(text)
    if not named:
        return None
    clauses: list[dict[str, Any]] = []
    covered: set[int] = set()
    extra: list[str] = []
    for match in named:
        covered.update(range(match.start, match.end))
        extra += _qualifiers(taxonomy, match.concept, tokens[match.start : match.end])
        phrases = sorted({form for term in match.concept.terms for form in _with_plural(term)})
        clauses.append({"bool": {"should": [{"match_phrase": {field: p}} for p in phrases], "minimum_should_match": 1}})
    ignored = taxonomy.separators | taxonomy.articles | taxonomy.negations
    extra += [
        w
        for i, w in enumerate(tokens)
        if i not in covered and w not in ignored and not _describes_elsewhere(taxonomy, w)
    ]
    if extra:
        clauses.append({"match": {field: {"query": " ".join(dict.fromkeys(extra)), "operator": "and"}}})
    # Or all the query's own words, as before ("screened porch" in "screened-in back porch").
    words = {"match": {field: {"query": text, "operator": "and"}}}
    return {"bool": {"should": [{"bool": {"must": clauses}}, words], "minimum_should_match": 1}}


def build_query(query: str, use_split_fields: bool = True, size: int = 10) -> dict[str, Any]:
    """The OpenSearch body: all terms must match, in the routed field or in the combined text; an
    amenity query matches any words for the amenity it names (`amenity_query`)."""
    routed = route(query)
    if use_split_fields and routed.field == FIELD_OF["amenity"]:
        expanded = amenity_query(routed.text)
        if expanded is not None:
            return {"size": size, "query": expanded}
    target = routed.field if use_split_fields else "visual_features_text"
    return {"size": size, "query": {"match": {target: {"query": routed.text, "operator": "and"}}}}
