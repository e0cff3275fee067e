"""People's tokens: a Cognito user pool's JWTs (`Authorization: Bearer <id or access token>`), checked
by the authorizer (api/authorizer.py) beside client keys.

A token is accepted only when its RS256 signature verifies with one of the pool's published keys
(its JWKS, fetched once per container and again when a token names a key not held: the pool may
have rotated; at most once every `JWKS_REFRESH_MIN_S`, since anyone can write a token naming any
key, and a refetch that fails keeps the keys held), it was issued by the pool (`iss`), for the
console's app client (an ID token's `aud`, an access token's `client_id`), it says which it is
(`token_use` `id` or `access`) and it has not expired (`exp`, against the authorizer's clock). Its
groups (`cognito:groups`) are the storefronts the person may use: a group named as a configured
storefront grants that storefront, others grant nothing. Each refusal has a stable reason (logged,
never the token): `malformed`, `unknown_key`, `bad_signature`, `wrong_issuer`, `wrong_client`,
`wrong_token_use`, `expired`.

Verified with joserfc (pinned in constraints.txt; it and `cryptography` are the authorizer's own
layer, `tokens` in layers/layers.json, so no other function carries them).
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from listing_vision.api.clients import PERSON_PREFIX
from listing_vision.config import get_settings
from listing_vision.observability import logger

JWKS_TIMEOUT_S = 3.0
JWKS_REFRESH_MIN_S = 60.0  # a kid not held refetches the pool's keys at most this often
USAGE_KEY_PREFIX = "lv-users-"  # + the app client's id: the API key people's requests are metered on


class InvalidToken(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class UserPool:
    issuer: str  # https://cognito-idp.REGION.amazonaws.com/POOL_ID
    client_id: str
    jwks_url: str

    @classmethod
    def configured(cls) -> UserPool | None:
        """The pool of the settings (USER_POOL_ISSUER, USER_POOL_CLIENT_ID), or None: keys only."""
        settings = get_settings()
        if not settings.user_pool_issuer or not settings.user_pool_client_id:
            return None
        issuer = settings.user_pool_issuer.rstrip("/")
        jwks = settings.user_pool_jwks_url or f"{issuer}/.well-known/jwks.json"
        return cls(issuer, settings.user_pool_client_id, jwks)

    @property
    def usage_key(self) -> str:
        """The API key (usage identifier) people's requests are throttled and metered on: one for all of
        them, named after the app client (not a secret: sent as x-api-key it matches no client)."""
        return USAGE_KEY_PREFIX + self.client_id


_KEY_SETS: dict[str, tuple[KeySet, float]] = {}  # per JWKS URL: its keys, and when they were last fetched


def _fetch(url: str) -> KeySet:
    with urllib.request.urlopen(url, timeout=JWKS_TIMEOUT_S) as answer:
        return KeySet.import_key_set(json.loads(answer.read()))


def _key_set(url: str, kid: str | None, now: float) -> KeySet:
    """The pool's keys: fetched on first use (failing then is the authorizer's failure: no token can be
    checked), fetched again for a kid not held at most once every JWKS_REFRESH_MIN_S (each request
    would otherwise make one fetch, seconds long, for whoever writes tokens naming made-up keys)."""
    held = _KEY_SETS.get(url)
    if held is None:
        _KEY_SETS[url] = (_fetch(url), now)
        return _KEY_SETS[url][0]
    keys, fetched_at = held
    if kid is None or kid in {key.kid for key in keys.keys} or abs(now - fetched_at) < JWKS_REFRESH_MIN_S:
        return keys
    _KEY_SETS[url] = (keys, now)  # this interval's one refetch, whether or not it works
    try:
        keys = _fetch(url)
    except (OSError, ValueError, JoseError) as error:  # the keys held still verify the tokens they signed
        logger.warning("the user pool's keys could not be fetched again", extra={"error": type(error).__name__})
        return keys
    _KEY_SETS[url] = (keys, now)
    return keys


def _kid(token: str) -> str | None:
    try:
        header = jws.extract_compact(token.encode()).headers()
    except (JoseError, ValueError, TypeError):
        raise InvalidToken("malformed") from None
    kid = header.get("kid")
    return kid if isinstance(kid, str) else None


def verify(token: str, pool: UserPool, now: Callable[[], float] = time.time) -> dict[str, Any]:
    """The token's claims, once every check above passed; else InvalidToken with the reason."""
    kid = _kid(token)
    keys = _key_set(pool.jwks_url, kid, now())
    if kid is not None and kid not in {key.kid for key in keys.keys}:
        raise InvalidToken("unknown_key")
    try:
        claims = dict(jwt.decode(token, keys, algorithms=["RS256"]).claims)
    except JoseError as error:
        reason = "bad_signature" if type(error).__name__ == "BadSignatureError" else "malformed"
        raise InvalidToken(reason) from None
    if claims.get("iss") != pool.issuer:
        raise InvalidToken("wrong_issuer")
    use = claims.get("token_use")
    if use not in ("id", "access"):
        raise InvalidToken("wrong_token_use")
    if claims.get("aud" if use == "id" else "client_id") != pool.client_id:
        raise InvalidToken("wrong_client")
    expires = claims.get("exp")
    if not isinstance(expires, int | float) or expires <= now():
        raise InvalidToken("expired")
    return claims


def storefronts_of(claims: dict[str, Any], configured: tuple[str, ...]) -> tuple[str, ...]:
    """The configured storefronts the person's groups name, in configuration order."""
    groups = claims.get("cognito:groups") or []
    return tuple(name for name in configured if isinstance(groups, list) and name in groups)


def person(claims: dict[str, Any]) -> str:
    """Who the person is, as a client id (`user:<username>`, an id no client may take): their own edit
    quota, their own log lines."""
    name = claims.get("cognito:username") or claims.get("username") or claims.get("sub")
    return f"{PERSON_PREFIX}{name}"
