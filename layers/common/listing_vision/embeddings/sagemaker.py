"""Embeddings from the SageMaker endpoint (`sagemaker-runtime` InvokeEndpoint).

Images go as one JSON batch per request (`{"images": [base64, ...]}`), split so no request
exceeds the endpoint's 6 MB payload limit. Timeouts and retries are botocore's (standard mode
retries throttling and 5xx); a 4xx from the model (a bad image) becomes the matching domain error.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from botocore.exceptions import BotoCoreError, ClientError

from listing_vision.embeddings.clip_onnx import InvalidImageError
from listing_vision.errors import UpstreamError
from listing_vision.imaging.decode import image_error

MAX_PAYLOAD_BYTES = 5_500_000  # under InvokeEndpoint's 6 MB, leaving room for JSON framing


class SageMakerEmbedder:
    def __init__(self, endpoint_name: str, client: Any, dim: int):
        self.endpoint_name = endpoint_name
        self.client = client
        self.dim = dim
        self.model_id = f"sagemaker:{endpoint_name}"

    def embed(self, images: Sequence[bytes]) -> np.ndarray:
        chunks = [self._invoke(batch) for batch in self._batches(images)]
        return np.concatenate(chunks) if chunks else np.zeros((0, self.dim), np.float32)

    def _batches(self, images: Sequence[bytes]) -> Iterator[list[str]]:
        batch: list[str] = []
        size = 0
        for image in images:
            encoded = base64.b64encode(image).decode()
            if batch and size + len(encoded) > MAX_PAYLOAD_BYTES:
                yield batch
                batch, size = [], 0
            batch.append(encoded)
            size += len(encoded)
        if batch:
            yield batch

    def _invoke(self, batch: list[str]) -> np.ndarray:
        try:
            response = self.client.invoke_endpoint(
                EndpointName=self.endpoint_name,
                ContentType="application/json",
                Accept="application/json",
                Body=json.dumps({"images": batch}).encode(),
            )
        except ClientError as error:
            raise self._client_error(error) from error
        except BotoCoreError as error:
            raise UpstreamError(
                f"The embedding endpoint did not answer: {error}", code="embedding_unavailable"
            ) from error
        payload = json.loads(response["Body"].read())
        vectors = np.asarray(payload["embeddings"], dtype=np.float32)
        if vectors.shape != (len(batch), self.dim):
            raise UpstreamError(
                f"The embedding endpoint returned shape {vectors.shape}, expected ({len(batch)}, {self.dim}).",
                code="embedding_shape_mismatch",
            )
        return vectors

    def _client_error(self, error: ClientError) -> Exception:
        response = error.response
        status = int(response.get("OriginalStatusCode") or 0)
        if response.get("Error", {}).get("Code") == "ModelError" and 400 <= status < 500:
            try:
                detail = json.loads(response.get("OriginalMessage") or "{}")["error"]
                return image_error(InvalidImageError(detail["message"], detail["code"]))
            except (ValueError, KeyError, TypeError):
                pass
        return UpstreamError(f"The embedding endpoint failed: {error}", code="embedding_failed")
