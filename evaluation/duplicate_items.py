"""The duplicate-detection evaluation's data: each photo of the folders as an original with its
labelled variants (`evaluation/variants.py`), and what the service computes for each upload
(its embedding and its verification features), computed once for every query."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluation import variants as variant_set
from listing_vision.embeddings.base import Embedder
from listing_vision.imaging.features import ImageFeatures


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

    @property
    def model(self) -> str:
        return self.embedder.model_id


def prepare(items: list[Item], embedder: Embedder, batch: int = 32) -> Prepared:
    batches = [items[start : start + batch] for start in range(0, len(items), batch)]
    described = [d for chunk in batches for d in embedder.describe([item.data for item in chunk])]
    vectors = np.stack([d.embedding for d in described])
    return Prepared(items, vectors, [d.features for d in described], embedder)
