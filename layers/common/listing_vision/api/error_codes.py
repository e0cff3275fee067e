"""Every error code the API answers, with its HTTP status and meaning: declared once.

Routes (functions/routes.py) name the codes each can answer from the groups below; the OpenAPI
document (functions/openapi.py) and the README's table are generated from those declarations, and
the bad-input corpus (tests/integration/test_bad_input_corpus.py) checks every refusal it provokes
against them. A code raised in the library (`VisionError(code=...)`) gets its status from
`listing_vision.errors`; this table must agree (tests/unit/test_error_codes.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from listing_vision.api.gateway_responses import GATEWAY_RESPONSES


@dataclass(frozen=True)
class ErrorCode:
    code: str
    status: int
    meaning: str


_OURS: tuple[ErrorCode, ...] = (
    # the request itself
    ErrorCode("invalid_request", 400, "A field is missing, of the wrong type or out of range (`details.fields`)."),
    ErrorCode("malformed_json", 400, "The body is not strict JSON (syntax, not UTF-8, NaN, nested over 32 levels)."),
    ErrorCode("malformed_multipart", 400, "multipart/form-data without a boundary, or with parts that cannot be read."),
    ErrorCode("malformed_body", 400, "The body is not valid base64 where API Gateway encoded it."),
    ErrorCode("unsupported_content_type", 415, "The body's media type is not the route's (JSON or multipart)."),
    ErrorCode("unknown_parameter", 400, "A query parameter the operation does not take (`details.known` lists them)."),
    ErrorCode(
        "invalid_cursor",
        400,
        "The cursor is garbled, altered, from another query or storefront, or past the 10,000-hit result window "
        "of listing search: start again without it (narrow the search to see further).",
    ),
    # images
    ErrorCode("empty_file", 400, "The file is empty."),
    ErrorCode("not_an_image", 400, "The file is not an image."),
    ErrorCode("corrupt_image", 400, "The image is truncated or corrupt (its header or its data)."),
    ErrorCode("unsupported_image_format", 415, "Not JPEG, PNG or WebP (GIF, TIFF, BMP, …)."),
    ErrorCode("decompression_bomb", 413, "The image claims more than MAX_IMAGE_PIXELS pixels (refused unread)."),
    ErrorCode("file_too_large", 413, "The file is over MAX_UPLOAD_BYTES (use POST /uploads)."),
    ErrorCode("filename_too_long", 400, "The file's name is over 255 bytes of UTF-8 (S3 metadata is capped at 2 KB)."),
    ErrorCode(
        "invalid_filename",
        400,
        "The file's name holds control, bidirectional-control, separator or replacement characters "
        "(NUL, U+202E, U+2028, U+FFFD).",
    ),
    ErrorCode("image_too_small", 422, "A side is under 16 px."),
    ErrorCode("blank_image", 422, "The image is one flat colour (all white, all black): no product in it."),
    ErrorCode(
        "no_piece_found",
        422,
        "No piece stands out from the photo's background (the offline captioner; generation reports it per type).",
    ),
    ErrorCode("upload_in_progress", 409, "The same bytes are being stored by another request."),
    # retries (Idempotency-Key)
    ErrorCode("invalid_idempotency_key", 400, "Idempotency-Key is empty, over 255 characters or not visible ASCII."),
    ErrorCode("idempotency_key_reused", 422, "This Idempotency-Key was used for another request (another body)."),
    ErrorCode("idempotency_in_progress", 409, "The first request with this Idempotency-Key is still running."),
    # access
    ErrorCode("storefront_forbidden", 403, "The client's key does not cover this storefront."),
    ErrorCode("scope_forbidden", 403, "The client may search its own storefronts only."),
    # resources
    ErrorCode("upload_not_found", 404, "No such upload in this storefront."),
    ErrorCode("job_not_found", 404, "No such job (or another storefront's)."),
    ErrorCode(
        "image_not_deletable",
        409,
        "The image was indexed where it was put in S3, not stored by the API: delete the object in S3 instead.",
    ),
    ErrorCode("image_delete_in_progress", 409, "Another request is deleting this image; retry shortly."),
    ErrorCode("job_in_progress", 409, "The job is still running: one run at a time."),
    ErrorCode(
        "job_already_finished",
        409,
        "The job ended (done, partial or failed) before it could be cancelled: nothing changed.",
    ),
    ErrorCode(
        "image_not_found", 404, "No stored photo with this id (its bytes' SHA-256) in this storefront (or deleted)."
    ),
    ErrorCode("same_image_pair", 400, "A verdict's image_id and matched_image_id are the same image."),
    ErrorCode("listing_not_found", 404, "No listing with this zpid in the listings index."),
    ErrorCode("caption_not_found", 404, "The photo has no caption yet (POST /images/{id}/caption makes one)."),
    ErrorCode("caption_in_progress", 409, "Other captions of the photo are being written at this moment; retry."),
    ErrorCode("webhook_not_found", 404, "This client registered no webhook for this storefront."),
    ErrorCode(
        "invalid_webhook_url",
        400,
        "The webhook URL is not an absolute http(s) URL with a host (no credentials, no fragment), or its host "
        "does not resolve.",
    ),
    ErrorCode(
        "webhook_url_forbidden",
        400,
        "The webhook URL's host resolves to a private, loopback, link-local or otherwise non-public address.",
    ),
    ErrorCode("unknown_product_type", 400, "product_type is not one of the catalogue's."),
    ErrorCode("unknown_image_type", 400, "An image type the product does not have."),
    ErrorCode("unknown_amenity", 400, "An amenity the feature taxonomy does not know (it could never match)."),
    ErrorCode("invalid_dimensions", 400, "dimensions_mm needs positive width and height."),
    ErrorCode("dimensions_required", 400, "Image type 3 (dimensions) asked for without dimensions_mm."),
    ErrorCode("source_not_allowed", 400, "s3_urls does not name an object in a storefront bucket."),
    ErrorCode("source_not_found", 404, "No object at s3_urls."),
    ErrorCode("too_many_photos", 400, "s3_urls lists more photos than one request takes (10)."),
    ErrorCode("duplicate_photos", 400, "s3_urls names the same photo twice (in any URL form)."),
    ErrorCode("worker_not_started", 502, "The generation worker could not be invoked (the run is ended failed)."),
    # upstream
    ErrorCode("embedding_failed", 502, "The embedding endpoint failed."),
    ErrorCode("embedding_rejected", 502, "The embedding endpoint refused the image."),
    ErrorCode("embedding_shape_mismatch", 502, "The embedding endpoint answered with the wrong shape."),
    ErrorCode("embedding_unavailable", 502, "The embedding endpoint did not answer."),
    ErrorCode("content_policy_refusal", 400, "The caption provider declined the image."),
    ErrorCode("insufficient_quota", 503, "The caption provider's account is out of quota."),
    ErrorCode("provider_unavailable", 503, "No caption provider is configured or reachable."),
    ErrorCode("provider_auth_failed", 503, "The provider rejected the configured key."),
    ErrorCode("provider_rate_limited", 429, "The provider is rate limiting; retry shortly."),
    ErrorCode("provider_timeout", 502, "The provider did not answer in time."),
    ErrorCode("provider_unreachable", 502, "The provider could not be reached."),
    ErrorCode("provider_overloaded", 502, "The provider is overloaded."),
    ErrorCode("provider_error", 502, "The provider failed."),
    ErrorCode("malformed_model_reply", 502, "The provider's reply did not fit the caption schema, twice."),
    # the stage
    ErrorCode(
        "not_provisioned",
        503,
        "A store the deploy provisions (Milvus collection, OpenSearch index) does not exist yet: provisioning has "
        "not run in this stage (docs/deploying.md, Provisioning). Retry once it has.",
    ),
    # anything
    ErrorCode("internal_error", 500, "Our fault: logged with its stack, nothing internal echoed."),
)
# API Gateway's own refusals (gateway_responses.py); DEFAULT_4XX/5XX keep API Gateway's status
_GATEWAY = tuple(
    ErrorCode(r.code, r.status or (400 if r.response_type == "DEFAULT_4XX" else 500), r.message or r.response_type)
    for r in GATEWAY_RESPONSES
    if r.code != "route_not_found"
)
_CODES = (*_OURS, *_GATEWAY)

CODES: dict[str, ErrorCode] = {}
for _entry in _CODES:
    CODES.setdefault(_entry.code, _entry)  # `rate_limited` is both ours and API Gateway's: one status

# Groups the routes are declared with (functions/routes.py).
GATEWAY = (
    *tuple(r.code for r in GATEWAY_RESPONSES if r.code != "route_not_found"),
    "not_provisioned",
    "internal_error",
)
IDEMPOTENCY = ("invalid_idempotency_key", "idempotency_key_reused", "idempotency_in_progress")
# A route with a body refuses query parameters it does not declare (api/resolver.py), as it refuses
# unknown body fields: `?website=blysk` on a POST would otherwise leave the default storefront in force.
JSON_BODY = ("invalid_request", "malformed_json", "malformed_body", "unsupported_content_type", "unknown_parameter")
MULTIPART_BODY = (
    "invalid_request",
    "malformed_multipart",
    "malformed_body",
    "unsupported_content_type",
    "unknown_parameter",
)
IMAGE = (
    "empty_file",
    "not_an_image",
    "corrupt_image",
    "unsupported_image_format",
    "decompression_bomb",
    "file_too_large",
    "filename_too_long",
    "invalid_filename",
    "image_too_small",
    "blank_image",
    "upload_in_progress",
    "storefront_forbidden",
    "scope_forbidden",
    "embedding_failed",
    "embedding_rejected",
    "embedding_shape_mismatch",
    "embedding_unavailable",
)
CAPTION_PROVIDER = (
    "content_policy_refusal",
    "insufficient_quota",
    "provider_unavailable",
    "provider_auth_failed",
    "provider_rate_limited",
    "provider_timeout",
    "provider_unreachable",
    "provider_overloaded",
    "provider_error",
    "malformed_model_reply",
)


def by_status(codes: tuple[str, ...]) -> dict[int, list[str]]:
    """Codes grouped by HTTP status, each group in declaration order."""
    grouped: dict[int, list[str]] = {}
    for code in dict.fromkeys(codes):
        grouped.setdefault(CODES[code].status, []).append(code)
    return dict(sorted(grouped.items()))
