"""The API's Lambda authorizer: the request's `x-api-key`, looked up by its hash, becomes the
caller the functions check (api/access.py).

An unknown or disabled key is refused with 401, and so is a request carrying two different keys (the
header sent twice: which client is calling? API Gateway would pass the last one, a proxy in front
might keep the first) (API Gateway's `Unauthorized`, which only an
authorizer that raises it can answer; each refusal is counted as `KeysRefused` per function version,
so the alarm on the version's errors can tell a wrong key from a failure); a known one is
allowed on every route of the API (the answer is cached per key, so it cannot be per route), with
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
from listing_vision.observability import count_per_version, logger

KEY_HEADER = "x-api-key"


class Unauthorized(Exception):
    """API Gateway answers 401 when an authorizer raises exactly this message."""

    def __init__(self) -> None:
        super().__init__("Unauthorized")


def authorize(event: APIGatewayAuthorizerRequestEvent, clients: ApiClients | None = None) -> dict[str, Any]:
    headers = {name.lower(): value for name, value in (event.headers or {}).items()}
    key = headers.get(KEY_HEADER, "")
    sent = {
        value.strip(" \t")
        for name, values in (event.raw_event.get("multiValueHeaders") or {}).items()
        if name.lower() == KEY_HEADER
        for value in values or ()
    }
    client = None if len(sent) > 1 else (clients or ApiClients()).find(key)
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
