"""SageMaker inference handler for the ONNX CLIP image encoder (packaged as code/inference.py).

Requests:
  - `image/jpeg`, `image/png`, `image/webp`, `application/x-image`: one image → one embedding.
  - `application/json`: `{"images": ["<base64>", ...]}` → one embedding per image, in order.
Response (`application/json`): `{"embeddings": [[...], ...], "dim": D, "model": "<file>"}`,
L2-normalised float32. Undecodable images, unsupported formats and decompression bombs are a
400 with `{"error": {"code", "message"}}`, never a 500.

Environment: `CLIP_MODEL_FILE` (default model.onnx, or model.fp16.onnx when `CLIP_FP16=true` and
CUDA is present), `CLIP_MAX_BATCH` (64), `CLIP_MAX_PIXELS` (40,000,000), `CLIP_ALLOW_CPU`
(false: a GPU endpoint whose ONNX Runtime cannot use CUDA refuses to start rather than serve
slowly on CPU; true for CPU instances and local use).

Errors: the SageMaker inference toolkit answers an error as text (the message, then a stack
trace), so the message is the error shape as one line of JSON, which callers parse from the
first line whatever the content type.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from pathlib import Path
from typing import Any

try:  # inside model.tar.gz: code/clip_onnx.py sits beside this file
    import clip_onnx  # type: ignore[import-not-found]
except ImportError:  # in the repository: the same module, from the shared library
    from listing_vision.embeddings import clip_onnx

try:  # the SageMaker inference toolkit maps this error class to its status code
    from sagemaker_inference.errors import GenericInferenceToolkitError as _ToolkitError  # type: ignore
except ImportError:
    _ToolkitError = Exception

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "application/x-image"})
MAX_JSON_IMAGES = 256
LOGGER = logging.getLogger("clip.inference")


class ClientError(_ToolkitError):  # type: ignore[misc,valid-type]
    """A request the caller must fix; answered with HTTP 400 (or 415 for an unknown content type)."""

    def __init__(self, message: str, code: str, status_code: int = 400):
        self.status_code = status_code
        self.code = code
        self.message = message
        try:  # the toolkit answers with this message as the body's first line
            super().__init__(status_code, self.body(), message)
        except TypeError:
            Exception.__init__(self, message)

    def body(self) -> str:
        return json.dumps({"error": {"code": self.code, "message": self.message}})


def _flag(name: str) -> bool:
    return os.environ.get(name, "false").strip().lower() == "true"


def _preload_cuda_libraries() -> None:
    """ONNX Runtime (1.21+) loads the CUDA and cuDNN libraries of the nvidia pip packages first, so the
    versions it was built for are the ones used, whatever else the container has."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers() and hasattr(ort, "preload_dlls"):
        try:
            ort.preload_dlls()
        except Exception as error:  # noqa: BLE001 - reported; the provider check below decides
            LOGGER.warning("could not preload the CUDA libraries: %s", error)


def model_fn(model_dir: str) -> clip_onnx.ClipEncoder:
    fp16 = _flag("CLIP_FP16")
    _preload_cuda_libraries()
    available = clip_onnx.available_providers()
    cuda = "CUDAExecutionProvider" in available
    default = "model.fp16.onnx" if fp16 and cuda else "model.onnx"
    path = Path(model_dir) / os.environ.get("CLIP_MODEL_FILE", default)
    options = clip_onnx.SessionOptions(prefer_gpu=True, fp16=fp16)
    encoder = clip_onnx.ClipEncoder(path, options, max_batch=int(os.environ.get("CLIP_MAX_BATCH", "64")))
    running = encoder.session.get_providers()
    LOGGER.warning("CLIP model %s serving on %s (available: %s)", path.name, running, available)
    if running[0] != "CUDAExecutionProvider" and not _flag("CLIP_ALLOW_CPU"):
        raise RuntimeError(
            f"This endpoint is configured for a GPU, but ONNX Runtime runs {path.name} on {running[0]} "
            f"(available providers: {available}): the CUDA libraries do not match onnxruntime-gpu's. "
            "Refusing to serve on CPU; set CLIP_ALLOW_CPU=true to do so on purpose."
        )
    return encoder


def input_fn(body: bytes | str, content_type: str) -> list[Any]:
    """Decode the request into images (PIL), refusing anything that is not a safe image."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    max_pixels = int(os.environ.get("CLIP_MAX_PIXELS", str(clip_onnx.DEFAULT_MAX_PIXELS)))
    raw = body.encode() if isinstance(body, str) else body
    if media_type in IMAGE_TYPES:
        blobs = [raw]
    elif media_type == "application/json":
        blobs = _json_images(raw)
    else:
        raise ClientError(f"Content type {content_type!r} is not accepted.", "unsupported_content_type", 415)
    images = []
    for index, blob in enumerate(blobs):
        try:
            images.append(clip_onnx.decode_image(blob, max_pixels))
        except clip_onnx.InvalidImageError as error:
            raise ClientError(f"Image {index}: {error}", error.code) from error
    return images


def _json_images(raw: bytes) -> list[bytes]:
    try:
        payload = json.loads(raw)
        encoded = payload["images"]
    except (ValueError, KeyError, TypeError) as error:
        raise ClientError('Expected JSON {"images": ["<base64>", ...]}.', "invalid_request") from error
    if not isinstance(encoded, list) or not encoded or len(encoded) > MAX_JSON_IMAGES:
        raise ClientError(f"'images' must list 1 to {MAX_JSON_IMAGES} base64 strings.", "invalid_request")
    try:
        return [base64.b64decode(item, validate=True) for item in encoded]
    except (binascii.Error, TypeError) as error:
        raise ClientError("An entry of 'images' is not valid base64.", "invalid_request") from error


def predict_fn(images: list[Any], model: clip_onnx.ClipEncoder) -> Any:
    return model.encode_images(images)


def output_fn(embeddings: Any, accept: str) -> tuple[str, str]:
    body = json.dumps({"embeddings": embeddings.tolist(), "dim": int(embeddings.shape[1])})
    return body, "application/json"
