"""People signed in to the console's Cognito user pool reach the API with their tokens, under the same
per-storefront rules as client keys (test_access.py): the authorizer checks each token's signature with
the pool's JWKS, its issuer, client, use and expiry (listing_vision.api.user_tokens). The pool is moto's
cognito-idp, which issues real RS256 tokens and serves the pool's keys, as Cognito does; the hosted UI
itself cannot run locally, so people sign in here with admin_initiate_auth."""

from __future__ import annotations

import base64
import http.client
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import requests

from doubles.loopback import LoopbackServer, Reply
from listing_vision.api import user_tokens
from listing_vision.api.user_tokens import InvalidToken, UserPool, verify
from listing_vision.config import get_settings
from local.stack import LocalStack

PASSWORD = "Console-pass-1!"
REGION = "us-east-1"


@dataclass
class Pool:
    url: str  # the gateway running the authorizer
    pool: UserPool
    tokens: dict[str, dict[str, str]]  # person -> IdToken, AccessToken
    other_pool: dict[str, str]  # a token of another pool (same keys: moto signs every pool with one)
    other_client: dict[str, str]  # a token of the same pool for another app client


def _sign_in(cognito: Any, pool_id: str, client_id: str, username: str) -> dict[str, str]:
    answer = cognito.admin_initiate_auth(
        UserPoolId=pool_id,
        ClientId=client_id,
        AuthFlow="ADMIN_NO_SRP_AUTH",
        AuthParameters={"USERNAME": username, "PASSWORD": PASSWORD},
    )
    return dict(answer["AuthenticationResult"])


def _person(cognito: Any, pool_id: str, username: str, groups: tuple[str, ...]) -> None:
    cognito.admin_create_user(UserPoolId=pool_id, Username=username, MessageAction="SUPPRESS")
    cognito.admin_set_user_password(UserPoolId=pool_id, Username=username, Password=PASSWORD, Permanent=True)
    for group in groups:
        cognito.admin_add_user_to_group(UserPoolId=pool_id, Username=username, GroupName=group)


def _new_pool(cognito: Any, name: str) -> tuple[str, str]:
    pool_id = cognito.create_user_pool(PoolName=name)["UserPool"]["Id"]
    client_id = cognito.create_user_pool_client(
        UserPoolId=pool_id, ClientName="console", ExplicitAuthFlows=["ADMIN_NO_SRP_AUTH"]
    )["UserPoolClient"]["ClientId"]
    return pool_id, client_id


