"""SageMaker inference handler for the ONNX CLIP image encoder (packaged as code/inference.py).

Requests, answered in `application/json`:
  - `image/jpeg`, `image/png`, `image/webp`, `application/x-image`: one image → one embedding,
    `{"embeddings": [[...]], "dim": D}` (L2-normalised float32).
  - `multipart/form-data` (what Lambda sends, `listing_vision/embeddings/multipart.py`): `image`
    parts, one per image, and optionally `features` = `true`: one embedding per image, in order, as
    `{"embeddings": "<base64 of float32 little-endian [N, D]>", "dim": D}`, and with features
    also each image's duplicate-verification features, `"features": ["<base64 npz>", ...]`.
  - `{"images": ["<base64>", ...], "features": bool}`: the same in JSON (a third larger, slower).
  - `{"verify": {"query": "<base64 npz>", "candidates": [{"features": "<base64 npz>", "near": bool}],
    "settings": {...}}}`: `{"verdicts": [{"same", "match", "reason", ...}]}`, one per candidate
    (`listing_vision/imaging/features.py` defines the forms).
  - `{"model": true}`: `{"model": "<signature>", "dim": D}`, what the vectors depend on (model bytes
    and preprocessing, `clip_onnx.model_signature`). Every embedding answer carries it too, so a
    caller notices a model swapped under it (a blue/green deployment) before it stores a vector.
Undecodable images, unsupported formats, decompression bombs and malformed requests are a 400
with `{"error": {"code", "message"}}`, never a 500.

Environment: `CLIP_MODEL_FILE` (default model.onnx, or model.fp16.onnx when `CLIP_FP16=true` and
CUDA is present), `CLIP_MAX_BATCH` (64), `CLIP_MAX_PIXELS` (40,000,000), `CLIP_RESIZE` (`squash`,
the whole image, as the in-process path; or `clip`, CLIPImageProcessor's centre crop),
`CLIP_HOST_THREADS` (decoding, resizing and features, and the model's CPU threads; default one per vCPU),
`CLIP_ALLOW_CPU` (false: a GPU endpoint whose ONNX Runtime cannot use CUDA refuses to start rather
than serve slowly on CPU; true for CPU instances and local use).

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

# Inside model.tar.gz the library modules it needs are packaged under code/listing_vision/
# (serving/clip/package.py); in the repository they are the shared library itself.
from listing_vision.embeddings import clip_onnx, multipart, vision_model
from listing_vision.imaging import features, pixels

try:  # the SageMaker inference toolkit maps this error class to its status code
    from sagemaker_inference.errors import GenericInferenceToolkitError as _ToolkitError  # type: ignore
except ImportError:
    _ToolkitError = Exception

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "application/x-image"})
MAX_IMAGES = 256
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


def model_fn(model_dir: str) -> vision_model.VisionModel:
    fp16 = _flag("CLIP_FP16")
    _preload_cuda_libraries()
    available = clip_onnx.available_providers()
    cuda = "CUDAExecutionProvider" in available
    default = "model.fp16.onnx" if fp16 and cuda else "model.onnx"
    path = Path(model_dir) / os.environ.get("CLIP_MODEL_FILE", default)
    threads = int(os.environ.get("CLIP_HOST_THREADS", "0")) or None  # default: one per vCPU
    # The model's own CPU threads (all of its work on a CPU instance) as many as the worker's host
    # threads: each of several workers taking one per core would crowd the cores many times over.
    options = clip_onnx.SessionOptions(prefer_gpu=True, fp16=fp16, intra_op_threads=threads or 0)
    encoder = clip_onnx.ClipEncoder(
        path,
        options,
        max_batch=int(os.environ.get("CLIP_MAX_BATCH", "64")),
        resize=cast(clip_onnx.Resize, os.environ.get("CLIP_RESIZE", clip_onnx.SERVING_RESIZE)),  # checked there
    )
    running = encoder.session.get_providers()
    LOGGER.warning("CLIP model %s serving on %s (available: %s)", path.name, running, available)
    if running[0] != "CUDAExecutionProvider" and not _flag("CLIP_ALLOW_CPU"):
        raise RuntimeError(
            f"This endpoint is configured for a GPU, but ONNX Runtime runs {path.name} on {running[0]} "
            f"(available providers: {available}): the CUDA libraries do not match onnxruntime-gpu's. "
            "Refusing to serve on CPU; set CLIP_ALLOW_CPU=true to do so on purpose."
        )
    import cv2

    LOGGER.warning("duplicate verification on OpenCV %s", cv2.__version__)
    return vision_model.VisionModel(encoder, threads)


@dataclass(frozen=True)
class EmbedRequest:
    images: list[bytes]  # image files, decoded in predict_fn on the host threads
    features: bool = False
    binary: bool = False  # a multipart request: embeddings answered as base64 float32 (see embeddings_json)


@dataclass(frozen=True)
class ModelRequest:
    """Which model this endpoint serves (its signature), asked once by each caller at start."""


@dataclass(frozen=True)
class VerifyRequest:
    query: features.ImageFeatures
    candidates: list[features.Candidate]
    settings: features.VerifySettings


def input_fn(body: bytes | str, content_type: str) -> EmbedRequest | VerifyRequest | ModelRequest:
    """Decode the request, refusing anything that is not a safe image or a well-formed request."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    raw = body.encode() if isinstance(body, str) else body
    if media_type in IMAGE_TYPES:
        return EmbedRequest([raw])
    if media_type == multipart.MEDIA_TYPE:
        try:
            images, with_features = multipart.decode(raw, content_type, MAX_IMAGES)
            return EmbedRequest(images, with_features, binary=True)
        except multipart.MalformedBody as error:
            raise ClientError(str(error), "invalid_request") from error
    if media_type != "application/json":
        raise ClientError(f"Content type {content_type!r} is not accepted.", "unsupported_content_type", 415)
    try:
        payload = json.loads(raw)
    except ValueError as error:
        raise ClientError("The request body is not JSON.", "invalid_request") from error
    if payload == {"model": True}:
        return ModelRequest()
    if isinstance(payload, dict) and "verify" in payload:
        try:
            return VerifyRequest(*features.parse_verify_request(payload))
        except ValueError as error:
            raise ClientError(str(error), "invalid_request") from error
    with_features = payload.get("features", False) if isinstance(payload, dict) else False
    if not isinstance(with_features, bool):
        raise ClientError("'features' must be true or false.", "invalid_request")
    return EmbedRequest(_json_images(payload), with_features)


