"""The `Prefer` header of POST /generate-images (RFC 7240): how long a submission waits for its job."""

from __future__ import annotations

import pytest

from listing_vision.jewelry.generation import Preference


@pytest.mark.parametrize(
    ("header", "limit_s", "waits_s"),
    [
        (None, 24, 24),  # the original clients: wait as long as allowed
        ("", 24, 24),
        ("respond-async", 24, 0),  # answer at once
        ("RESPOND-ASYNC", 24, 0),
        ("respond-async, wait=10", 24, 10),  # RFC 7240's own example: asynchronous after 10 s
        ("wait=5", 24, 5),
        ("wait=100", 24, 24),  # never past the API's budget
        ("wait=0", 24, 0),
        ('wait="7"', 24, 7),
        ("wait=-3", 24, 24),  # malformed values are ignored, as the RFC asks
        ("wait=1e3", 24, 24),
        ("wait=٣", 24, 24),  # an Arabic-Indic digit is no number here
        ("handling=lenient; foo=bar, return=minimal", 24, 24),  # unknown preferences are ignored
        ("respond-async;x=1", 24, 0),
        (None, -2, 0),  # a function with no time left answers at once
    ],
)
def test_the_prefer_header_sets_the_wait(header: str | None, limit_s: float, waits_s: float) -> None:
    # Given a Prefer header and the longest wait allowed, When it is read, Then the wait is the expected one
    assert Preference.parse(header).wait_for(limit_s) == waits_s


def test_respond_async_is_recognised_among_other_preferences() -> None:
    # Given several preferences, When read, Then respond-async is seen wherever it stands
    assert Preference.parse("return=minimal, respond-async").respond_async
    assert not Preference.parse("wait=3").respond_async
