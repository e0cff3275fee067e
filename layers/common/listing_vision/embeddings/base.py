"""The one interface every embedding consumer uses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class Embedder(Protocol):
    """Encoded images (JPEG/PNG/WebP bytes) → L2-normalised float32 embeddings [N, dim], in order.

    Raises a domain error (`listing_vision.errors`) for an image the model refuses, and
    `UpstreamError` when the model cannot be reached."""

    model_id: str
    dim: int

    def embed(self, images: Sequence[bytes]) -> np.ndarray: ...