def _json_images(payload: Any) -> list[bytes]:
    encoded = payload.get("images") if isinstance(payload, dict) else None
    if not isinstance(encoded, list) or not encoded or len(encoded) > MAX_IMAGES:
        raise ClientError(f'Expected JSON {{"images": [1 to {MAX_IMAGES} base64 strings]}}.', "invalid_request")
    try:
        return [base64.b64decode(item, validate=True) for item in encoded]
    except (binascii.Error, TypeError, ValueError) as error:
        raise ClientError("An entry of 'images' is not valid base64.", "invalid_request") from error


def predict_fn(request: EmbedRequest | VerifyRequest | ModelRequest, model: vision_model.VisionModel) -> dict[str, Any]:
    if isinstance(request, ModelRequest):
        return {"model": model.encoder.signature, "dim": model.dim}
    if isinstance(request, VerifyRequest):
        return features.verdicts_json(model.verify(request.query, request.candidates, request.settings))
    max_pixels = int(os.environ.get("CLIP_MAX_PIXELS", str(pixels.DEFAULT_MAX_PIXELS)))
    signed = {"model": model.encoder.signature}
    try:
        if not request.features:
            return {**embeddings_json(model.embed(request.images, max_pixels), request.binary), **signed}
        embeddings, encoded = model.describe_as(
            request.images, lambda found: found.to_base64(with_mirror=True), max_pixels
        )
    except pixels.InvalidImageError as error:
        raise ClientError(str(error), error.code) from error
    return {**embeddings_json(embeddings, request.binary), **signed, "features": encoded}


def embeddings_json(embeddings: Any, binary: bool) -> dict[str, Any]:
    """JSON requests get lists of numbers; multipart requests (Lambda's) get the float32 array as
    base64 of its little-endian bytes: exact, and 60× cheaper to write than decimal text (which
    holds the GIL for 0.3 ms an image, a limit on a 16-core host)."""
    dim = int(embeddings.shape[1])
    if binary:
        return {"embeddings": base64.b64encode(embeddings.astype("<f4").tobytes()).decode(), "dim": dim}
    return {"embeddings": embeddings.tolist(), "dim": dim}


def output_fn(prediction: dict[str, Any], accept: str) -> tuple[str, str]:
    return json.dumps(prediction), "application/json"
