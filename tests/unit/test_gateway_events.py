"""The local gateway builds the API Gateway REST proxy event the deployed API would send."""

from __future__ import annotations

import base64

import pytest

from functions.routes import ROUTES, Route
from local.gateway import Gateway, build_event, is_binary

MULTIPART = (
    b'--B\r\nContent-Disposition: form-data; name="file"; filename="ring.jpg"\r\n'
    b"Content-Type: image/jpeg\r\n\r\n\xff\xd8\xff\x00\x01binary\r\n--B--\r\n"
)


def test_multipart_bodies_are_base64_encoded_byte_for_byte() -> None:
    route = Route("dedupe", "POST", "/image_similarity_search")
    event = build_event(
        route, route.path, {}, "POST", [("Content-Type", "multipart/form-data; boundary=B")], "", MULTIPART, "127.0.0.1"
    )
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == MULTIPART
    assert event["resource"] == "/image_similarity_search"
    assert event["requestContext"]["resourcePath"] == "/image_similarity_search"


def test_json_bodies_pass_as_text_with_path_and_query_parameters() -> None:
    route = Route("generate", "GET", "/jobs/{job_id}")
    event = build_event(
        route,
        "/jobs/j-1",
        {"job_id": "j-1"},
        "GET",
        [("Accept", "a"), ("X-Tag", "1"), ("X-Tag", "2")],
        "wait=1&wait=2&q=",
        b"",
        "10.0.0.1",
    )
    assert event["pathParameters"] == {"job_id": "j-1"}
    assert event["resource"] == "/jobs/{job_id}" and event["path"] == "/jobs/j-1"
    assert event["headers"]["X-Tag"] == "2" and event["multiValueHeaders"]["X-Tag"] == ["1", "2"]
    assert event["queryStringParameters"] == {"wait": "2", "q": ""}
    assert event["multiValueQueryStringParameters"]["wait"] == ["1", "2"]
    assert event["body"] is None and event["isBase64Encoded"] is False
    assert event["requestContext"]["identity"]["sourceIp"] == "10.0.0.1"


@pytest.mark.parametrize(
    ("content_type", "binary"),
    [
        ("multipart/form-data; boundary=x", True),
        ("image/png", True),
        ("application/octet-stream", True),
        ("application/json", False),
        ("text/plain; charset=utf-8", False),
    ],
)
def test_binary_media_types(content_type: str, binary: bool) -> None:
    assert is_binary(content_type) is binary


def test_routes_match_methods_and_path_parameters() -> None:
    gateway = Gateway(call=lambda name, event: {})
    route, params = gateway.match("GET", "/jobs/abc-123") or (None, None)
    assert route == Route("generate", "GET", "/jobs/{job_id}") and params == {"job_id": "abc-123"}
    assert gateway.match("GET", "/jobs/a/b") is None
    assert gateway.match("GET", "/nowhere") is None
    assert gateway.match("GET", "/image_similarity_search") is None  # a method the route lacks: no route
    assert {r.path for r in ROUTES} >= {"/image_similarity_search", "/generate_caption", "/generate-images"}
