"""The table of error codes per route (docs/error-codes.md) is generated from the route declarations, as the
OpenAPI document is; every declared code has one status, the one the domain errors map it to."""

from __future__ import annotations

from functions.openapi import main, readme_table
from functions.routes import ROUTES
from listing_vision.api.error_codes import CODES


def test_the_docs_table_of_route_errors_is_current() -> None:
    # Given docs/error-codes.md, When its table is checked against the declarations, Then it is current
    assert main(["--check-readme"]) == 0, "run: python -m functions.openapi --write-readme"
    # And it names every route
    assert all(f"`{route.method} {route.path}`" in readme_table() for route in ROUTES)


def test_every_code_a_route_declares_is_known() -> None:
    # Given every route's declared codes, Then each is in the one table of codes
    assert {code for route in ROUTES for code in route.errors} <= set(CODES)
