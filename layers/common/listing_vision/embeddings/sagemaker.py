"""Embeddings from the SageMaker endpoint (`sagemaker-runtime` InvokeEndpoint).

Images are sent no larger than the model side needs: short side at `MODEL_SIDE_PX` (verification's
working frame; CLIP sees 224 px), long side at most `EMBEDDING_TRANSPORT_PX`, aspect kept, EXIF
orientation applied, re-encoded; smaller images go as they are. So any image the API or a presigned
upload accepts (up to 50 MB) fits InvokeEndpoint's 6 MB payload, and the endpoint decodes a few
hundred thousand pixels an image instead of millions. Images go as `multipart/form-data` (the files
as they are, no base64: `multipart.py`), batched under the payload limit. The duplicate check's
features and verdicts come from the same endpoint (`features` = true, and `{"verify": {...}}`,
`imaging/features.py`).

The endpoint's model signature (`clip_onnx.model_signature`) is asked once, and every embedding
answer carries it: an answer from another model (one swapped in by a deployment while this
container runs) raises `ModelMismatch` rather than return vectors the collection cannot compare.

Timeouts and retries are botocore's (standard mode retries throttling and 5xx). A model error
becomes the matching domain error whatever its body: the serving code puts its error as one line
of JSON first, the inference toolkit adds a stack trace as text, and a body that is not ours is
mapped by its status.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from botocore.exceptions import BotoCoreError, ClientError

from listing_vision.concurrency import thread_map
from listing_vision.embeddings import multipart
from listing_vision.embeddings.base import Description
from listing_vision.embeddings.transport import for_transport
from listing_vision.errors import ModelMismatch, PayloadTooLarge, UnsupportedMedia, UpstreamError, VisionError
from listing_vision.imaging.decode import image_error
from listing_vision.imaging.features import Candidate, ImageFeatures, Verdict, VerifySettings, verify_request
from listing_vision.imaging.pixels import InvalidImageError

MAX_PAYLOAD_BYTES = 5_500_000  # under InvokeEndpoint's 6 MB, leaving room for the multipart framing
# A batch goes as several requests of up to REQUEST_IMAGES in flight together: the endpoint serves
# each request on one model-server worker (a process of 2 host threads), so one large request would
# leave the instance's other workers idle. Each answer with features carries ~60 KB an image.
REQUEST_IMAGES = 8
CONCURRENT_REQUESTS = 8
PART_OVERHEAD_BYTES = 200  # a part's delimiter and headers
TRANSPORT_THREADS = 4


class SageMakerEmbedder:
    def __init__(
        self,
        endpoint_name: str,
        client: Any,
        dim: int,
        transport_px: int = 1024,
        max_pixels: int = 40_000_000,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,  # 3.5 MB for a serverless endpoint (4 MB requests)
    ):
        self.endpoint_name = endpoint_name
        self.client = client
        self.dim = dim
        self.transport_px = transport_px
        self.max_pixels = max_pixels
        self.max_payload_bytes = max_payload_bytes
        self.model_id = f"sagemaker:{endpoint_name}"
        self._signature: str | None = None

    @property
    def model_signature(self) -> str:
        """The endpoint's model signature, asked on first use and then pinned for this container."""
        if self._signature is None:
            answer = self._call(json.dumps({"model": True}).encode(), "application/json")
            if not isinstance(answer.get("model"), str):
                raise UpstreamError("The embedding endpoint did not name its model.", code="embedding_failed")
            self._signature = answer["model"]
        return self._signature

    def _check_model(self, payload: dict[str, Any], expected: str | None = None) -> None:
        served = payload.get("model")
        expected = expected or self.model_signature
        if served != expected:
            raise ModelMismatch(
                f"The embedding endpoint now serves model {served!r}, not {expected!r} whose vectors this "
                "function's collection holds: refused until the endpoint serves that model again (a deployment "
                "rolled back), or the stage is switched to a collection of the new model's vectors.",
                details={"served": served, "expected": expected},
            )

    def embed(self, images: Sequence[bytes]) -> np.ndarray:
        def embed_batch(batch: list[bytes]) -> np.ndarray:
            return self._embeddings(self._call(*multipart.encode(batch)), len(batch))

        chunks = thread_map(embed_batch, self._prepared(images), CONCURRENT_REQUESTS)
        return np.concatenate(chunks) if chunks else np.zeros((0, self.dim), np.float32)

    def embed_with_model(self, images: Sequence[bytes]) -> tuple[np.ndarray, str]:
        """Not held to the pinned model: every batch must come from one model, the one returned."""

        def answer(batch: list[bytes]) -> tuple[dict[str, Any], int]:
            return self._call(*multipart.encode(batch)), len(batch)

        answers = thread_map(answer, self._prepared(images), CONCURRENT_REQUESTS)
        if not answers:
            return np.zeros((0, self.dim), np.float32), self.model_signature
        served = {answer.get("model") for answer, _ in answers}
        if len(served) != 1 or not isinstance(model := served.pop(), str):
            raise UpstreamError(
                "The embedding endpoint answered one request from several models (a deployment shifting traffic); "
                "try again.",
                code="embedding_failed",
            )
        chunks = [self._embeddings(answer, count, model) for answer, count in answers]
        return np.concatenate(chunks), model

    def describe(self, images: Sequence[bytes]) -> list[Description]:
        described = thread_map(self._describe_batch, self._prepared(images), CONCURRENT_REQUESTS)
        return [description for batch in described for description in batch]

    def _describe_batch(self, batch: list[bytes]) -> list[Description]:
        payload = self._call(*multipart.encode(batch, features=True))
        vectors = self._embeddings(payload, len(batch))
        try:
            found = [ImageFeatures.from_base64(item) for item in payload["features"]]
        except (KeyError, TypeError, ValueError) as error:
            raise UpstreamError(
                f"The embedding endpoint returned no usable features: {error}", code="embedding_shape_mismatch"
            ) from error
        _expect_count(found, len(batch), "features", "images")
        return [Description(vector, features) for vector, features in zip(vectors, found, strict=True)]

    def verify(self, query: ImageFeatures, candidates: Sequence[Candidate], settings: VerifySettings) -> list[Verdict]:
        if not candidates:
            return []
        payload = self._call(json.dumps(verify_request(query, list(candidates), settings)).encode(), "application/json")
        try:
            verdicts = [Verdict.from_json(item) for item in payload["verdicts"]]
        except (KeyError, TypeError) as error:
            raise UpstreamError(
                f"The embedding endpoint returned no verdicts: {error}", code="embedding_failed"
            ) from error
        _expect_count(verdicts, len(candidates), "verdicts", "candidates")
        return verdicts

    def _prepared(self, images: Sequence[bytes]) -> list[list[bytes]]:
        """The images at transport size (Pillow releases the GIL: several at once), in request batches."""
        try:
            prepared = thread_map(
                lambda image: for_transport(image, self.transport_px, self.max_pixels), images, TRANSPORT_THREADS
            )
        except InvalidImageError as error:
            raise image_error(error) from error
        return list(self._batches(prepared, REQUEST_IMAGES))

    def _batches(self, images: Sequence[bytes], max_images: int | None) -> Iterator[list[bytes]]:
        batch: list[bytes] = []
        size = 0
        for image in images:
            part = len(image) + PART_OVERHEAD_BYTES
            full = size + part > self.max_payload_bytes or (max_images is not None and len(batch) >= max_images)
            if batch and full:
                yield batch
                batch, size = [], 0
            batch.append(image)
            size += part
        if batch:
            yield batch

    def _embeddings(self, payload: dict[str, Any], expected: int, model: str | None = None) -> np.ndarray:
        """The answer's embeddings (base64 of little-endian float32, what a multipart request gets), from
        `model` (by default the pinned one)."""
        self._check_model(payload, model)
        try:
            vectors = np.frombuffer(base64.b64decode(payload.get("embeddings", ""), validate=True), "<f4")
            vectors = vectors.reshape(-1, self.dim).astype(np.float32)
        except (TypeError, ValueError, binascii.Error) as error:
            raise UpstreamError(
                f"The embedding endpoint returned no usable embeddings: {error}", code="embedding_shape_mismatch"
            ) from error
        if vectors.shape != (expected, self.dim):
            raise UpstreamError(
                f"The embedding endpoint returned shape {vectors.shape}, expected ({expected}, {self.dim}).",
                code="embedding_shape_mismatch",
            )
        return vectors

    def _call(self, body: bytes, content_type: str) -> dict[str, Any]:
        try:
            response = self.client.invoke_endpoint(
                EndpointName=self.endpoint_name, ContentType=content_type, Accept="application/json", Body=body
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


def _expect_count(answers: Sequence[object], asked: int, what: str, of: str) -> None:
    if len(answers) != asked:
        raise UpstreamError(
            f"The embedding endpoint returned {len(answers)} {what} for {asked} {of}.", code="embedding_shape_mismatch"
        )


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
