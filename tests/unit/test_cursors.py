"""The one cursor shape every paged route uses (api/cursors.py): a cursor goes back to the route
and scope that made it, and anything else is refused with `invalid_cursor`, never a 500."""

from __future__ import annotations

import base64
import json

import pytest

from listing_vision.api.cursors import CursorKind
from listing_vision.errors import InvalidRequest

PAGES = CursorKind(b"pages-cursor", 1, 200, "listing", "storefront")


def refusal(kind: CursorKind, cursor: str, scope: bytes = b"alya", arity: int = 1) -> str:
    with pytest.raises(InvalidRequest) as refused:
        kind.unseal(cursor, scope, arity)
    assert refused.value.code == "invalid_cursor"
    return str(refused.value.details["reason"])


def forged(payload: object, kind: CursorKind = PAGES, scope: bytes = b"alya") -> str:
    """A cursor with a right digest over any payload (the digest is a check, not a secret)."""
    raw = json.dumps(payload).encode()
    return f"{base64.urlsafe_b64encode(raw).decode().rstrip('=')}.{kind._digest(scope, raw)}"


def test_a_cursor_returns_its_values_to_its_own_route_and_scope_only() -> None:
    # Given a cursor of one route made in alya's scope
    cursor = PAGES.seal(b"alya", "after-this", 7)
    # Then it gives back what it carries, there
    assert PAGES.unseal(cursor, b"alya", arity=2) == ["after-this", 7]
    # And another scope, or another route with the same scope, refuses it as altered
    assert refusal(PAGES, cursor, b"blysk", arity=2) == "altered, or made for another storefront"
    other_route = CursorKind(b"other-cursor", 1, 200, "search", "query")
    assert refusal(other_route, cursor, arity=2) == "altered, or made for another query"


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "no-dot",
        "a.b.c",
        "é.x",
        "A" * 201,
        "!!!.x",
        forged("not a list"),
        forged([1]),  # no values
        forged([1, "a", "b"]),  # more than the route's
        forged([2, "a"]),  # another version
        forged([True, "a"]),  # a bool is no version, though True == 1
        forged({"1": "a"}),
        "e30.x",  # `{}` with a wrong digest
    ],
)
def test_garbled_cursors_are_refused(cursor: str) -> None:
    # Given a cursor no route made (or one with a right digest over a wrong shape), When it is read,
    # Then it is refused as a cursor the listing never returned
    assert refusal(PAGES, cursor) in ("malformed", "altered, or made for another storefront")


def test_the_refusal_names_the_route_and_its_details() -> None:
    # Given a search route's cursors, When one is refused, Then the message says which route returned it
    search = CursorKind(b"search-cursor", 2, 400, "search", "query")
    with pytest.raises(InvalidRequest) as refused:
        search.unseal("x", b"q", arity=1)
    assert "not one this search returned (malformed)" in str(refused.value)