@contextmanager
def user_pool_gateway(
    local_stack: LocalStack, pool_id: str, client_id: str, console_config: dict[str, Any] | None = None
) -> Iterator[str]:
    """The local gateway's URL, its authorizer taking the tokens of `pool_id`'s app client `client_id` (the
    settings a deploy with a user pool gives it) and serving the console with `console_config`; the
    settings are undone afterwards."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("API_AUTH", "api_keys")
        env.setenv("USER_POOL_ISSUER", f"https://cognito-idp.{REGION}.amazonaws.com/{pool_id}")
        env.setenv("USER_POOL_CLIENT_ID", client_id)
        env.setenv("USER_POOL_JWKS_URL", f"{local_stack.moto_url}/{pool_id}/.well-known/jwks.json")
        get_settings.cache_clear()
        server = local_stack.api_gateway(auth=True, console_config=console_config).serve("127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def people(local_stack: LocalStack) -> Iterator[Pool]:
    cognito = boto3.client("cognito-idp", endpoint_url=local_stack.moto_url, region_name=REGION)
    pool_id, client_id = _new_pool(cognito, "people")
    for storefront in ("alya", "blysk", "marketing"):  # `marketing` names no storefront: it grants nothing
        cognito.create_group(UserPoolId=pool_id, GroupName=storefront)
    people = {"ann": ("alya",), "ben": ("blysk",), "cy": ("alya", "blysk"), "dee": ("marketing",)}
    for username, groups in people.items():
        _person(cognito, pool_id, username, groups)
    other_client = cognito.create_user_pool_client(
        UserPoolId=pool_id, ClientName="other", ExplicitAuthFlows=["ADMIN_NO_SRP_AUTH"]
    )["UserPoolClient"]["ClientId"]
    other_pool_id, other_pool_client = _new_pool(cognito, "elsewhere")
    cognito.create_group(UserPoolId=other_pool_id, GroupName="alya")
    _person(cognito, other_pool_id, "ann", ("alya",))
    with user_pool_gateway(local_stack, pool_id, client_id) as url:
        pool = UserPool.configured()
        assert pool is not None
        yield Pool(
            url,
            pool,
            {username: _sign_in(cognito, pool_id, client_id, username) for username in people},
            _sign_in(cognito, other_pool_id, other_pool_client, "ann"),
            _sign_in(cognito, pool_id, other_client, "ann"),
        )


def call(people: Pool, method: str, path: str, token: str | None, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, f"{people.url}{path}", headers=headers, timeout=30, **kwargs)


def upload(people: Pool, token: str, website: str) -> tuple[int, str | None]:
    answer = call(people, "POST", "/uploads", token, json={"website": website, "content_type": "image/png"})
    return answer.status_code, (answer.json().get("error") or {}).get("code")


@pytest.mark.parametrize("kind", ["IdToken", "AccessToken"])
def test_a_person_reaches_their_groups_storefronts_only(people: Pool, kind: str) -> None:
    # Given ann (group alya), ben (blysk) and cy (both), signed in
    ann, ben, cy = (people.tokens[name][kind] for name in ("ann", "ben", "cy"))
    # When each asks an upload in alya and in blysk
    # Then each reaches their own storefronts, and the other is 403 storefront_forbidden, as for client keys
    assert upload(people, ann, "alya") == (200, None)
    assert upload(people, ann, "blysk") == (403, "storefront_forbidden")
    assert upload(people, ben, "blysk") == (200, None)
    assert upload(people, ben, "alya") == (403, "storefront_forbidden")
    assert upload(people, cy, "alya") == (200, None) and upload(people, cy, "blysk") == (200, None)
    # And a person never searches across all storefronts
    answer = call(people, "POST", "/image_similarity_search", cy, data={"scope": "all"}, files={"file": ("a", b"x")})
    assert (answer.status_code, answer.json()["error"]["code"]) == (403, "scope_forbidden")
    # And what they may not know exists is answered as missing
    assert call(people, "GET", f"/jobs/{'0' * 32}", ann).json()["error"]["code"] == "job_not_found"


def test_a_person_in_no_storefronts_group_is_forbidden_everywhere(people: Pool) -> None:
    # Given dee, signed in but only in a group that names no storefront
    dee = people.tokens["dee"]["IdToken"]
    # When dee calls any route
    answers = [upload(people, dee, "alya"), upload(people, dee, "blysk")]
    jobs = call(people, "GET", f"/jobs/{'0' * 32}", dee)
    # Then every one is denied by the authorizer's policy: 403 forbidden, before any function
    assert answers == [(403, "forbidden"), (403, "forbidden")]
    assert (jobs.status_code, jobs.json()["error"]["code"]) == (403, "forbidden")


def _tampered(token: str, **claims: Any) -> str:
    header, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body.update(claims)
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    return f"{header}.{forged}.{signature}"


def test_forged_foreign_or_malformed_tokens_are_refused_with_401(people: Pool) -> None:
    # Given tokens that must not pass: ann's with blysk added to her groups (signature no longer matches),
    # ann's from another pool (signed with the same keys: only the issuer differs), ann's for another app
    # client, a token cut short, a JWT-shaped string, and a key-less "Bearer"
    ann = people.tokens["ann"]["IdToken"]
    refused = {
        "tampered": _tampered(ann, **{"cognito:groups": ["alya", "blysk"]}),
        "other pool": people.other_pool["IdToken"],
        "other client": people.other_client["IdToken"],
        "other client (access)": people.other_client["AccessToken"],
        "cut short": ann[:-10],
        "not a JWT": "a.b.c",
        "refresh token": people.tokens["ann"]["RefreshToken"],
    }
    for case, token in refused.items():
        # When each calls a route ann's real token reaches
        answer = call(people, "POST", "/uploads", token, json={"website": "alya", "content_type": "image/png"})
        # Then each is a 401 unauthorized, as a wrong key is
        assert (answer.status_code, answer.json()["error"]["code"]) == (401, "unauthorized"), case
    for header in ("Bearer", "Basic " + base64.b64encode(b"ann:pw").decode(), f"Token {ann}"):
        answer = requests.post(f"{people.url}/uploads", headers={"Authorization": header}, json={}, timeout=30)
        assert (answer.status_code, answer.json()["error"]["code"]) == (401, "unauthorized"), header


def test_each_refusal_has_its_stable_reason(people: Pool) -> None:
    # Given the pool the authorizer trusts, and the tokens above
    ann = people.tokens["ann"]
    expires = json.loads(base64.urlsafe_b64decode(ann["IdToken"].split(".")[1] + "=="))["exp"]
    cases = {
        "bad_signature": (_tampered(ann["IdToken"], **{"cognito:groups": ["blysk"]}), time.time),
        "wrong_issuer": (people.other_pool["IdToken"], time.time),
        "wrong_client": (people.other_client["IdToken"], time.time),
        "malformed": ("not-a-token", time.time),
        # the real token, read by a clock one second past its expiry
        "expired": (ann["IdToken"], lambda: float(expires + 1)),
    }
    for reason, (token, clock) in cases.items():
        # When it is verified
        with pytest.raises(InvalidToken) as refused:
            verify(token, people.pool, now=clock)
        # Then it is refused for that reason
        assert refused.value.reason == reason
    # While the token itself, a second before it expires, passes
    assert verify(ann["IdToken"], people.pool, now=lambda: float(expires - 1))["cognito:groups"] == ["alya"]


JWKS = "/.well-known/jwks.json"


def _kid(token: str, kid: str | None) -> str:
    header, payload, signature = token.split(".")
    fields = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    fields["kid"] = kid
    return f"{base64.urlsafe_b64encode(json.dumps(fields).encode()).decode().rstrip('=')}.{payload}.{signature}"


def test_tokens_naming_unknown_keys_refetch_the_jwks_at_most_once_per_interval(people: Pool) -> None:
    # Given the pool's keys (moto's bytes) served on a loopback port that records the requests for them,
    # read once for ann's real token
    keys = requests.get(people.pool.jwks_url, timeout=30).content
    jwks = LoopbackServer({JWKS: lambda request: Reply(200, keys)}).start()
    pool = UserPool(people.pool.issuer, people.pool.client_id, jwks.url + JWKS)
    ann = people.tokens["ann"]["IdToken"]
    at, interval = time.time(), user_tokens.JWKS_REFRESH_MIN_S
    try:
        assert verify(ann, pool, now=lambda: at)["cognito:groups"] == ["alya"]
        assert len(jwks.calls(JWKS)) == 1
        # When anyone sends many tokens naming keys the pool never published (no key needed to write one)
        reasons = set()
        for n in range(5):
            seconds = at + n
            with pytest.raises(InvalidToken) as refused:
                verify(_kid(ann, f"made-up-{n}"), pool, now=lambda: seconds)  # noqa: B023 - called here
            reasons.add(refused.value.reason)
        # Then each is refused as naming an unknown key, and the keys just fetched are not fetched again
        assert (reasons, len(jwks.calls(JWKS))) == ({"unknown_key"}, 1)
        # And once the interval passed, a key the pool may have rotated in since is looked for, once
        for seconds in (at + interval + 1, at + interval + 2):
            with pytest.raises(InvalidToken):
                verify(_kid(ann, f"made-up-at-{seconds}"), pool, now=lambda: seconds)  # noqa: B023 - called here
        assert len(jwks.calls(JWKS)) == 2
        # And when the keys cannot be fetched then (the next fetch answered 503), an unknown key is still a
        # refusal (401), not a failure, while the keys already held still verify ann's token
        jwks.script(JWKS, Reply(503, b"unavailable"))
        with pytest.raises(InvalidToken) as refused:
            verify(_kid(ann, "made-up-while-down"), pool, now=lambda: at + 2 * interval + 2)
        assert (refused.value.reason, len(jwks.calls(JWKS))) == ("unknown_key", 3)
        assert verify(ann, pool, now=lambda: at + 2 * interval + 3)["cognito:groups"] == ["alya"]
        assert [request.method for request in jwks.calls(JWKS)] == ["GET"] * 3
    finally:
        jwks.stop()


def _raw_upload(people: Pool, headers: list[tuple[str, str]]) -> tuple[int, str | None]:
    """POST /uploads for alya with these header lines, each sent as given (a name may repeat)."""
    body = json.dumps({"website": "alya", "content_type": "image/png"}).encode()
    connection = http.client.HTTPConnection(people.url.removeprefix("http://"), timeout=30)
    try:
        connection.putrequest("POST", "/uploads")
        for name, value in [*headers, ("Content-Type", "application/json"), ("Content-Length", str(len(body)))]:
            connection.putheader(name, value)
        connection.endheaders(body)
        answer = connection.getresponse()
        return answer.status, (json.loads(answer.read()).get("error") or {}).get("code")
    finally:
        connection.close()


def test_two_different_credentials_of_one_kind_are_refused(people: Pool) -> None:
    # Given ann's and ben's real tokens, each of which alone is answered
    ann, ben = people.tokens["ann"]["IdToken"], people.tokens["ben"]["IdToken"]
    assert _raw_upload(people, [("Authorization", f"Bearer {ann}")]) == (200, None)
    # When one request carries both (API Gateway passes the last; a proxy in front may act on the first),
    # or ann's token beside two x-api-key lines, the last one empty (so the token would be read)
    both = [("Authorization", f"Bearer {ben}"), ("Authorization", f"Bearer {ann}")]
    keys = [("x-api-key", "lv-someone-elses-key"), ("x-api-key", "")]
    # Then each is 401, as two different keys are: who is calling is not for the gateway to guess
    assert _raw_upload(people, both) == (401, "unauthorized")
    assert _raw_upload(people, [*keys, ("Authorization", f"Bearer {ann}")]) == (401, "unauthorized")
    # While the same token twice is one credential
    assert _raw_upload(people, [("Authorization", f"Bearer {ann}")] * 2) == (200, None)
