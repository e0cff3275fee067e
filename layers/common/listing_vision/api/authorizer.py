"""The API's Lambda authorizer: the request's `x-api-key`, looked up by its hash, or a person's
user-pool token (`Authorization: Bearer`, api/user_tokens.py), becomes the caller the functions check
(api/access.py). A person is a caller like a client: their groups are their storefronts (a person in
no storefront's group is denied, 403), they never search across all, and their requests are metered
on the people's usage key. An invalid token is a 401 as an unknown key is, its reason logged.

An unknown or disabled key is refused with 401, and so is a request carrying two different keys or two
different tokens (the header sent twice: who is calling? API Gateway would pass the last one, a proxy
in front might keep the first) (API Gateway's `Unauthorized`, which only an
authorizer that raises it can answer; each refusal is counted as `KeysRefused` per function version,
so the alarm on the version's errors can tell a wrong key from a failure); a known one is
allowed on every route of the API (the functions check its storefronts per request), with
the client's id, storefronts and search right as context, and the key as the usage identifier so
API Gateway meters it against the client's usage plan.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
    APIGatewayAuthorizerResponse,
)

from listing_vision.api.clients import ApiClients
from listing_vision.config import get_settings
from listing_vision.observability import count_per_version, logger

KEY_HEADER = "x-api-key"
TOKEN_HEADER = "authorization"  # a person's `Bearer <token>` (api/user_tokens.py)


class Unauthorized(Exception):
    """API Gateway answers 401 when an authorizer raises exactly this message."""

    def __init__(self) -> None:
        super().__init__("Unauthorized")


def authorize(event: APIGatewayAuthorizerRequestEvent, clients: ApiClients | None = None) -> dict[str, Any]:
    headers = {name.lower(): value for name, value in (event.headers or {}).items()}
    if len(_sent(event, KEY_HEADER)) > 1 or len(_sent(event, TOKEN_HEADER)) > 1:
        # two keys, or two tokens (which one API Gateway passes is not what a proxy in front may have acted on)
        logger.info("request refused: two different credentials of one kind")
        count_per_version("KeysRefused")
        raise Unauthorized()
    key = headers.get(KEY_HEADER, "")
    if not key and headers.get(TOKEN_HEADER):
        return _authorize_person(event, headers[TOKEN_HEADER])
    client = (clients or ApiClients()).find(key)
    if client is None:
        logger.info("request refused: unknown or disabled key")  # never the key itself
        count_per_version("KeysRefused")  # not an error: its errors alarm subtracts these (infra monitoring)
        raise Unauthorized()
    response = APIGatewayAuthorizerResponse.from_route_arn(
        event.method_arn,
        principal_id=client.client_id,
        context={
            "client_id": client.client_id,
            "storefronts": ",".join(client.storefronts),
            "search_all": client.search_all,
        },
        usage_identifier_key=key,
    )
    response.allow_all_routes()
    return response.asdict()


def _sent(event: APIGatewayAuthorizerRequestEvent, header: str) -> set[str]:
    """The different values the request carries in `header` (any case of its name, each line of it)."""
    return {
        value.strip(" \t")
        for name, values in (event.raw_event.get("multiValueHeaders") or {}).items()
        if name.lower() == header
        for value in values or ()
    }


def _authorize_person(event: APIGatewayAuthorizerRequestEvent, authorization: str) -> dict[str, Any]:
    """A person signed in to the user pool: allowed with the storefronts their groups name (none: denied, 403)."""
    # joserfc and cryptography load on a person's first request only: a key's requests never need them
    from listing_vision.api.user_tokens import InvalidToken, UserPool, person, storefronts_of, verify

    scheme, _, token = authorization.strip().partition(" ")
    pool = UserPool.configured()
    try:
        if scheme.lower() != "bearer" or not token.strip() or pool is None:
            raise InvalidToken("not_a_bearer_token" if pool else "no_user_pool")
        claims = verify(token.strip(), pool)
    except InvalidToken as refused:
        logger.info("request refused: invalid token", extra={"reason": refused.reason})  # never the token itself
        count_per_version("KeysRefused")
        raise Unauthorized() from None
    storefronts = storefronts_of(claims, get_settings().storefront_names)
    response = APIGatewayAuthorizerResponse.from_route_arn(
        event.method_arn,
        principal_id=person(claims),
        context={"client_id": person(claims), "storefronts": ",".join(storefronts), "search_all": False},
        usage_identifier_key=pool.usage_key,
    )
    if storefronts:
        response.allow_all_routes()
    else:  # signed in, but in no storefront's group: 403 on every route
        logger.info("request refused: the person is in no storefront's group")
        response.deny_all_routes()
    return response.asdict()
