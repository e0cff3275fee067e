"""In-process embeddings with ONNX Runtime: the same serving core the SageMaker endpoint runs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from listing_vision.embeddings.clip_onnx import SERVING_RESIZE, ClipEncoder, InvalidImageError, Resize, SessionOptions
from listing_vision.imaging.decode import image_error

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
        self.dim = self.encoder.dim
        self.model_id = f"onnx:{self.model_path.name}"
        self.max_pixels = max_pixels

    def embed(self, images: Sequence[bytes]) -> np.ndarray:
        try:
            return self.encoder.encode_bytes(images, self.max_pixels)
        except InvalidImageError as error:
            raise image_error(error) from error
