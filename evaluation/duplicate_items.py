"""The duplicate-detection evaluation's data: each photo of the folders as an original with its
labelled variants (`evaluation/variants.py`), and what the service computes for each upload
(its embedding and its verification features), computed once for every query."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from evaluation import variants as variant_set
from listing_vision.embeddings.base import Embedder
from listing_vision.imaging.features import Candidate, ImageFeatures, Verdict, VerifySettings


@dataclass(frozen=True)
class Item:
    original: str
    kind: str  # "original", a variant class
    detail: str
    data: bytes

    @property
    def name(self) -> str:
        return f"{self.original}:{self.kind}:{self.detail}"


def build_items(photo_dirs: Iterable[str | Path], seed: int = 15) -> list[Item]:
    items: list[Item] = []
    for folder in photo_dirs:
        for photo in sorted(Path(folder).glob("*.jpg")):
            data = photo.read_bytes()
            items.append(Item(photo.stem, "original", "", data))
            items += [Item(v.original, v.kind, v.detail, v.data) for v in variant_set.variants(photo.stem, data, seed)]
    if len({item.name for item in items}) != len(items):
        raise ValueError("two photos share a name; give each original a distinct file name")
    return items


@dataclass
class Prepared:
    """The items with what the service computes for each upload: the embedding and the features."""

    items: list[Item]
    vectors: np.ndarray
    features: list[ImageFeatures]
    embedder: Embedder  # verifies, as the service's does
    _verdicts: dict[Hashable, Verdict] = field(default_factory=dict, repr=False)

    @property
    def model(self) -> str:
        return self.embedder.model_id

    def verify(self, query: ImageFeatures, candidates: Sequence[Candidate], settings: VerifySettings) -> list[Verdict]:
        """The embedder's verdicts, each pair of these items verified once. The evaluation asks about a
        photo against several catalogues, so the same (query, candidate) pair comes back (1 check in 5);
        its verdict depends only on the two photos' features, the settings and whether the candidate is near."""
        index = {id(found): i for i, found in enumerate(self.features)}
        keys = [(index.get(id(query)), index.get(id(c.features)), c.near, settings) for c in candidates]
        # Features that are not these items' have no stable key: always verified.
        todo = [i for i, key in enumerate(keys) if None in key[:2] or key not in self._verdicts]
        verdicts = dict(zip(todo, self.embedder.verify(query, [candidates[i] for i in todo], settings), strict=True))
        for i, verdict in verdicts.items():
            if None not in keys[i][:2]:
                self._verdicts[keys[i]] = verdict
        return [verdicts[i] if i in verdicts else self._verdicts[key] for i, key in enumerate(keys)]


def prepare(items: list[Item], embedder: Embedder, batch: int = 32) -> Prepared:
    batches = [items[start : start + batch] for start in range(0, len(items), batch)]
    described = [d for chunk in batches for d in embedder.describe([item.data for item in chunk])]
    vectors = np.stack([d.embedding for d in described])
    return Prepared(items, vectors, [d.features for d in described], embedder)
