"""The classify-phrases operation: every distinct feature phrase of the cached analyses that the
taxonomy does not know is classified once (by a model when a key is set, else by the offline rule)
and its class stored in the phrase cache, which the split then reads.

Run it before `execute --force` (or after a new taxonomy version): the migration itself never
calls a model. A phrase already stored for this taxonomy version is not asked again, except that a
model, when one is configured, replaces classes the offline rule stored. A provider that fails
stops the run with what was stored so far kept; running it again resumes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from listing_vision.config import get_settings
from listing_vision.errors import VisionError
from listing_vision.observability import logger
from listing_vision.realestate.features import feature_phrases
from listing_vision.realestate.phrase_classes import PhraseClassProvider, PhraseToClassify, get_phrase_class_provider
from listing_vision.realestate.phrase_store import PhraseStore, StoredPhrase
from listing_vision.realestate.taxonomy import Taxonomy, load_taxonomy


@dataclass
class Sighting:
    phrase: str  # the first spelling seen
    exterior: int = 0
    interior: int = 0


@dataclass
class Discovered:
    analyses: int
    distinct: int  # distinct normalised phrases
    unknown: dict[str, Sighting]  # cache key → sighting, for the phrases the taxonomy does not know


def discover(analyses: Iterable[Mapping[str, Any]], taxonomy: Taxonomy) -> Discovered:
    """The distinct phrases of the analyses, and for those the taxonomy does not know, how often
    exterior and interior images named them."""
    count = 0
    seen: set[str] = set()
    unknown: dict[str, Sighting] = {}
    for analysis in analyses:
        count += 1
        image_type, phrases = feature_phrases(analysis)
        for phrase in phrases:
            canonical = taxonomy.canonical(phrase)
            seen.add(canonical)
            if taxonomy.classify(phrase) is not None:
                continue
            sighting = unknown.setdefault(taxonomy.key(phrase), Sighting(phrase))
            if image_type == "exterior":
                sighting.exterior += 1
            elif image_type == "interior":
                sighting.interior += 1
    return Discovered(count, len(seen), unknown)


def classify_phrases(
    analyses: Iterable[Mapping[str, Any]],
    store: PhraseStore | None = None,
    provider: PhraseClassProvider | None = None,
    taxonomy: Taxonomy | None = None,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Classify and store the unknown phrases of these analyses; returns the report."""
    taxonomy = taxonomy or load_taxonomy()
    store = store or PhraseStore()
    provider = provider or get_phrase_class_provider(taxonomy)
    found = discover(analyses, taxonomy)
    stored = store.get_many(found.unknown)
    todo = [
        key
        for key in sorted(found.unknown)
        if key not in stored or (provider.method == "llm" and stored[key].method == "offline_rule")
    ]
    report: dict[str, Any] = {
        "operation": "classify_phrases",
        "taxonomy_version": taxonomy.version,
        "provider": provider.name,
        "model": provider.model,
        "analyses": found.analyses,
        "distinct_phrases": found.distinct,
        "known_to_taxonomy": found.distinct - len(found.unknown),
        "unknown": len(found.unknown),
        "already_classified": len(found.unknown) - len(todo),
        "to_classify": len(todo),
        "classified": 0,
        "amenities_found": 0,
        "dry_run": dry_run,
    }
    if dry_run:
        report["catalogue"] = store.catalogue(taxonomy.version)
        report["passed"] = True
        return report
    size = get_settings().phrase_classify_batch
    for start in range(0, len(todo), size):
        keys = todo[start : start + size]
        batch = [
            PhraseToClassify(found.unknown[k].phrase, found.unknown[k].exterior, found.unknown[k].interior)
            for k in keys
        ]
        try:
            verdicts = provider.classify(batch)
        except VisionError as error:  # stop; what is stored stays, a rerun resumes
            logger.warning("phrase classification stopped", extra={"code": error.code, "done": report["classified"]})
            report["failed"] = {"code": error.code, "message": error.message, "remaining": len(todo) - start}
            break
        rows = [
            StoredPhrase(
                key=key,
                phrase=item.phrase,
                label=verdicts[item.phrase].label,
                method=provider.method,
                facet=verdicts[item.phrase].facet,
                model=provider.model,
                seen_exterior=item.seen_exterior,
                seen_interior=item.seen_interior,
            )
            for key, item in zip(keys, batch, strict=True)
        ]
        store.put_many(rows)
        report["classified"] += len(rows)
        report["amenities_found"] += sum(1 for row in rows if row.label == "amenity")
        if progress:
            progress(len(rows))
    report["catalogue"] = store.catalogue(taxonomy.version)
    report["passed"] = "failed" not in report
    return report
