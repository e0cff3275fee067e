"""Structured replies from a model: validated, repaired once, never passed through unvalidated."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pydantic import ValidationError

from listing_vision.errors import UpstreamError

T = TypeVar("T")


def with_one_repair(call: Callable[[str | None], T], provider: str) -> T:
    """Run `call(None)`; when the reply does not validate, run `call(problem)` once (the model is
    told what was wrong); a second bad reply is a 502 `malformed_model_reply`."""
    try:
        return call(None)
    except (ValidationError, ValueError) as first:
        problem = str(first).splitlines()[0] if str(first) else type(first).__name__
    try:
        return call(problem)
    except (ValidationError, ValueError) as second:
        raise UpstreamError(
            f"{provider} twice replied with content that does not match the schema.",
            code="malformed_model_reply",
            details={"provider": provider, "problem": str(second).splitlines()[0][:300]},
        ) from second
