"""API Gateway's own errors in the platform's one error shape, declared once.

Requests API Gateway refuses before any function runs (no or a wrong API key, throttling, a body
over 10 MB, an unknown route, an unsupported media type) would come back as `{"message": ...}`.
CDK turns each entry into a GatewayResponse whose template answers
`{"error": {"code", "message", "request_id"}}`; the local gateway answers its own refusals from the
same table, so clients branch on the same codes on a laptop and on AWS.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class GatewayResponse:
    response_type: str  # API Gateway's GatewayResponseType
    code: str
    status: int | None  # None keeps API Gateway's own status for the type
    message: str | None = None  # None: API Gateway's own message


GATEWAY_RESPONSES: tuple[GatewayResponse, ...] = (
    GatewayResponse("DEFAULT_4XX", "request_rejected", None),
    GatewayResponse("DEFAULT_5XX", "gateway_error", None),
    GatewayResponse("INVALID_API_KEY", "invalid_api_key", 403, "A valid API key (x-api-key) is required."),
    GatewayResponse(
        "UNAUTHORIZED", "unauthorized", 401, "Credentials are missing or invalid (x-api-key, or Authorization: Bearer)."
    ),
    GatewayResponse("ACCESS_DENIED", "forbidden", 403, "These credentials may not call this route."),
    GatewayResponse("THROTTLED", "rate_limited", 429, "Too many requests; slow down and retry."),
    GatewayResponse("QUOTA_EXCEEDED", "quota_exceeded", 429, "This client's request quota is used up."),
    GatewayResponse("REQUEST_TOO_LARGE", "payload_too_large", 413, "The request body exceeds API Gateway's 10 MB."),
    # API Gateway answers 403 "Missing Authentication Token" for an unknown route or method.
    GatewayResponse("MISSING_AUTHENTICATION_TOKEN", "route_not_found", 404, "No such route."),
    GatewayResponse("UNSUPPORTED_MEDIA_TYPE", "unsupported_media_type", 415, "This content type is not accepted."),
    GatewayResponse("INTEGRATION_TIMEOUT", "gateway_timeout", 504, "The request took longer than 29 s."),
    GatewayResponse("INTEGRATION_FAILURE", "function_error", 502, "The function failed."),
    GatewayResponse("AUTHORIZER_FAILURE", "authorizer_error", 500, "The authorizer failed."),
    GatewayResponse("WAF_FILTERED", "request_blocked", 403, "The request was blocked by the web firewall."),
)

BY_TYPE: dict[str, GatewayResponse] = {response.response_type: response for response in GATEWAY_RESPONSES}


def template(response: GatewayResponse) -> str:
    """The mapping template: the platform's error shape, with API Gateway's own message where none is set."""
    message = json.dumps(response.message) if response.message else "$context.error.messageString"
    return (
        '{"error": {"code": "' + response.code + '", "message": ' + message + ', "request_id": "$context.requestId"}}'
    )


def body(response_type: str, request_id: str, message: str | None = None) -> tuple[int, dict[str, object]]:
    """(status, body) of a refusal, as the deployed API would answer it (the local gateway's)."""
    response = BY_TYPE[response_type]
    status = response.status or (500 if response_type == "DEFAULT_5XX" else 400)
    text = message or response.message or "The request was refused."
    return status, {"error": {"code": response.code, "message": text, "request_id": request_id}}
