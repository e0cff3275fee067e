"""coverage and dry_run: what a migration would find and do, writing nothing. coverage: how much of
a sample the cache covers (full / partial / none), how many of its splits are stale (their split
record names another taxonomy or other cached analyses: `split_records`), and how many of its
feature phrases are classified (taxonomy, phrase cache, offline rule); dry_run: before and after
for a sample or listed zpids, and what execute would do with each, decided as execute decides."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from listing_vision.realestate.features import SPLIT_FIELDS, feature_phrases
from listing_vision.realestate.migration.common import MigrationBase
from listing_vision.realestate.migration.execute import Outcome, State, split_outcome, split_state, to_split
from listing_vision.realestate.split_records import STALE_REASONS
from listing_vision.realestate.vision_cache import coverage_of

# What a dry run says for each outcome an execute would have (the execute's count of the same name).
WOULD: dict[Outcome, str] = {
    "skipped_migrated": "would_skip_migrated",
    "skipped_no_cache": "would_skip_no_cache",
    "unchanged": "would_leave_unchanged",
    "updated": "would_update",
}


class Preview(MigrationBase):
    def coverage(self, sample: int | None = 100, zpids: list[str] | None = None, seed: int = 0) -> dict[str, Any]:
        chosen = self._sample(sample, zpids, seed)
        fields = ["image_urls", "image_vectors", "visual_features_pending", *SPLIT_FIELDS]
        docs = self.listings.get_docs(chosen, source=fields)
        inputs, cached = self._inputs_for(docs.values())
        states = Counter(split_state(doc, inputs[zpid]) for zpid, doc in docs.items())
        listings: Counter[str] = Counter()
        images = cached_images = 0
        for doc in docs.values():
            listings[coverage_of(doc.image_urls, [u for u in doc.image_urls if u in cached])] += 1
            images += len(set(doc.image_urls))
            cached_images += len(set(doc.image_urls) & set(cached))
        total = len(docs)
        sampled_images = {url for doc in docs.values() for url in doc.image_urls if url in cached}
        phrases = {p for url in sampled_images for p in feature_phrases(cached[url].analysis)[1]}
        return {
            "operation": "coverage",
            "sampled": total,
            "full": listings["full"],
            "partial": listings["partial"],
            "none": listings["none"],
            "full_pct": round(100 * listings["full"] / total, 1) if total else 0.0,
            "images": images,
            "images_cached": cached_images,
            "images_cached_pct": round(100 * cached_images / images, 1) if images else 0.0,
            "splits": split_figures(states, self.taxonomy.fingerprint),
            "phrases": self.phrase_coverage(phrases),
            "phrase_catalogue": self.phrases.catalogue(self.taxonomy.version),
        }

    def phrase_coverage(self, phrases: Iterable[str]) -> dict[str, Any]:
        """The distinct feature phrases given, by who classes them: the taxonomy, the phrase cache
        (a model or the offline rule, stored by classify_phrases), or nobody yet (the offline rule
        decides at split time)."""
        taxonomy = self.taxonomy
        distinct = {taxonomy.canonical(p): p for p in phrases}
        unknown = {taxonomy.key(p) for p in distinct.values() if taxonomy.classify(p) is None}
        stored = self.phrases.get_many(unknown)
        by_llm = sum(1 for s in stored.values() if s.method == "llm")
        classified = len(distinct) - len(unknown) + len(stored)
        return {
            "taxonomy_version": taxonomy.version,
            "distinct": len(distinct),
            "by_taxonomy": len(distinct) - len(unknown),
            "cached_by_llm": by_llm,
            "cached_by_offline_rule": len(stored) - by_llm,
            "unclassified": len(unknown) - len(stored),
            "classified_pct": round(100 * classified / len(distinct), 1) if distinct else 0.0,
        }

    def dry_run(
        self, sample: int | None = 5, zpids: list[str] | None = None, seed: int = 0, force: bool = False
    ) -> dict[str, Any]:
        """Before and after for each chosen listing, with what an execute (forced or not) would do
        with it, decided as execute decides (`to_split`, `split_outcome`); writes nothing."""
        chosen = self._sample(sample, zpids, seed)
        docs = self.listings.get_docs(chosen)
        inputs, cached = self._inputs_for(docs.values())
        splits, _ = self._split_for((doc for doc in docs.values() if to_split(doc, force, inputs[doc.zpid])), cached)
        rows: list[dict[str, Any]] = []
        for zpid in chosen:
            if zpid not in docs:
                rows.append({"zpid": zpid, "status": "not_found"})
                continue
            doc = docs[zpid]
            before = {"visual_features_text": doc.source.get("visual_features_text")}
            if zpid not in splits:
                current = {name: doc.source.get(name) for name in SPLIT_FIELDS}
                skipped = {"zpid": zpid, "split": "fresh", "status": WOULD["skipped_migrated"]}
                rows.append({**skipped, "before": before, "after": current})
                continue
            coverage, fields = splits[zpid]
            status = WOULD[split_outcome(doc, fields)]
            decided = {"zpid": zpid, "coverage": coverage, "split": split_state(doc, inputs[zpid]), "status": status}
            rows.append({**decided, "before": before, "after": fields})
        return {"operation": "dry_run", "listings": rows, "written": 0}


def split_figures(states: Counter[State], taxonomy: str) -> dict[str, Any]:
    """How many listings are migrated, and of those how many splits are stale (what a plain execute
    re-splits), and why; `unmigrated` ones (no fields yet, or images pending) it splits too."""
    stale = sum(states[reason] for reason in STALE_REASONS)
    migrated = stale + states["fresh"]
    return {
        "taxonomy": taxonomy,
        "migrated": migrated,
        "fresh": states["fresh"],
        "stale": stale,
        **{f"stale_{reason}": states[reason] for reason in STALE_REASONS},
        "stale_pct": round(100 * stale / migrated, 1) if migrated else 0.0,
        "unmigrated": states["unmigrated"],
    }
