"""Domain errors and the one place that maps them to HTTP.

Every error carries a stable machine-readable `code` (clients branch on it; never rename one)
and a `message` a person understands. `details` holds structured context (which field, what
limit). The HTTP status comes from the error's category via `HTTP_STATUS`, nowhere else.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from listing_vision.redaction import redact

T = TypeVar("T", bound=type)


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


class NotProvisioned(VisionError):
    """A store the deploy provisions (the Milvus collection, the OpenSearch index) does not exist yet:
    provisioning has not run in this stage (listing_vision/provisioning.py). Retry once it has."""

    code = "not_provisioned"


class ModelMismatch(NotProvisioned):
    """The embedding model (its bytes or preprocessing) differs from the model whose vectors the
    Milvus collection holds: searching or writing would mix incomparable vectors. The way out is a
    backfill into a new collection, then switching to it (README "Changing the model")."""

    code = "model_mismatch"


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
    NotProvisioned: 503,
}


def http_status(error: VisionError) -> int:
    """HTTP status for an error: its nearest category in `HTTP_STATUS`, else 500."""
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500


def missing_store_as_not_provisioned(is_missing: Callable[[BaseException], bool], store: str) -> Callable[[T], T]:
    """Class decorator for a store's data-access object: every public method (generators included)
    raises `NotProvisioned` where the store's own error says the collection or index does not exist
    (`is_missing`), so callers see one domain error instead of a client library's exception."""

    def translate(error: BaseException, owner: Any) -> NotProvisioned:
        name = getattr(owner, "collection", None) or getattr(owner, "name", "")
        return NotProvisioned(
            f"The {store} {name!r} does not exist: provisioning has not run in this stage.",
            details={"store": store, "name": name},
        )

    def wrap(method: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.isgeneratorfunction(method):

            @functools.wraps(method)
            def generator(self: Any, *args: Any, **kwargs: Any) -> Any:
                try:
                    yield from method(self, *args, **kwargs)
                except Exception as error:
                    if is_missing(error):
                        raise translate(error, self) from error
                    raise

            return generator

        @functools.wraps(method)
        def plain(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except Exception as error:
                if is_missing(error):
                    raise translate(error, self) from error
                raise

        return plain

    def decorate(cls: T) -> T:
        for attribute, value in list(vars(cls).items()):
            if not attribute.startswith("_") and inspect.isfunction(value):
                setattr(cls, attribute, wrap(value))
        return cls

    return decorate
