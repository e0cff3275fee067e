"""The console's sign-in (console/auth.js) clicked through in headless Chromium: where config.json names
a Cognito sign-in, "Sign in" goes to the hosted UI with an authorization code request and a PKCE
challenge, the code it sends back is exchanged (with the verifier) at the token endpoint, and the ID
token is sent to the API as `Authorization: Bearer`, which the authorizer checks as on AWS. The hosted UI
and token endpoint are a loopback double (doubles/hosted_ui.py: moto has no hosted UI) handing out
real tokens of moto's user pool; the API side is the real authorizer behind the local gateway."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import boto3
import pytest
import requests
from playwright.sync_api import Page, expect

from doubles.hosted_ui import HostedUi
from local.stack import LocalStack
from tests.integration.test_console import (  # noqa: F401 - fixtures
    accessible,
    axe,
    browser,
    console,
    screenshot,
)
from tests.integration.test_generation import earring_photo
from tests.integration.test_user_tokens import REGION, _new_pool, _person, _sign_in, user_pool_gateway


@dataclass
class SignIn:
    url: str  # the gateway serving the console with a sign-in in its config.json
    ui: HostedUi
    id_token: str  # bea's (group blysk)


@pytest.fixture(scope="module")
def signed(local_stack: LocalStack) -> Iterator[SignIn]:
    cognito = boto3.client("cognito-idp", endpoint_url=local_stack.moto_url, region_name=REGION)
    pool_id, client_id = _new_pool(cognito, "console-people")
    cognito.create_group(UserPoolId=pool_id, GroupName="blysk")
    _person(cognito, pool_id, "bea", ("blysk",))
    tokens = _sign_in(cognito, pool_id, client_id, "bea")
    ui = HostedUi(
        client_id,
        {
            "id_token": tokens["IdToken"],
            "access_token": tokens["AccessToken"],
            "expires_in": 3600,
            "token_type": "Bearer",
        },
    ).start()
    config = {"signIn": {"domain": ui.url, "clientId": client_id}}
    with user_pool_gateway(local_stack, pool_id, client_id, console_config=config) as url:
        yield SignIn(url, ui, tokens["IdToken"])
    ui.stop()


def test_a_person_signs_in_with_code_and_pkce_and_reaches_their_storefront_only(
    console: Callable[..., Page],  # noqa: F811 - the fixture
    signed: SignIn,
    axe: str,  # noqa: F811 - the fixture
) -> None:
    stored = requests.post(
        f"{signed.url}/image_similarity_search",
        headers={"Authorization": f"Bearer {signed.id_token}"},
        files={"file": ("piece.jpg", earring_photo(903), "image/jpeg")},
        data={"check_duplicate": "no", "website": "blysk"},
        timeout=30,
    )
    assert stored.status_code == 200, stored.text
    # Given the console whose config.json names a sign-in, opened by a person not signed in
    page = console(url=signed.url)
    expect(page.locator("#auth-status")).to_have_text("Not signed in")
    # When they sign in (the hosted UI signs them in at once and sends them back with a code)
    page.get_by_role("button", name="Sign in").click()
    # Then the page exchanges the code and says who is signed in, with the code gone from the address
    expect(page.locator("#auth-status")).to_have_text("Signed in: bea")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    assert "code=" not in page.url and page.url.endswith("/console/")
    # And the hosted UI was asked for a code with an S256 challenge, and the token endpoint got the verifier
    (authorize,) = [params for path, params in signed.ui.requests if path == "/oauth2/authorize"]
    (exchange,) = [params for path, params in signed.ui.requests if path == "/oauth2/token"]
    assert authorize["code_challenge_method"] == "S256" and authorize["response_type"] == "code"
    assert exchange["grant_type"] == "authorization_code" and len(exchange["code_verifier"]) >= 43
    assert exchange["redirect_uri"] == authorize["redirect_uri"] == f"{signed.url}/console/"
    # When they open blysk's catalogue (their group), it shows its photos: the API took their token
    page.get_by_label("Storefront", exact=True).select_option("blysk")
    page.get_by_role("tab", name="Catalogue").click()
    page.get_by_role("button", name="Load the first page").click()
    expect(page.locator("#catalogue-grid > li").first).to_be_visible()
    # And alya, no group of theirs, is refused as the API refuses it
    page.get_by_label("Storefront", exact=True).select_option("alya")
    expect(page.get_by_role("alert")).to_contain_text("storefront_forbidden")
    screenshot(page, "signed-in-forbidden")
    accessible(page, axe)
    # And the token is in the tab's session storage only, never in the page
    token = page.evaluate("sessionStorage.getItem('idToken')")
    assert token and token not in page.content()


def test_without_a_sign_in_in_config_the_console_shows_no_sign_in(
    console: Callable[..., Page],  # noqa: F811 - the fixture
) -> None:
    # Given the local stack's console (config.json is empty: keyless, this origin)
    page = console()
    # Then there is nothing to sign in to
    expect(page.get_by_role("button", name="Sign in")).to_be_hidden()
    expect(page.locator("#auth-status")).to_be_hidden()
