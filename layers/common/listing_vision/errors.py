"""Domain errors and the one place that maps them to HTTP.

Every error carries a stable machine-readable `code` (clients branch on it; never rename one)
and a `message` a person understands. `details` holds structured context (which field, what
limit). The HTTP status comes from the error's category via `HTTP_STATUS`, nowhere else.
"""

from __future__ import annotations

from typing import Any

from listing_vision.redaction import redact


class VisionError(Exception):
    """Base of every error the platform reports to a caller."""

    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details or {}

    def to_body(self, request_id: str | None = None) -> dict[str, Any]:
        """The one JSON error shape of every 4xx/5xx answer."""
        error: dict[str, Any] = {"code": self.code, "message": redact(self.message)}
        if self.details:
            error["details"] = self.details
        if request_id:
            error["request_id"] = request_id
        return {"error": error}


class InvalidRequest(VisionError):
    """The request is malformed or a parameter is out of range."""

    code = "invalid_request"


class UnsupportedMedia(VisionError):
    """The uploaded content is not an image type the platform accepts."""

    code = "unsupported_media_type"


class PayloadTooLarge(VisionError):
    """The body or the decoded image exceeds a configured limit."""

    code = "payload_too_large"


class Forbidden(VisionError):
    """The caller's credentials do not cover this (another storefront, a wider search)."""

    code = "forbidden"


class NotFound(VisionError):
    """The addressed resource does not exist."""

    code = "not_found"


class Conflict(VisionError):
    """The request conflicts with the current state (for example, the same upload in flight)."""

    code = "conflict"


class Unprocessable(VisionError):
    """A well-formed request whose content cannot be used (an image too small, or with nothing in it)."""

    code = "unprocessable"


class RateLimited(VisionError):
    """The caller or an upstream provider is over its rate limit; retry later."""

    code = "rate_limited"


class UpstreamError(VisionError):
    """An upstream service (model provider, store) answered wrongly or not at all."""

    code = "upstream_error"


class ProviderUnavailable(VisionError):
    """A needed provider is not configured or out of quota."""

    code = "provider_unavailable"


HTTP_STATUS: dict[type[VisionError], int] = {
    InvalidRequest: 400,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    PayloadTooLarge: 413,
    UnsupportedMedia: 415,
    Unprocessable: 422,
    RateLimited: 429,
    UpstreamError: 502,
    ProviderUnavailable: 503,
}


def http_status(error: VisionError) -> int:
    """HTTP status for an error: its nearest category in `HTTP_STATUS`, else 500."""
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500
