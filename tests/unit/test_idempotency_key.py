"""The `Idempotency-Key` header's format, checked before anything is read or written."""

from __future__ import annotations

import pytest

from listing_vision.api.idempotency import parse_key
from listing_vision.errors import InvalidRequest, http_status


@pytest.mark.parametrize("key", ["a", "8e03978e-40d5-43e8-bc93-6894a57f9324", '"quoted"', "k" * 255, "!~"])
def test_visible_ascii_keys_up_to_255_characters_are_taken_as_they_are(key: str) -> None:
    # Given a key of visible ASCII, When it is parsed, Then it is the key, unchanged
    assert parse_key(key) == key


def test_no_header_is_no_key() -> None:
    assert parse_key(None) is None


@pytest.mark.parametrize("key", ["", "k" * 256, "order 42", " lead", "tab\there", "clé", "ключ", "nul\x00", "del\x7f"])
def test_other_keys_are_refused_with_their_own_code(key: str) -> None:
    # Given a key that is empty, too long, or not visible ASCII, When it is parsed
    with pytest.raises(InvalidRequest) as refused:
        parse_key(key)
    # Then it is a 400 with the stable code, naming the header and not echoing the key
    assert refused.value.code == "invalid_idempotency_key" and http_status(refused.value) == 400
    assert refused.value.details == {"header": "Idempotency-Key", "length": len(key)}
