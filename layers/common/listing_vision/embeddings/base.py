"""The one interface every embedding consumer uses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from listing_vision.imaging.features import Candidate, ImageFeatures, Verdict, VerifySettings


@dataclass(frozen=True)
class Description:
    """What the duplicate check needs of an upload: its embedding, and its verification features
    (with the mirrored set, the query's form)."""

    embedding: np.ndarray
    features: ImageFeatures


class Embedder(Protocol):
    """Encoded images (JPEG/PNG/WebP bytes) → L2-normalised float32 embeddings [N, dim], in order;
    and the duplicate check's model side: features of images, verdicts on candidates.

    Raises a domain error (`listing_vision.errors`) for an image the model refuses, and
    `UpstreamError` when the model cannot be reached."""

    model_id: str
    dim: int

    @property
    def model_signature(self) -> str:
        """What the vectors depend on (model bytes and preprocessing: `clip_onnx.model_signature`); the
        collection they go to must record the same (`VectorIndex.require`)."""
        ...

    def embed(self, images: Sequence[bytes]) -> np.ndarray: ...

    def embed_with_model(self, images: Sequence[bytes]) -> tuple[np.ndarray, str]:
        """Embeddings and the signature of the model that made them, whichever it is: for a store that
        records each vector's model (the vision cache) rather than holding one model's vectors."""
        ...

    def describe(self, images: Sequence[bytes]) -> list[Description]: ...

    def verify(
        self, query: ImageFeatures, candidates: Sequence[Candidate], settings: VerifySettings
    ) -> list[Verdict]: ...
