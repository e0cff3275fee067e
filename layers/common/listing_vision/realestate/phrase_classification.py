"""The classify-phrases operation: every distinct feature phrase of the cached analyses that the
taxonomy does not know is classified once (by a model when a key is set, else by the offline rule)
and its class stored in the phrase cache, which the split then reads.

Run it before `execute --force` (or after a new taxonomy version): the migration itself never
calls a model. A phrase already stored for this taxonomy version is not asked again, except that a
model, when one is configured, replaces classes the offline rule stored. A provider that fails
stops the run with what was stored so far kept; running it again resumes, as does a run cut
short by `limit` (at most that many phrases classified per run, so each run fits in one Lambda
invocation). The analyses come from one or more sources (the segments of a parallel scan of the
vision cache), read in parallel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from listing_vision.concurrency import thread_map
from listing_vision.config import get_settings
from listing_vision.errors import VisionError
from listing_vision.observability import logger
from listing_vision.realestate.features import feature_phrases
from listing_vision.realestate.phrase_classes import (
    OfflinePhraseClasses,
    PhraseClassProvider,
    PhraseToClassify,
    get_phrase_class_provider,
)
from listing_vision.realestate.phrase_store import PhraseStore, StoredPhrase
from listing_vision.realestate.taxonomy import Taxonomy, load_taxonomy

MAX_MODEL_PHRASE = 200  # characters


@dataclass
class Sighting:
    phrase: str  # the first spelling seen
    exterior: int = 0
    interior: int = 0


@dataclass
class Discovered:
    analyses: int = 0
    seen: set[str] = field(default_factory=set)  # distinct normalised phrases
    unknown: dict[str, Sighting] = field(
        default_factory=dict
    )  # cache key → sighting, phrases the taxonomy does not know

    def merge(self, other: Discovered) -> Discovered:
        self.analyses += other.analyses
        self.seen |= other.seen
        for key, sighting in other.unknown.items():
            mine = self.unknown.setdefault(key, Sighting(sighting.phrase))
            mine.exterior += sighting.exterior
            mine.interior += sighting.interior
        return self


def discover(analyses: Iterable[Mapping[str, Any]], taxonomy: Taxonomy) -> Discovered:
    """The distinct phrases of the analyses, and for those the taxonomy does not know, how often
    exterior and interior images named them."""
    found = Discovered()
    for analysis in analyses:
        found.analyses += 1
        image_type, phrases = feature_phrases(analysis)
        for phrase in phrases:
            found.seen.add(taxonomy.canonical(phrase))
            if taxonomy.classify(phrase) is not None:
                continue
            sighting = found.unknown.setdefault(taxonomy.key(phrase), Sighting(phrase))
            if image_type == "exterior":
                sighting.exterior += 1
            elif image_type == "interior":
                sighting.interior += 1
    return found


def classify_phrases(
    sources: Sequence[Iterable[Mapping[str, Any]]],
    store: PhraseStore | None = None,
    provider: PhraseClassProvider | None = None,
    taxonomy: Taxonomy | None = None,
    dry_run: bool = False,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Classify and store the unknown phrases of the analyses of these sources; returns the report."""
    taxonomy = taxonomy or load_taxonomy()
    store = store or PhraseStore()
    provider = provider or get_phrase_class_provider(taxonomy)
    found = Discovered()
    for part in thread_map(lambda source: discover(source, taxonomy), sources, max_workers=8):
        found.merge(part)
    stored = store.get_many(found.unknown)
    pending = [
        key
        for key in sorted(found.unknown)
        if key not in stored
        or (
            provider.method == "llm"
            and stored[key].method == "offline_rule"
            and len(found.unknown[key].phrase) <= MAX_MODEL_PHRASE
        )
    ]
    todo = pending[:limit] if limit is not None else pending
    report: dict[str, Any] = {
        "operation": "classify_phrases",
        "taxonomy_version": taxonomy.version,
        "provider": provider.name,
        "model": provider.model,
        "analyses": found.analyses,
        "distinct_phrases": len(found.seen),
        "known_to_taxonomy": len(found.seen) - len(found.unknown),
        "unknown": len(found.unknown),
        "already_classified": len(found.unknown) - len(pending),
        "to_classify": len(todo),
        "left_for_next_run": len(pending) - len(todo),
        "classified": 0,
        "amenities_found": 0,
        "dry_run": dry_run,
    }
    if dry_run:
        report["catalogue"] = store.catalogue(taxonomy.version)
        report["passed"] = True
        return report
    # A "phrase" too long for a feature is a sentence: it never reaches a model (nor fills its
    # context); the offline rule decides it.
    offline = OfflinePhraseClasses(taxonomy)
    too_long = [k for k in todo if len(found.unknown[k].phrase) > MAX_MODEL_PHRASE]
    for_provider = [k for k in todo if len(found.unknown[k].phrase) <= MAX_MODEL_PHRASE]
    size = get_settings().phrase_classify_batch
    work: list[tuple[PhraseClassProvider, list[str]]] = [(offline, too_long)] if too_long else []
    work += [(provider, for_provider[start : start + size]) for start in range(0, len(for_provider), size)]
    done = 0
    for deciding, keys in work:
        batch = [
            PhraseToClassify(found.unknown[k].phrase, found.unknown[k].exterior, found.unknown[k].interior)
            for k in keys
        ]
        try:
            verdicts = deciding.classify(batch)
        except VisionError as error:  # stop; what is stored stays, a rerun resumes
            logger.warning("phrase classification stopped", extra={"code": error.code, "done": done})
            report["failed"] = {"code": error.code, "message": error.message, "remaining": len(todo) - done}
            break
        rows = [
            StoredPhrase(
                key=key,
                phrase=item.phrase,
                label=verdicts[item.phrase].label,
                method=deciding.method,
                facet=verdicts[item.phrase].facet,
                model=deciding.model,
                seen_exterior=item.seen_exterior,
                seen_interior=item.seen_interior,
            )
            for key, item in zip(keys, batch, strict=True)
        ]
        store.put_many(rows)
        done += len(rows)
        report["classified"] += len(rows)
        report["amenities_found"] += sum(1 for row in rows if row.label == "amenity")
        if progress:
            progress(len(rows))
    report["catalogue"] = store.catalogue(taxonomy.version)
    report["passed"] = "failed" not in report
    return report
