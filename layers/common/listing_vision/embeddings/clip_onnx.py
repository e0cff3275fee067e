"""CLIP image encoding with ONNX Runtime: decoding, CLIP preprocessing, inference, normalisation.

This one module is the serving core for both paths: the SageMaker container (it is copied into
`model.tar.gz` as `code/clip_onnx.py`) and the in-process embedder. It depends only on numpy,
Pillow and onnxruntime, so it runs in either place unchanged; onnxruntime is imported only when a
session is built, so Lambda functions (whose layer has no onnxruntime) can use the decoder.

Preprocessing has two resize modes; the rest is CLIP's (EXIF orientation applied, RGB, bicubic,
rescale 1/255, CLIP mean/std, channels first):
- `clip` matches `transformers.CLIPImageProcessor` exactly (checked by a parity test): shortest
  side to 224 (long side truncated as transformers does), centre crop 224;
- `squash` (what serving uses): the whole image resized to 224×224 (CLIPImageProcessor with
  `size={"height": 224, "width": 224}, do_center_crop=False`, also checked), so the embedding sees
  all of it and a copy squashed to a square embeds like its original, where a centre crop would
  cut different content away. Vectors from the two modes are not comparable: changing the mode
  means re-embedding the catalogue (the backfill).
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

if TYPE_CHECKING:
    import onnxruntime as ort

CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
INPUT_NAME = "pixel_values"
OUTPUT_NAME = "image_embeds"
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP"})
DEFAULT_MAX_PIXELS = 40_000_000  # ~ 8000 × 5000; larger claims are refused before decoding
# PNG metadata: Pillow inflates every text (tEXt/zTXt/iTXt) and ICC profile (iCCP) chunk when it opens
# a file, and refuses one over PngImagePlugin.MAX_TEXT_CHUNK (1 MB) as if the image were broken;
# editors and cameras write XMP and profiles larger than that. Nothing here reads them, so the caps
# are what a real file carries; they still bound a zlib bomb hidden in metadata (a chunk inflating
# past them is refused), and the pixel limits (max_pixels, Pillow's own) are untouched.
PNG_MAX_METADATA_CHUNK = 16 * 1024 * 1024
PNG_MAX_METADATA = 64 * 1024 * 1024  # all of a file's text chunks together
PngImagePlugin.MAX_TEXT_CHUNK = PNG_MAX_METADATA_CHUNK
PngImagePlugin.MAX_TEXT_MEMORY = PNG_MAX_METADATA
# A JPEG with more frames after the photo (depth maps, previews: what phone cameras write) is MPO to
# Pillow; its first frame is the photo, and it is a JPEG to everything that reads it.
JPEG_WITH_FRAMES = "MPO"
Resize = Literal["clip", "squash"]
SERVING_RESIZE: Resize = "squash"


class InvalidImageError(ValueError):
    """The bytes are not an image we accept (undecodable, truncated, unsupported, too many pixels).

    `code` is stable for callers; `status_code` is the HTTP status a server answers with."""

    status_code = 400

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, reduce_to: int | None = None) -> Image.Image:
    """Decode and fully load an image, refusing decompression bombs before any pixel is decoded.

    `reduce_to`: a JPEG is decoded at the smallest of libjpeg's DCT scales (1/2, 1/4, 1/8) that
    keeps both sides at least this many pixels, which is several times cheaper than decoding every
    pixel and then throwing most away; the model side uses it, other formats decode in full.

    Untrusted bytes make Pillow's parsers fail in many ways (OSError for a header cut short,
    SyntaxError, ValueError, struct errors, EOFError, even IndexError): any failure to parse what
    claims to be an image is `corrupt_image`, never an unexpected error."""
    if not data:
        raise InvalidImageError("The file is empty.", "empty_file")
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only
    except UnidentifiedImageError as error:
        if claims_accepted_format(data):  # Pillow says "unidentified" for a PNG whose chunks are broken
            raise InvalidImageError("The image header is truncated or corrupt.", "corrupt_image") from error
        raise InvalidImageError("The file is not an image we can read.", "not_an_image") from error
    except Image.DecompressionBombError as error:
        raise InvalidImageError(str(error), "decompression_bomb") from error
    except Exception as error:
        raise InvalidImageError("The image header is truncated or corrupt.", "corrupt_image") from error
    if image.format == JPEG_WITH_FRAMES:
        image.format = "JPEG"  # frame 0, the photo, is what is decoded (Image.open leaves it there)
    if image.format not in ACCEPTED_FORMATS:
        raise InvalidImageError(
            f"{image.format or 'This'} images are not accepted; send JPEG, PNG or WebP.", "unsupported_image_format"
        )
    width, height = image.size
    if width * height > max_pixels:
        raise InvalidImageError(
            f"The image claims {width}×{height} pixels, more than the {max_pixels:,} allowed.", "decompression_bomb"
        )
    if reduce_to is not None and image.format == "JPEG":
        image.draft(image.mode, (reduce_to, reduce_to))
    try:
        image.load()
    except Image.DecompressionBombError as error:
        raise InvalidImageError(str(error), "decompression_bomb") from error
    except Exception as error:
        raise InvalidImageError("The image is truncated or corrupt.", "corrupt_image") from error
    return to_8bit(image)


def claims_accepted_format(data: bytes) -> bool:
    """Whether the bytes start with the signature of a format we accept (PNG, JPEG, WebP): such a
    file that cannot be opened is a broken image, not something else."""
    return (
        data.startswith(b"\x89PNG\r\n\x1a\n")
        or data.startswith(b"\xff\xd8\xff")
        or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")
    )


def to_8bit(image: Image.Image) -> Image.Image:
    """16-bit (and 32-bit integer) grayscale scaled to 8 bits, everything else as it is. Pillow's
    own conversion clips instead of scaling, which turns a 16-bit PNG export of a photo white.
    Every decoded image passes here (`decode_image`), so nothing downstream sees more than 8 bits."""
    if not (image.mode.startswith("I;16") or image.mode == "I"):
        return image
    if image.mode == "I":  # 32-bit integer pixels (how Pillow loads some 16-bit PNGs): 16-bit values
        pixels = np.asarray(image, dtype=np.float64)
    else:
        pixels = np.asarray(image.convert("I"), dtype=np.float64)
    scaled = Image.fromarray(np.clip(pixels / 257.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    scaled.format = image.format  # keep what was decoded (PNG): stores and media types read it
    scaled.info = dict(image.info)
    return scaled


def decode_images(blobs: Sequence[bytes], max_pixels: int = DEFAULT_MAX_PIXELS) -> list[Image.Image]:
    """`decode_image` for each; the error names the index of the first file refused."""
    images = []
    for index, blob in enumerate(blobs):
        try:
            images.append(decode_image(blob, max_pixels))
        except InvalidImageError as error:
            raise indexed(error, index) from error
    return images


def indexed(error: InvalidImageError, index: int) -> InvalidImageError:
    """The same refusal, naming which image of a batch it was."""
    return InvalidImageError(f"Image {index}: {error}", error.code)


TRANSPARENT_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
BACKDROP = (255, 255, 255)  # what shows through transparency: white, like a product page


def as_rgb(image: Image.Image) -> Image.Image:
    """EXIF orientation applied, 8-bit RGB (16-bit grayscale scaled by `to_8bit`, not clipped),
    transparency composited onto white. Dropping alpha instead would reveal whatever colour the
    transparent pixels happen to hold, which no viewer shows: two uploads that look identical
    would embed differently (and be stored twice). Every embedding, feature and measurement path
    converts here."""
    upright = to_8bit(ImageOps.exif_transpose(image))
    if upright.mode not in TRANSPARENT_MODES and "transparency" not in upright.info:
        return upright.convert("RGB")
    rgba = upright.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (*BACKDROP, 255)), rgba).convert("RGB")


def preprocess(image: Image.Image, size: int = 224, resize: Resize = "clip") -> np.ndarray:
    """One image → float32 array [3, size, size]; `resize="clip"` is exactly CLIPImageProcessor."""
    image = as_rgb(image)
    if resize == "squash":
        squashed = image.resize((size, size), resample=Image.Resampling.BICUBIC, reducing_gap=None)
        return _normalise_pixels(np.asarray(squashed))
    if resize != "clip":
        raise ValueError(f"unknown resize mode {resize!r}")
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
    resized = image.resize((new_w, new_h), resample=Image.Resampling.BICUBIC, reducing_gap=None)
    pixels = np.asarray(resized)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return _normalise_pixels(pixels[top : top + size, left : left + size])


def _normalise_pixels(pixels: np.ndarray) -> np.ndarray:
    normalised = (pixels.astype(np.float32) * np.float32(1 / 255) - CLIP_MEAN) / CLIP_STD
    return np.ascontiguousarray(normalised.transpose(2, 0, 1), dtype=np.float32)


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

    def build(self) -> ort.SessionOptions:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = self.inter_op_threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL if self.sequential else ort.ExecutionMode.ORT_PARALLEL
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
