"""docs/api-reference.md is generated from the OpenAPI document and examples recorded from a local
stack (local/api_reference.py): the page is current, every operation has a recorded request and
answer, and each example is valid against the document's own schemas."""

from __future__ import annotations

from functools import cache
from typing import Any

import jsonschema
import pytest

from functions.openapi import document
from local import api_reference


@cache
def doc() -> dict[str, Any]:
    return document()


def operations() -> list[tuple[str, str]]:
    return [(method.upper(), path) for path, ops in doc()["paths"].items() for method in ops]


def exchanges_of(method: str, path: str) -> list[dict[str, Any]]:
    return [e for e in api_reference.recorded() if api_reference.operation_of(e) == f"{method} {path}"]


def valid(instance: Any, schema: dict[str, Any]) -> None:
    jsonschema.validate(instance, {**schema, "components": doc()["components"]})


def test_the_page_is_current() -> None:
    # Given the page as committed
    text = api_reference.PAGE.read_text(encoding="utf-8")
    # When it is rendered again from the document and the recording
    fresh = api_reference.page_with_reference(text, doc(), api_reference.recorded())
    # Then nothing changed (else: python -m local.api_reference --write-readme, or --record for a new route)
    assert fresh == text


@pytest.mark.parametrize(("method", "path"), operations())
def test_every_operation_has_a_recorded_example_valid_against_its_schema(method: str, path: str) -> None:
    # Given the operation and what the recording sent it and got back
    operation = doc()["paths"][path][method.lower()]
    found = exchanges_of(method, path)
    # Then there is at least one exchange (else: add the call to _calls() and --record)
    assert found, f"{method} {path} has no recorded example"
    for exchange in found:
        request, response = exchange["request"], exchange["response"]
        # And its answer's status is one the document declares
        assert str(response["status"]) in operation["responses"], (method, path, response["status"])
        # And the request's parameters, body and form fit the operation's schemas
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "query" and parameter["name"] in request["query"]:
                value = request["query"][parameter["name"]]
                schema = parameter.get("schema", {})
                if schema.get("type") == "integer" or "integer" in str(schema.get("anyOf", "")):
                    value = int(value)
                valid(value, schema)
        content = operation.get("requestBody", {}).get("content", {})
        if "json" in request:
            valid(request["json"], content["application/json"]["schema"])
        if "form" in request:
            valid(request["form"], content["multipart/form-data"]["schema"])
        # And a JSON answer of a success fits the declared answer schema
        declared = operation["responses"][str(response["status"])].get("content", {}).get("application/json")
        if response["body"] is not None and declared and str(response["status"]).startswith("2"):
            valid(response["body"], declared["schema"])
