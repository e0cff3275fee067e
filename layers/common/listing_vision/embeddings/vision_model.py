"""The model side of the embedding service: CLIP embeddings, and the features and verdicts of the
duplicate check. The same code serves in the SageMaker container (packaged beside the inference
handler, `serving/clip/package.py`) and in process (`onnx_local.py`), so both paths answer alike.

The host path (image files to model input) is what limits throughput, not the model: a GPU embeds
thousands of images a second. So each image is decoded at the smallest JPEG scale the model side
needs (`MODEL_SIDE_PX`), resized once, and its features found, on a thread per vCPU (Pillow, OpenCV
and NumPy release the GIL in the heavy parts); then the whole request, together with any other
request waiting, goes to the model in one call (`batching.py`).

Verification runs here rather than in Lambda because it needs OpenCV (136 MB unpacked), which
does not fit a function beside its other layers; the endpoint's instance has the CPU cores for it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
from PIL import Image

from listing_vision.embeddings.batching import MicroBatcher
from listing_vision.embeddings.clip_onnx import ClipEncoder, preprocess
from listing_vision.imaging import verify
from listing_vision.imaging.features import MODEL_SIDE_PX, Candidate, ImageFeatures, Verdict, VerifySettings
from listing_vision.imaging.pixels import DEFAULT_MAX_PIXELS, InvalidImageError, as_rgb, decode_image, indexed

HOST_THREADS = os.cpu_count() or 1
R = TypeVar("R")


class VisionModel:
    def __init__(self, encoder: ClipEncoder, threads: int | None = None):
        self.encoder = encoder
        self.dim = encoder.dim
        self._pool = ThreadPoolExecutor(max_workers=threads or HOST_THREADS, thread_name_prefix="host")
        self._encode = MicroBatcher(encoder.encode_pixels, encoder.max_batch)
        # One decode size for embeddings and features alike, so an image embeds the same either way.
        self._decode_px = max(MODEL_SIDE_PX, encoder.image_size)

    def embed(self, blobs: Sequence[bytes], max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
        """Image files → L2-normalised embeddings [N, dim]; InvalidImageError names the first refused."""
        return self._embeddings(self._prepare(blobs, max_pixels, lambda image: None))

    def describe(
        self, blobs: Sequence[bytes], max_pixels: int = DEFAULT_MAX_PIXELS
    ) -> tuple[np.ndarray, list[ImageFeatures]]:
        """Embeddings [N, dim] and each image's verification features, with the mirrored set."""
        return self.describe_as(blobs, lambda found: found, max_pixels)

    def describe_as(
        self, blobs: Sequence[bytes], form: Callable[[ImageFeatures], R], max_pixels: int = DEFAULT_MAX_PIXELS
    ) -> tuple[np.ndarray, list[R]]:
        """`describe`, each image's features put in `form` (the endpoint's wire form) on the host
        thread that found them: serialising is mostly Python (the GIL), so it overlaps the other
        threads' decoding rather than running as a second pass after all of it."""
        prepared = self._prepare(blobs, max_pixels, lambda image: form(verify.extract(image, with_mirror=True)))
        return self._embeddings(prepared), [found for _, found in prepared]

    def verify(
        self, query: ImageFeatures, candidates: Sequence[Candidate], settings: VerifySettings | None = None
    ) -> list[Verdict]:
        """A verdict per candidate, in order."""
        return list(self._pool.map(lambda candidate: verify.check(query, candidate, settings), candidates))

    @property
    def provider(self) -> str:
        return self.encoder.provider

    def _embeddings(self, prepared: Sequence[tuple[np.ndarray, object]]) -> np.ndarray:
        if not prepared:
            return np.zeros((0, self.dim), np.float32)
        return self._encode(np.stack([pixels for pixels, _ in prepared]))

    def _prepare(
        self, blobs: Sequence[bytes], max_pixels: int, features: Callable[[Image.Image], R]
    ) -> list[tuple[np.ndarray, R]]:
        """Each image's model input and `features(image)`, on the host threads."""

        def one(blob: bytes) -> tuple[np.ndarray, R] | InvalidImageError:
            try:
                image = as_rgb(decode_image(blob, max_pixels, reduce_to=self._decode_px))  # once for both uses
            except InvalidImageError as error:
                return error
            return preprocess(image, self.encoder.image_size, self.encoder.resize), features(image)

        prepared = list(self._pool.map(one, blobs))
        for index, item in enumerate(prepared):
            if isinstance(item, InvalidImageError):
                raise indexed(item, index) from item
        return prepared  # type: ignore[return-value]  # no errors left
