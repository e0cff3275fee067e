"""The REST API surface: which function answers which route. Plain data, read by CDK (infra/)
to build API Gateway and by the local gateway (local/) to route requests, so both agree."""

from __future__ import annotations

from dataclasses import dataclass, field

from listing_vision.api.error_codes import CAPTION_PROVIDER, GATEWAY, IDEMPOTENCY, IMAGE, JSON_BODY, MULTIPART_BODY


@dataclass(frozen=True)
class Route:
    function: str  # a name of functions/specs.py
    method: str
    path: str  # API Gateway resource path; `{name}` is a path parameter
    # the error codes it answers (listing_vision/api/error_codes.py), API Gateway's included
    errors: tuple[str, ...] = field(default=(), compare=False)
    # Its own throttle in every usage plan, per client (requests per second, burst), where it must be
    # lower than the plan's: a route that costs a store more per request than the others
    throttle: tuple[float, int] | None = field(default=None, compare=False)


WEBHOOK_SCOPE = ("unknown_parameter", "storefront_forbidden")

ROUTES: tuple[Route, ...] = (
    Route("dedupe", "POST", "/image_similarity_search", (*MULTIPART_BODY, *IMAGE, *GATEWAY)),
    Route(
        "dedupe",
        "POST",
        "/uploads",
        (*JSON_BODY, "filename_too_long", "invalid_filename", "storefront_forbidden", *GATEWAY),
    ),
    Route("dedupe", "GET", "/uploads/{upload_id}", ("invalid_request", "upload_not_found", *GATEWAY)),
    Route(
        "dedupe",
        "GET",
        "/images",
        ("invalid_request", "unknown_parameter", "invalid_cursor", "storefront_forbidden", *GATEWAY),
    ),
    Route(
        "dedupe",
        "GET",
        "/images/{image_id}",
        ("invalid_request", "unknown_parameter", "storefront_forbidden", "image_not_found", *GATEWAY),
    ),
    Route(
        "dedupe",
        "DELETE",
        "/images/{image_id}",
        (
            *("invalid_request", "unknown_parameter", "storefront_forbidden", "image_not_found"),
            *("image_not_deletable", "image_delete_in_progress", *GATEWAY),
        ),
    ),
    Route(
        "dedupe",
        "PUT",
        "/verdicts",
        (*JSON_BODY, "storefront_forbidden", "same_image_pair", "image_not_found", *GATEWAY),
    ),
    Route(
        "dedupe",
        "GET",
        "/verdicts",
        ("invalid_request", "unknown_parameter", "invalid_cursor", "storefront_forbidden", *GATEWAY),
    ),
    Route(
        "caption",
        "POST",
        "/generate_caption",
        (*MULTIPART_BODY, *IMAGE, "no_piece_found", *CAPTION_PROVIDER, *IDEMPOTENCY, *GATEWAY),
    ),
    Route(
        "caption",
        "GET",
        "/images/{image_id}/caption",
        ("invalid_request", "storefront_forbidden", "image_not_found", "caption_not_found", *GATEWAY),
    ),
    Route(
        "caption",
        "GET",
        "/images/{image_id}/captions",
        ("invalid_request", "storefront_forbidden", "image_not_found", *GATEWAY),
    ),
    Route(
        "caption",
        "POST",
        "/images/{image_id}/caption",
        (
            *JSON_BODY,
            "storefront_forbidden",
            "image_not_found",
            "caption_in_progress",
            "no_piece_found",
            *CAPTION_PROVIDER,
            *IDEMPOTENCY,
            *GATEWAY,
        ),
    ),
    Route(
        "generate",
        "POST",
        "/generate-images",
        (
            *JSON_BODY,
            "unknown_product_type",
            "unknown_image_type",
            "invalid_dimensions",
            "dimensions_required",
            "source_not_allowed",
            "source_not_found",
            "too_many_photos",
            "duplicate_photos",
            "storefront_forbidden",
            "worker_not_started",
            *IDEMPOTENCY,
            *GATEWAY,
        ),
    ),
    Route(
        "generate",
        "POST",
        "/regenerate-image",
        (
            *JSON_BODY,
            "job_not_found",
            "unknown_image_type",
            "dimensions_required",
            "job_in_progress",
            "worker_not_started",
            *IDEMPOTENCY,
            *GATEWAY,
        ),
    ),
    Route("generate", "GET", "/jobs/{job_id}", ("invalid_request", "job_not_found", *GATEWAY)),
    Route("generate", "GET", "/jobs/{job_id}/zip", ("invalid_request", "job_not_found", "image_not_found", *GATEWAY)),
    Route(
        "generate",
        "GET",
        "/jobs/{job_id}/images/{image_type}",
        ("invalid_request", "job_not_found", "image_not_found", *GATEWAY),
    ),
    Route(
        "generate",
        "GET",
        "/jobs",
        ("invalid_request", "unknown_parameter", "invalid_cursor", "storefront_forbidden", *GATEWAY),
    ),
    Route(
        "generate",
        "DELETE",
        "/jobs/{job_id}",
        ("invalid_request", "storefront_forbidden", "job_not_found", "job_already_finished", *GATEWAY),
    ),
    Route(
        "generate",
        "PUT",
        "/webhooks",
        (
            *JSON_BODY,
            *("unknown_parameter", "storefront_forbidden", "invalid_webhook_url", "webhook_url_forbidden"),
            *GATEWAY,
        ),
    ),
    Route("generate", "GET", "/webhooks", ("invalid_request", *WEBHOOK_SCOPE, "webhook_not_found", *GATEWAY)),
    Route("generate", "DELETE", "/webhooks", ("invalid_request", *WEBHOOK_SCOPE, *GATEWAY)),
    Route("generate", "GET", "/webhooks/deliveries", ("invalid_request", *WEBHOOK_SCOPE, *GATEWAY)),
    Route(
        "listing-search",
        "GET",
        "/listings/search",
        ("invalid_request", "unknown_parameter", "unknown_amenity", "invalid_cursor", *GATEWAY),
        # each search is an OpenSearch query over every listing: a client gets fewer than the plan's rate
        throttle=(5, 10),
    ),
    Route("listing-search", "GET", "/listings/migration", ("invalid_request", "unknown_parameter", *GATEWAY)),
    Route(
        "listing-search",
        "GET",
        "/listings/{zpid}",
        ("invalid_request", "unknown_parameter", "listing_not_found", *GATEWAY),
    ),
)

# Content types API Gateway passes to Lambda base64-encoded (RestApi binaryMediaTypes).
BINARY_MEDIA_TYPES: tuple[str, ...] = ("multipart/form-data", "image/*", "application/octet-stream")
