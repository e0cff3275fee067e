"""Embeddings from the SageMaker endpoint (`sagemaker-runtime` InvokeEndpoint).

Images larger than the model needs are downscaled here first (longest side to
`EMBEDDING_TRANSPORT_PX`, aspect kept, EXIF orientation applied, re-encoded), so any image the API
or a presigned upload accepts (up to 50 MB) fits InvokeEndpoint's 6 MB payload; CLIP sees 224 px
anyway. Images go as one JSON batch per request (`{"images": [base64, ...]}`), split under the
payload limit. The duplicate check's features and verdicts come from the same endpoint
(`{"images": [...], "features": true}` and `{"verify": {...}}`, `imaging/features.py`).

Timeouts and retries are botocore's (standard mode retries throttling and 5xx). A model error
becomes the matching domain error whatever its body: the serving code puts its error as one line
of JSON first, the inference toolkit adds a stack trace as text, and a body that is not ours is
mapped by its status.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from botocore.exceptions import BotoCoreError, ClientError
from PIL import Image, ImageOps

from listing_vision.embeddings.base import Description
from listing_vision.embeddings.clip_onnx import InvalidImageError, decode_image
from listing_vision.errors import PayloadTooLarge, UnsupportedMedia, UpstreamError, VisionError
from listing_vision.imaging.decode import image_error
from listing_vision.imaging.features import Candidate, ImageFeatures, Verdict, VerifySettings, verify_request

MAX_PAYLOAD_BYTES = 5_500_000  # under InvokeEndpoint's 6 MB, leaving room for JSON framing
MAX_DESCRIBE_IMAGES = 32  # each answer carries ~60 KB of features: keep it well under 6 MB too


def for_transport(image: bytes, max_side: int, max_pixels: int) -> bytes:
    """The image as sent to the endpoint: unchanged when its longest side is at most `max_side`,
    otherwise downscaled to it (aspect kept, orientation applied) and re-encoded (PNG keeps
    transparency; everything else JPEG at quality 95)."""
    decoded = decode_image(image, max_pixels)
    if max(decoded.size) <= max_side:
        return image
    upright = ImageOps.exif_transpose(decoded)
    upright.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if upright.mode in ("RGBA", "LA", "P") and decoded.format == "PNG":
        upright.save(buffer, "PNG")
    else:
        upright.convert("RGB").save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


class SageMakerEmbedder:
    def __init__(
        self, endpoint_name: str, client: Any, dim: int, transport_px: int = 1024, max_pixels: int = 40_000_000
    ):
        self.endpoint_name = endpoint_name
        self.client = client
        self.dim = dim
        self.transport_px = transport_px
        self.max_pixels = max_pixels
        self.model_id = f"sagemaker:{endpoint_name}"

    def embed(self, images: Sequence[bytes]) -> np.ndarray:
        chunks = [self._embeddings(self._call({"images": batch}), len(batch)) for batch in self._prepared(images)]
        return np.concatenate(chunks) if chunks else np.zeros((0, self.dim), np.float32)

    def describe(self, images: Sequence[bytes]) -> list[Description]:
        described: list[Description] = []
        for batch in self._prepared(images, max_images=MAX_DESCRIBE_IMAGES):
            payload = self._call({"images": batch, "features": True})
            vectors = self._embeddings(payload, len(batch))
            try:
                found = [ImageFeatures.from_base64(item) for item in payload["features"]]
            except (KeyError, TypeError, ValueError) as error:
                raise UpstreamError(
                    f"The embedding endpoint returned no usable features: {error}", code="embedding_shape_mismatch"
                ) from error
            if len(found) != len(batch):
                raise UpstreamError(
                    f"The embedding endpoint returned {len(found)} features for {len(batch)} images.",
                    code="embedding_shape_mismatch",
                )
            described += [Description(vector, features) for vector, features in zip(vectors, found, strict=True)]
        return described

    def verify(self, query: ImageFeatures, candidates: Sequence[Candidate], settings: VerifySettings) -> list[Verdict]:
        if not candidates:
            return []
        payload = self._call(verify_request(query, list(candidates), settings))
        try:
            verdicts = [Verdict.from_json(item) for item in payload["verdicts"]]
        except (KeyError, TypeError) as error:
            raise UpstreamError(
                f"The embedding endpoint returned no verdicts: {error}", code="embedding_failed"
            ) from error
        if len(verdicts) != len(candidates):
            raise UpstreamError(
                f"The embedding endpoint returned {len(verdicts)} verdicts for {len(candidates)} candidates.",
                code="embedding_shape_mismatch",
            )
        return verdicts

    def _prepared(self, images: Sequence[bytes], max_images: int | None = None) -> Iterator[list[str]]:
        try:
            prepared = [for_transport(image, self.transport_px, self.max_pixels) for image in images]
        except InvalidImageError as error:
            raise image_error(error) from error
        return self._batches(prepared, max_images)

    def _batches(self, images: Sequence[bytes], max_images: int | None) -> Iterator[list[str]]:
        batch: list[str] = []
        size = 0
        for image in images:
            encoded = base64.b64encode(image).decode()
            full = size + len(encoded) > MAX_PAYLOAD_BYTES or (max_images is not None and len(batch) >= max_images)
            if batch and full:
                yield batch
                batch, size = [], 0
            batch.append(encoded)
            size += len(encoded)
        if batch:
            yield batch

    def _embeddings(self, payload: dict[str, Any], expected: int) -> np.ndarray:
        vectors = np.asarray(payload.get("embeddings"), dtype=np.float32)
        if vectors.shape != (expected, self.dim):
            raise UpstreamError(
                f"The embedding endpoint returned shape {vectors.shape}, expected ({expected}, {self.dim}).",
                code="embedding_shape_mismatch",
            )
        return vectors

    def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self.client.invoke_endpoint(
                EndpointName=self.endpoint_name,
                ContentType="application/json",
                Accept="application/json",
                Body=json.dumps(request).encode(),
            )
        except ClientError as error:
            raise model_error(error) from error
        except BotoCoreError as error:
            raise UpstreamError(
                f"The embedding endpoint did not answer: {error}", code="embedding_unavailable"
            ) from error
        payload = json.loads(response["Body"].read())
        if not isinstance(payload, dict):
            raise UpstreamError("The embedding endpoint answered with something other than a JSON object.")
        return payload


def model_error(error: ClientError) -> VisionError:
    """The domain error for a failed InvokeEndpoint: the model's own error code when its body carries
    one (first line, JSON), else one chosen by its status; throttling and the rest are upstream errors."""
    response = error.response
    code = response.get("Error", {}).get("Code", "")
    status = int(response.get("OriginalStatusCode") or 0)
    if code != "ModelError" or not status:
        return UpstreamError(f"The embedding endpoint failed ({code or 'error'}).", code="embedding_failed")
    text = str(response.get("OriginalMessage") or "")
    try:
        detail = json.loads(text.splitlines()[0])["error"]
        if 400 <= status < 500:
            return image_error(InvalidImageError(str(detail["message"]), str(detail["code"])))
    except (ValueError, KeyError, TypeError, IndexError):
        pass
    summary = (text.splitlines() or [""])[0][:200]
    if status == 413:
        return PayloadTooLarge(f"The embedding endpoint refused the image as too large: {summary}")
    if status == 415:
        return UnsupportedMedia(f"The embedding endpoint refused the content type: {summary}")
    if 400 <= status < 500:
        return UpstreamError(f"The embedding endpoint refused the image: {summary}", code="embedding_rejected")
    return UpstreamError(f"The embedding endpoint failed ({status}): {summary}", code="embedding_failed")
