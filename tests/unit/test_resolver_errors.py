"""Every error leaves a function in the one JSON shape, with a stable code."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from functions.routes import Route
from listing_vision.api import create_resolver
from listing_vision.errors import Conflict
from local.gateway import build_event
from local.lambda_runtime import LocalLambdaContext

app = create_resolver()


@app.get("/conflict")
def conflict() -> dict[str, Any]:
    raise Conflict("The same upload is being processed.", code="upload_in_progress", details={"retry_after_s": 1})


@app.get("/odd-details")
def odd_details() -> dict[str, Any]:
    raise Conflict(
        "Not plain JSON in its details.", code="upload_in_progress", details={"at": Decimal("1.5"), "raw": b"x"}
    )


@app.get("/crash")
def crash() -> dict[str, Any]:
    raise RuntimeError("secret connection string postgres://user:pw@db")


@app.get("/items/<item_id>")
def item(item_id: int) -> dict[str, Any]:
    return {"id": item_id}


def call(method: str, path: str, body: bytes = b"", content_type: str = "application/json") -> tuple[int, dict]:
    event = build_event(
        Route("t", method, path), path, {}, method, [("Content-Type", content_type)], "", body, "1.2.3.4"
    )
    response = app.resolve(event, LocalLambdaContext("t"))
    return response["statusCode"], json.loads(response["body"])


def test_domain_errors_keep_code_details_and_request_id() -> None:
    status, body = call("GET", "/conflict")
    assert status == 409
    assert body["error"]["code"] == "upload_in_progress"
    assert body["error"]["details"] == {"retry_after_s": 1}
    assert body["error"]["request_id"]


def test_details_that_are_not_plain_json_still_answer_the_error() -> None:
    # Given a domain error whose details hold values json cannot write (a Decimal, bytes)
    # When it is answered
    status, body = call("GET", "/odd-details")
    # Then the answer is that error, its details written as text, not a 500 raised while writing it
    assert status == 409 and body["error"]["code"] == "upload_in_progress"
    assert body["error"]["details"] == {"at": "1.5", "raw": "b'x'"}


def test_unexpected_errors_are_500_and_leak_nothing() -> None:
    status, body = call("GET", "/crash")
    assert status == 500
    assert body["error"]["code"] == "internal_error"
    assert "postgres" not in json.dumps(body)


def test_validation_errors_name_the_field() -> None:
    status, body = call("GET", "/items/not-a-number")
    assert status == 400
    assert body["error"]["code"] == "invalid_request"
    assert body["error"]["details"]["fields"][0]["field"] == "item_id"


@pytest.mark.parametrize("path", ["/nowhere", "/items"])
def test_unknown_routes_are_404_route_not_found(path: str) -> None:
    status, body = call("GET", path)
    assert status == 404 and body["error"]["code"] == "route_not_found"
