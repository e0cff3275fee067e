"""CORS for the console's origins only, from the one declaration (listing_vision.api.console_policy) the
deployed API is built from (tests/infra/test_console_infra.py): the local gateway answers a preflight
(OPTIONS) of any route, and its own refusals carry the CORS headers, for an allowed origin only; the
functions' own answers carry them through Powertools' CORS, from the same CONSOLE_ORIGINS."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
import requests

from functions.routes import Route
from listing_vision.api.console_policy import ALLOW_HEADERS
from listing_vision.api.resolver import create_resolver
from listing_vision.config import get_settings
from local.gateway import build_event
from local.stack import LocalStack

CONSOLE = "https://console.example.net"
OTHER = "https://evil.example.com"


@pytest.fixture(scope="module")
def gateway(local_stack: LocalStack) -> Iterator[str]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CONSOLE_ORIGINS", json.dumps([CONSOLE]))
        env.setenv("API_AUTH", "api_keys")
        get_settings.cache_clear()
        server = local_stack.api_gateway(auth=True).serve("127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield f"http://127.0.0.1:{server.server_address[1]}"
        server.shutdown()
        server.server_close()
    get_settings.cache_clear()


def preflight(url: str, path: str, origin: str) -> requests.Response:
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    return requests.options(f"{url}{path}", headers=headers, timeout=30)


def test_a_preflight_from_the_console_is_answered_without_credentials(gateway: str) -> None:
    # Given the console's origin, when its browser asks whether it may POST /uploads with a token
    answer = preflight(gateway, "/uploads", CONSOLE)
    # Then the gateway answers it itself (no key or token asked), naming that origin, the methods and headers
    assert answer.status_code == 204, answer.text
    assert answer.headers["Access-Control-Allow-Origin"] == CONSOLE
    assert "POST" in answer.headers["Access-Control-Allow-Methods"].split(",")
    assert set(answer.headers["Access-Control-Allow-Headers"].split(",")) == set(ALLOW_HEADERS)
    assert {"Authorization", "Content-Type"} <= set(ALLOW_HEADERS)
    assert "Origin" in answer.headers["Vary"]
    # And a route with a path parameter is answered too
    assert preflight(gateway, f"/jobs/{'0' * 32}", CONSOLE).headers["Access-Control-Allow-Origin"] == CONSOLE


def test_another_origin_gets_no_cors_headers(gateway: str) -> None:
    # Given an origin that is not the console's
    answer = preflight(gateway, "/uploads", OTHER)
    refused = requests.post(f"{gateway}/uploads", headers={"Origin": OTHER}, json={}, timeout=30)
    # Then neither its preflight nor a refusal names any origin or grants anything: its browser keeps them
    for response in (answer, refused):
        assert not [name for name in response.headers if name.lower().startswith("access-control-")], response.headers
    assert refused.status_code == 401


def test_the_gateways_refusals_carry_cors_for_the_console(gateway: str) -> None:
    # Given a request from the console with no credentials, and one to no route
    refused = requests.post(f"{gateway}/uploads", headers={"Origin": CONSOLE}, json={}, timeout=30)
    missing = requests.get(f"{gateway}/nowhere", headers={"Origin": CONSOLE, "x-api-key": "lvk_x"}, timeout=30)
    # Then the page can read why: each answer names the console's origin
    assert (refused.status_code, refused.json()["error"]["code"]) == (401, "unauthorized")
    assert missing.status_code == 404
    for response in (refused, missing):
        assert response.headers["Access-Control-Allow-Origin"] == CONSOLE
    # And OPTIONS on a path no route has is still no route
    assert preflight(gateway, "/nowhere", CONSOLE).status_code == 404


def test_a_functions_answer_carries_cors_for_the_console_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an API function's resolver made with the console's origin configured (as on AWS)
    monkeypatch.setenv("CONSOLE_ORIGINS", json.dumps([CONSOLE]))
    get_settings.cache_clear()
    app = create_resolver()
    get_settings.cache_clear()

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"ok": "yes"}

    route = Route("ping", "GET", "/ping")

    def answer(origin: str) -> dict[str, str]:
        event = build_event(route, "/ping", {}, "GET", [("Origin", origin)], "", b"", "127.0.0.1")
        return dict(app.resolve(event, None).get("multiValueHeaders") or {})

    # When the console and another origin call it
    console, other = answer(CONSOLE), answer(OTHER)
    # Then only the console's answer names its origin
    assert console["Access-Control-Allow-Origin"] == [CONSOLE]
    assert "Access-Control-Allow-Origin" not in other
