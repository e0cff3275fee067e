"""The two-stage duplicate decision: candidates retrieved by embedding, each one then verified.

Why two stages: on embeddings alone, a copy squashed, cropped, rotated or mirrored can score
lower than an unrelated photo, while a colour variant of the same design (a different product)
scores 0.999. One threshold cannot separate them. So retrieval takes the SEARCH_TOP_K nearest
neighbours closer than RETRIEVAL_THRESHOLD, and each is kept only as

- `near`: distance < DUPLICATE_THRESHOLD and the colours agree frame to frame (a resized or
  recompressed copy; colour variants score as close and are refused by the colour test), or
- `verified`: ORB features match under an affine model fitted with RANSAC (mirrored too) and the
  colours agree where the two overlap (`listing_vision.imaging.verify`).

(`exact`, the same bytes, is decided before any embedding by the content registry.) Both callers,
the API (`dedupe.py`) and the S3 trigger (`uploads.py`), take their answer from `find`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pymilvus import MilvusClient

from listing_vision.config import Settings, get_settings
from listing_vision.imaging import verify
from listing_vision.jewelry import vector_index, verification_store
from listing_vision.observability import metrics

MatchKind = Literal["exact", "near", "verified"]
LOAD_CONCURRENCY = 8  # candidates read (S3 GETs) and verified at once


@dataclass(frozen=True)
class Match:
    hit: vector_index.Hit
    match: MatchKind
    verdict: verify.Verdict | None = None


def verify_settings(settings: Settings) -> verify.VerifySettings:
    return verify.VerifySettings(
        min_inliers=settings.verify_min_inliers,
        max_hue_degrees=settings.verify_max_hue_degrees,
        max_colour_disagreement=settings.verify_max_colour_disagreement,
    )


def candidates(hits: Sequence[vector_index.Hit], settings: Settings) -> list[vector_index.Hit]:
    """The retrieved neighbours worth verifying, nearest first."""
    return sorted((hit for hit in hits if hit.distance < settings.retrieval_threshold), key=lambda h: h.distance)


def decide(
    hits: Sequence[vector_index.Hit],
    query: verify.ImageFeatures,
    features: Sequence[verify.ImageFeatures | None],
    settings: Settings,
) -> list[Match]:
    """Which candidates are the same photo as the query (`features[i]` belongs to `hits[i]`;
    None: unreadable, never a match), nearest first. Pure: the evaluation runs exactly this."""
    checks = verify_settings(settings)
    found = (decide_one(hit, query, candidate, settings, checks) for hit, candidate in zip(hits, features, strict=True))
    return sorted((match for match in found if match is not None), key=lambda m: m.hit.distance)


def decide_one(
    hit: vector_index.Hit,
    query: verify.ImageFeatures,
    candidate: verify.ImageFeatures | None,
    settings: Settings,
    checks: verify.VerifySettings,
) -> Match | None:
    """One candidate: `near`, `verified`, or not the same photo (None)."""
    if candidate is None or hit.distance >= settings.retrieval_threshold:
        return None
    if hit.distance < settings.duplicate_threshold:
        verdict = verify.colour_verdict(query, candidate, None, checks)
        if verdict.same:
            return Match(hit, "near", verdict)
    verdict = verify.verify(query, candidate, checks)
    return Match(hit, "verified", verdict) if verdict.same else None


class DuplicateFinder:
    """Retrieval in Milvus, candidates' features from their features objects, then `decide`."""

    def __init__(
        self,
        milvus: MilvusClient,
        settings: Settings | None = None,
        load: Callable[[str, str], verify.ImageFeatures | None] = verification_store.load_features,
    ):
        self.milvus = milvus
        self.settings = settings or get_settings()
        self.load = load

    def find(
        self, vector: np.ndarray, query: verify.ImageFeatures, website: str, scope: Literal["storefront", "all"]
    ) -> list[Match]:
        hits = vector_index.search(
            self.milvus,
            self.settings.milvus_collection,
            vector,
            website=website if scope == "storefront" else None,
            limit=self.settings.search_top_k,
            ef=self.settings.search_ef,
        )
        shortlist = candidates(hits, self.settings)
        if not shortlist:
            return []
        checks = verify_settings(self.settings)

        def check(hit: vector_index.Hit) -> Match | None:
            # Each candidate is verified as soon as its features arrive: its CPU overlaps the others' reads.
            return decide_one(hit, query, self.load(hit.path, hit.sha256), self.settings, checks)

        with ThreadPoolExecutor(max_workers=min(LOAD_CONCURRENCY, len(shortlist))) as pool:
            found = [match for match in pool.map(check, shortlist) if match is not None]
        metrics.add_metric(name="DuplicateCandidatesVerified", unit="Count", value=len(shortlist))
        return sorted(found, key=lambda m: m.hit.distance)
