"""The OpenAPI document: generated from the handlers and the route declarations, served by the local
gateway (with a Swagger UI), and true: schemathesis sends generated requests to every operation
through the gateway (bounded and deterministic) and no answer is a 5xx or strays from the document
(status codes, error shape and codes, content types)."""

from __future__ import annotations

from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from functions.openapi import document
from functions.routes import ROUTES
from local.stack import LocalStack

MAX_EXAMPLES = 12  # per operation; with derandomize the same requests every run


def test_the_document_has_every_route_with_its_declared_errors(local_stack: LocalStack) -> None:
    # Given the document the gateway serves
    served = requests.get(f"{local_stack.url}/openapi.json", timeout=30)
    assert served.status_code == 200 and served.headers["Content-Type"] == "application/json"
    doc = served.json()
    # Then it is the generated one, with every route and, for each, one response per declared error status
    assert doc == document()
    for route in ROUTES:
        operation = doc["paths"][route.path][route.method.lower()]
        for code in route.errors:
            enums = [
                r["content"]["application/json"]["schema"]["allOf"][1]["properties"]["error"]["properties"]["code"]
                for status, r in operation["responses"].items()
                if status[0] in "45"
            ]
            assert any(code in e["enum"] for e in enums), (route.path, code)
    # And the Swagger UI page loads it without any CDN
    page = requests.get(f"{local_stack.url}/swagger", timeout=30)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "SwaggerUIBundle" in page.text and '"/jobs/{job_id}"' in page.text


schema = schemathesis.openapi.from_dict(document())  # the generated document: no server needed to collect


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_the_api_keeps_to_its_document(case: Any, local_stack: LocalStack) -> None:
    # Given a request generated from the document, When it is sent through the gateway
    # Then no answer is a server error, and every answer is one the document declares
    case.call_and_validate(
        base_url=local_stack.url,
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
        timeout=60,
    )
