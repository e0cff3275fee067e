"""CLIP image encoding with ONNX Runtime: CLIP preprocessing, inference, normalisation.

This one module is the serving core for both paths: the SageMaker container (it is copied into
`model.tar.gz` with the decoder it uses, `imaging/pixels.py`) and the in-process embedder. It
depends only on numpy, Pillow and onnxruntime, so it runs in either place unchanged; onnxruntime is
imported only when a session is built.

Preprocessing has two resize modes; the rest is CLIP's (EXIF orientation applied, RGB, bicubic,
rescale 1/255, CLIP mean/std, channels first):
- `clip` matches `transformers.CLIPImageProcessor` exactly (checked by a parity test): shortest
  side to 224 (long side truncated as transformers does), centre crop 224;
- `squash` (what serving uses): the whole image resized to 224×224 (CLIPImageProcessor with
  `size={"height": 224, "width": 224}, do_center_crop=False`, also checked), so the embedding sees
  all of it and a copy squashed to a square embeds like its original, where a centre crop would
  cut different content away. Vectors from the two modes are not comparable: changing the mode
  means re-embedding the catalogue (the backfill).

What a vector depends on, the model file's bytes and the preprocessing, is the encoder's
`signature`; the catalogue's collection records the signature of the vectors it holds
(`jewelry/vector_index.py`), so vectors of two models are never mixed.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from PIL import Image

from listing_vision.imaging.pixels import DEFAULT_MAX_PIXELS, as_rgb, decode_images

if TYPE_CHECKING:
    import onnxruntime as ort

CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
INPUT_NAME = "pixel_values"
OUTPUT_NAME = "image_embeds"
Resize = Literal["clip", "squash"]
SERVING_RESIZE: Resize = "squash"


def preprocess(image: Image.Image, size: int = 224, resize: Resize = "clip") -> np.ndarray:
    """One image → float32 array [3, size, size]; `resize="clip"` is exactly CLIPImageProcessor."""
    image = as_rgb(image)
    if resize == "squash":
        squashed = image.resize((size, size), resample=Image.Resampling.BICUBIC, reducing_gap=None)
        return normalise_pixels(np.asarray(squashed))
    if resize != "clip":
        raise ValueError(f"unknown resize mode {resize!r}")
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
    resized = image.resize((new_w, new_h), resample=Image.Resampling.BICUBIC, reducing_gap=None)
    pixels = np.asarray(resized)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return normalise_pixels(pixels[top : top + size, left : left + size])


# (x / 255 − mean) / std as one multiply and one add per value, per channel
_CHANNEL_SCALE = (1 / (255 * CLIP_STD)).astype(np.float32)[:, None, None]
_CHANNEL_OFFSET = (-CLIP_MEAN / CLIP_STD).astype(np.float32)[:, None, None]


def normalise_pixels(pixels: np.ndarray) -> np.ndarray:
    """8-bit HWC pixels → normalised float32 CHW. The bytes are put channels first before any float
    work (a quarter of the memory traffic), and the arithmetic is one multiply and one add in place:
    several times faster than dividing by 255, subtracting and dividing by std in turn, equal to within
    float rounding."""
    normalised = np.ascontiguousarray(pixels.transpose(2, 0, 1)).astype(np.float32)
    normalised *= _CHANNEL_SCALE
    normalised += _CHANNEL_OFFSET
    return normalised


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


@dataclass(frozen=True)
class SessionOptions:
    """ONNX Runtime knobs that matter for throughput (measured in bench/bench_clip.py)."""

    intra_op_threads: int = 0  # 0: one per physical core
    inter_op_threads: int = 1
    sequential: bool = True
    graph_optimisation: str = "all"  # "basic" | "extended" | "all"
    prefer_gpu: bool = True
    fp16: bool = False  # for CUDA: the exporter's fp16 model, where supplied
    # ONNX Runtime's idle intra-op threads spin by default, taking the cores the host threads decode
    # and describe the next images on: off, the handler with features used 6 % less CPU an image (2
    # cores, each setting in its own process: two sessions in one process disturb each other)
    spinning: bool = False

    def build(self) -> ort.SessionOptions:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = self.inter_op_threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL if self.sequential else ort.ExecutionMode.ORT_PARALLEL
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spinning else "0")
        options.graph_optimization_level = {
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[self.graph_optimisation]
        return options


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def providers(prefer_gpu: bool) -> list[str]:
    available = available_providers()
    chosen = [p for p in ("CUDAExecutionProvider",) if prefer_gpu and p in available]
    return [*chosen, "CPUExecutionProvider"]


def model_signature(model_path: str | os.PathLike[str], resize: Resize, image_size: int) -> str:
    """What makes two vectors comparable: the same model bytes (SHA-256, so fp32, fp16 and int8
    exports differ, whatever the file is called) and the same preprocessing, e.g.
    `sha256:1f2e3d4c5b6a7988/squash-224`."""
    digest = hashlib.sha256()
    with open(model_path, "rb") as model:
        while chunk := model.read(1 << 20):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()[:16]}/{resize}-{image_size}"


class ClipEncoder:
    """An ONNX image encoder (`pixel_values` [N,3,224,224] → embeddings [N,D]) with CLIP preprocessing.

    Thread-safe: ONNX Runtime sessions allow concurrent `run` calls."""

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        options: SessionOptions | None = None,
        max_batch: int = 64,
        resize: Resize = SERVING_RESIZE,
    ):
        import onnxruntime as ort

        if resize not in ("clip", "squash"):
            raise ValueError(f"unknown resize mode {resize!r}")
        self.resize: Resize = resize
        self.options = options or SessionOptions()
        self.session = ort.InferenceSession(
            os.fspath(model_path), sess_options=self.options.build(), providers=providers(self.options.prefer_gpu)
        )
        self.max_batch = max_batch
        inputs = self.session.get_inputs()
        if [i.name for i in inputs] != [INPUT_NAME]:
            raise ValueError(f"{model_path}: expected one input named {INPUT_NAME!r}, got {[i.name for i in inputs]}")
        self.input_type = np.float16 if inputs[0].type == "tensor(float16)" else np.float32
        self.image_size = int(inputs[0].shape[-1]) if isinstance(inputs[0].shape[-1], int) else 224
        self.dim = int(self.session.get_outputs()[0].shape[-1])
        self.signature = model_signature(model_path, self.resize, self.image_size)
        self._lock = threading.Lock()

    @property
    def provider(self) -> str:
        return self.session.get_providers()[0]

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Preprocessed batch [N,3,H,W] → L2-normalised float32 embeddings [N,D], in chunks of max_batch."""
        out = []
        for start in range(0, len(pixels), self.max_batch):
            chunk = pixels[start : start + self.max_batch].astype(self.input_type, copy=False)
            (embeds,) = self.session.run([self.session.get_outputs()[0].name], {INPUT_NAME: chunk})
            out.append(np.asarray(embeds, dtype=np.float32))
        return l2_normalise(np.concatenate(out) if out else np.zeros((0, self.dim), np.float32))

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), np.float32)
        return self.encode_pixels(np.stack([preprocess(image, self.image_size, self.resize) for image in images]))

    def encode_bytes(self, blobs: Sequence[bytes], max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
        """Encoded image files → embeddings; any undecodable file raises InvalidImageError naming its index."""
        return self.encode_images(decode_images(blobs, max_pixels))
