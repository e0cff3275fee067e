"""POST /generate-images with a malformed `s3_urls`: a 400 `invalid_request` naming the field and
what the client sent, in its own terms (never pydantic's union members such as `constrained-str`),
and nothing written."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from local.stack import LocalStack
from tests.stores import changed, fingerprint


@pytest.mark.parametrize(
    ("s3_urls", "said"),
    [
        (5, "s3_urls is a number"),
        (None, "s3_urls is null"),
        ({"url": "s3://blyskimg/a.jpg"}, "s3_urls is an object"),
        ([], "s3_urls is an empty list"),
        (["s3://blyskimg/a.jpg", 7], "s3_urls[1] is a number"),
        ("s3://blyskimg/" + "a" * 2100, "s3_urls is 2114 characters long"),
    ],
)
def test_a_malformed_s3_urls_is_named_in_the_clients_terms(local_stack: LocalStack, s3_urls: Any, said: str) -> None:
    # Given the stores as they are
    before = fingerprint()
    # When a client sends a malformed s3_urls
    answer = requests.post(
        f"{local_stack.url}/generate-images",
        json={"s3_urls": s3_urls, "product_type": "ring", "image_types": [1]},
        timeout=30,
    )
    # Then it is a 400 invalid_request naming s3_urls and what was wrong with it, in the client's terms
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_request"
    (field,) = error["details"]["fields"]
    assert field["field"] == "s3_urls" and field["problem"].startswith(said), field
    assert "constrained" not in answer.text and "list[" not in answer.text
    # And nothing was written
    assert changed(before, fingerprint()) == []
