"""In-process embeddings with ONNX Runtime: the same serving core the SageMaker endpoint runs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from listing_vision.embeddings.base import Description
from listing_vision.embeddings.clip_onnx import SERVING_RESIZE, ClipEncoder, Resize, SessionOptions
from listing_vision.embeddings.vision_model import VisionModel
from listing_vision.imaging.decode import image_error
from listing_vision.imaging.features import Candidate, ImageFeatures, Verdict, VerifySettings
from listing_vision.imaging.pixels import InvalidImageError

DESCRIPTOR_MODEL = Path(__file__).parent / "models" / "dct_descriptor.onnx"


class OnnxEmbedder:
    def __init__(
        self,
        model_path: str | Path,
        options: SessionOptions | None = None,
        max_pixels: int = 40_000_000,
        resize: Resize = SERVING_RESIZE,
    ):
        self.model_path = Path(model_path)
        self.encoder = ClipEncoder(self.model_path, options, resize=resize)
        self.model = VisionModel(self.encoder)
        self.dim = self.encoder.dim
        self.model_id = f"onnx:{self.model_path.name}"
        self.model_signature = self.encoder.signature
        self.max_pixels = max_pixels

    def embed(self, images: Sequence[bytes]) -> np.ndarray:
        try:
            return self.model.embed(images, self.max_pixels)
        except InvalidImageError as error:
            raise image_error(error) from error

    def embed_with_model(self, images: Sequence[bytes]) -> tuple[np.ndarray, str]:
        return self.embed(images), self.model_signature

    def describe(self, images: Sequence[bytes]) -> list[Description]:
        try:
            embeddings, features = self.model.describe(images, self.max_pixels)
        except InvalidImageError as error:
            raise image_error(error) from error
        return [Description(vector, found) for vector, found in zip(embeddings, features, strict=True)]

    def verify(self, query: ImageFeatures, candidates: Sequence[Candidate], settings: VerifySettings) -> list[Verdict]:
        return self.model.verify(query, candidates, settings)
