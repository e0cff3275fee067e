"""Opaque page cursors, checked rather than signed: one shape for every paged route.

A cursor is `base64url(JSON [version, *values]) "." base64url(digest)`, the digest a truncated
SHA-256 over the route's purpose, the scope the page was read in (a storefront, a filter, a
query's fingerprint) and the payload. So a garbled cursor, or one from another route or scope,
is refused with `invalid_cursor` instead of paging somewhere else. It grants nothing (every page
checks the caller against its scope again), which is why a plain digest suffices and no key is
kept. Each route checks the values a cursor carries itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from listing_vision.errors import InvalidRequest


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@dataclass(frozen=True)
class CursorKind:
    """The cursors of one paged route."""

    purpose: bytes  # in the digest, so one route's cursor is no other's
    version: int
    max_chars: int
    answered_by: str  # "listing" / "search": the route's word for what returned the cursor
    scope_name: str  # what a cursor is bound to, for the refusal ("storefront", "query")

    def _digest(self, scope: bytes, payload: bytes) -> str:
        return _b64(hashlib.sha256(self.purpose + b"\n" + scope + b"\n" + payload).digest()[:16])

    def seal(self, scope: bytes, *values: Any) -> str:
        payload = json.dumps([self.version, *values], separators=(",", ":")).encode()
        return f"{_b64(payload)}.{self._digest(scope, payload)}"

    def refuse(self, reason: str, **details: Any) -> InvalidRequest:
        return InvalidRequest(
            f"The cursor is not one this {self.answered_by} returned ({reason}): start again without it.",
            code="invalid_cursor",
            details={"reason": reason, **details},
        )

    def unseal(self, cursor: str, scope: bytes, arity: int) -> list[Any]:
        """The `arity` values a cursor of `seal(scope, ...)` carries, unchecked; refuses one that is
        garbled, altered, of another version, or made for another scope."""
        if len(cursor) > self.max_chars or not cursor.isascii() or cursor.count(".") != 1:
            raise self.refuse("malformed")
        encoded, digest = cursor.split(".")
        try:
            payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except (binascii.Error, ValueError):
            raise self.refuse("malformed") from None
        if not hmac.compare_digest(digest, self._digest(scope, payload)):
            raise self.refuse(f"altered, or made for another {self.scope_name}")
        try:
            decoded = json.loads(payload)
        except ValueError:
            raise self.refuse("malformed") from None
        if not isinstance(decoded, list) or len(decoded) != arity + 1 or type(decoded[0]) is not int:
            raise self.refuse("malformed")
        if decoded[0] != self.version:
            raise self.refuse("malformed")
        return decoded[1:]
