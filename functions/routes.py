"""The REST API surface: which function answers which route. Plain data, read by CDK (infra/)
to build API Gateway and by the local gateway (local/) to route requests, so both agree."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    function: str  # a name of functions/specs.py
    method: str
    path: str  # API Gateway resource path; `{name}` is a path parameter


ROUTES: tuple[Route, ...] = (
    Route("dedupe", "POST", "/image_similarity_search"),
    Route("dedupe", "POST", "/uploads"),
    Route("dedupe", "GET", "/uploads/{upload_id}"),
    Route("caption", "POST", "/generate_caption"),
    Route("generate", "POST", "/generate-images"),
    Route("generate", "POST", "/regenerate-image"),
    Route("generate", "GET", "/jobs/{job_id}"),
)

# Content types API Gateway passes to Lambda base64-encoded (RestApi binaryMediaTypes).
BINARY_MEDIA_TYPES: tuple[str, ...] = ("multipart/form-data", "image/*", "application/octet-stream")
