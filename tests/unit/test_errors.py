from __future__ import annotations

import pytest

from listing_vision import errors
from listing_vision.errors import VisionError, http_status


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (errors.InvalidRequest("bad"), 400, "invalid_request"),
        (errors.NotFound("none"), 404, "not_found"),
        (errors.Conflict("busy"), 409, "conflict"),
        (errors.PayloadTooLarge("big"), 413, "payload_too_large"),
        (errors.UnsupportedMedia("gif"), 415, "unsupported_media_type"),
        (errors.RateLimited("slow down"), 429, "rate_limited"),
        (errors.UpstreamError("bad reply"), 502, "upstream_error"),
        (errors.ProviderUnavailable("no key"), 503, "provider_unavailable"),
        (VisionError("boom"), 500, "internal_error"),
    ],
)
def test_each_category_has_one_status_and_a_stable_code(error: VisionError, status: int, code: str) -> None:
    assert http_status(error) == status
    assert error.code == code


def test_a_specific_code_keeps_its_category_status() -> None:
    # Given an error with its own code inside a category
    error = errors.InvalidRequest("Unknown website 'etsy'.", code="invalid_website", details={"website": "etsy"})
    # Then the code is the specific one and the status the category's
    assert http_status(error) == 400
    assert error.to_body("req-1") == {
        "error": {
            "code": "invalid_website",
            "message": "Unknown website 'etsy'.",
            "details": {"website": "etsy"},
            "request_id": "req-1",
        }
    }


def test_subclasses_inherit_their_category() -> None:
    class QuotaExhausted(errors.ProviderUnavailable):
        code = "insufficient_quota"

    assert http_status(QuotaExhausted("out of credit")) == 503
    assert QuotaExhausted("x").to_body() == {"error": {"code": "insufficient_quota", "message": "x"}}
