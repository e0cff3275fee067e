"""The two-stage duplicate decision: candidates retrieved by embedding, each one then verified.

Why two stages: on embeddings alone, a copy squashed, cropped, rotated or mirrored can score
lower than an unrelated photo, while a colour variant of the same design (a different product)
scores 0.999. One threshold cannot separate them. So retrieval takes the SEARCH_TOP_K nearest
neighbours closer than RETRIEVAL_THRESHOLD, and each is kept only as

- `near`: distance < DUPLICATE_THRESHOLD and the colours agree frame to frame (a resized or
  recompressed copy; colour variants score as close and are refused by the colour test), or
- `verified`: ORB features match under an affine model fitted with RANSAC (mirrored too) and the
  colours agree where the two overlap (`listing_vision.imaging.verify`).

Verification runs on the model side (the SageMaker endpoint, or in process: `Embedder.verify`),
with each candidate's features from its catalogue record (`verification_store.py`). `exact`, the
same bytes, is decided before any embedding by the content registry. Both callers, the API
(`dedupe.py`) and the S3 trigger (`uploads.py`), take their answer from `find`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from listing_vision.config import Settings, get_settings
from listing_vision.embeddings.base import Description, Embedder
from listing_vision.imaging.features import Candidate, ImageFeatures, Verdict, VerifySettings
from listing_vision.jewelry import vector_index
from listing_vision.jewelry.stores import CatalogueStores
from listing_vision.jewelry.verification_store import VerificationStore
from listing_vision.observability import metrics

MatchKind = Literal["exact", "near", "verified"]
Verifier = Callable[[ImageFeatures, Sequence[Candidate], VerifySettings], list[Verdict]]


@dataclass(frozen=True)
class Match:
    hit: vector_index.Hit
    match: MatchKind
    verdict: Verdict | None = None


def verify_settings(settings: Settings) -> VerifySettings:
    return VerifySettings(
        min_inliers=settings.verify_min_inliers,
        max_hue_degrees=settings.verify_max_hue_degrees,
        max_colour_disagreement=settings.verify_max_colour_disagreement,
    )


def candidates(hits: Sequence[vector_index.Hit], settings: Settings) -> list[vector_index.Hit]:
    """The retrieved neighbours worth verifying, nearest first."""
    return sorted((hit for hit in hits if hit.distance < settings.retrieval_threshold), key=lambda h: h.distance)


def decide(
    hits: Sequence[vector_index.Hit],
    query: ImageFeatures,
    features: Sequence[ImageFeatures | None],
    settings: Settings,
    verifier: Verifier,
) -> list[Match]:
    """Which candidates are the same photo as the query (`features[i]` belongs to `hits[i]`;
    None: unreadable, never a match), nearest first, with every candidate verified in one call.
    The evaluation runs exactly this."""
    kept = [
        (hit, Candidate(found, near=hit.distance < settings.duplicate_threshold))
        for hit, found in zip(hits, features, strict=True)
        if found is not None and hit.distance < settings.retrieval_threshold
    ]
    if not kept:
        return []
    verdicts = verifier(query, [candidate for _, candidate in kept], verify_settings(settings))
    found = [
        Match(hit, verdict.match, verdict)
        for (hit, _), verdict in zip(kept, verdicts, strict=True)
        if verdict.same and verdict.match is not None
    ]
    return sorted(found, key=lambda m: m.hit.distance)


class DuplicateFinder:
    """Retrieval in Milvus, candidates' features from the catalogue, then `decide` on the model."""

    def __init__(self, stores: CatalogueStores, embedder: Embedder, settings: Settings | None = None):
        self.vectors = stores.vectors
        self.embedder = embedder
        self.settings = settings or get_settings()
        self.features = VerificationStore(stores, embedder)

    def neighbours(
        self, query: Description, website: str, scope: Literal["storefront", "all"]
    ) -> list[vector_index.Hit]:
        """The retrieval stage: the top k of the catalogue (this storefront's, or all) by embedding."""
        return self.vectors.search(
            query.embedding,
            website=website if scope == "storefront" else None,
            limit=self.settings.search_top_k,
            ef=self.settings.search_ef,
        )

    def find(
        self,
        query: Description,
        website: str,
        scope: Literal["storefront", "all"],
        exclude: tuple[str, str] | None = None,
    ) -> list[Match]:
        """`exclude`: (website, sha256) of the query's own row, when it is already indexed."""
        hits = self.neighbours(query, website, scope)
        shortlist = [hit for hit in candidates(hits, self.settings) if (hit.website, hit.sha256) != exclude]
        if not shortlist:
            return []
        metrics.add_metric(name="DuplicateCandidatesVerified", unit="Count", value=len(shortlist))
        return decide(shortlist, query.features, self.features.for_hits(shortlist), self.settings, self.embedder.verify)
