"""The model side of the embedding service: CLIP embeddings, and the features and verdicts of the
duplicate check. The same code serves in the SageMaker container (packaged beside the inference
handler, `serving/clip/package.py`) and in process (`onnx_local.py`), so both paths answer alike.

Verification runs here rather than in Lambda because it needs OpenCV (136 MB unpacked), which
does not fit a function beside its other layers; the endpoint's instance has the CPU cores for it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from listing_vision.embeddings.clip_onnx import ClipEncoder
from listing_vision.imaging import verify
from listing_vision.imaging.features import Candidate, ImageFeatures, Verdict, VerifySettings

# OpenCV and NumPy release the GIL in the heavy parts: candidates are verified in parallel.
VERIFY_THREADS = min(8, os.cpu_count() or 1)


class VisionModel:
    def __init__(self, encoder: ClipEncoder):
        self.encoder = encoder
        self.dim = encoder.dim
        self._pool = ThreadPoolExecutor(max_workers=VERIFY_THREADS, thread_name_prefix="verify")

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.encoder.encode_images(images)

    def describe(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, list[ImageFeatures]]:
        """Embeddings [N, dim] and each image's verification features, with the mirrored set."""
        features = list(self._pool.map(lambda image: verify.extract(image, with_mirror=True), images))
        return self.embed(images), features

    def verify(
        self, query: ImageFeatures, candidates: Sequence[Candidate], settings: VerifySettings | None = None
    ) -> list[Verdict]:
        """A verdict per candidate, in order."""
        return list(self._pool.map(lambda candidate: verify.check(query, candidate, settings), candidates))

    @property
    def provider(self) -> str:
        return self.encoder.provider
