"""SageMaker inference handler for the ONNX CLIP image encoder (packaged as code/inference.py).

Requests:
  - `image/jpeg`, `image/png`, `image/webp`, `application/x-image`: one image → one embedding.
  - `application/json`: `{"images": ["<base64>", ...]}` → one embedding per image, in order.
Response (`application/json`): `{"embeddings": [[...], ...], "dim": D, "model": "<file>"}`,
L2-normalised float32. Undecodable images, unsupported formats and decompression bombs are a
400 with `{"error": {"code", "message"}}`, never a 500.

Environment: `CLIP_MODEL_FILE` (default model.onnx, or model.fp16.onnx when `CLIP_FP16=true` and
CUDA is present), `CLIP_MAX_BATCH` (64), `CLIP_MAX_PIXELS` (40,000,000), `CLIP_RESIZE` (`squash`,
the whole image, as the in-process path; or `clip`, CLIPImageProcessor's centre crop).
"""

from __future__ import annotations

import base64
import binascii
import json
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


class ClientError(_ToolkitError):  # type: ignore[misc,valid-type]
    """A request the caller must fix; answered with HTTP 400 (or 415 for an unknown content type)."""

    def __init__(self, message: str, code: str, status_code: int = 400):
        self.status_code = status_code
        self.code = code
        self.message = message
        try:
            super().__init__(status_code, message, message)  # toolkit signature
        except TypeError:
            Exception.__init__(self, message)

    def body(self) -> str:
        return json.dumps({"error": {"code": self.code, "message": self.message}})


def model_fn(model_dir: str) -> clip_onnx.ClipEncoder:
    fp16 = os.environ.get("CLIP_FP16", "false").lower() == "true"
    cuda = "CUDAExecutionProvider" in clip_onnx.available_providers()
    default = "model.fp16.onnx" if fp16 and cuda else "model.onnx"
    path = Path(model_dir) / os.environ.get("CLIP_MODEL_FILE", default)
    options = clip_onnx.SessionOptions(prefer_gpu=True, fp16=fp16)
    return clip_onnx.ClipEncoder(
        path,
        options,
        max_batch=int(os.environ.get("CLIP_MAX_BATCH", "64")),
        resize=os.environ.get("CLIP_RESIZE", clip_onnx.SERVING_RESIZE),
    )


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
