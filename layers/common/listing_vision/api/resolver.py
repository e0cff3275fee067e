"""The Powertools REST resolver every API function uses, with errors mapped in one place.

Every 4xx/5xx leaves here with the shape `{"error": {"code", "message", "details"?, "request_id"?}}`:
domain errors (`listing_vision.errors`) keep their code; request validation becomes
`invalid_request` naming the offending fields; an unknown route `route_not_found`; anything
unexpected `internal_error`, logged with its stack but never echoed to the caller.

Every 5xx answer, whichever way it was made, is counted as `Answered5xx` for the function's running
version (observability.count_per_version): Lambda counts none of them as errors (the function
returned), so this is what rolls back a release whose new version fails its requests
(infra/constructs/monitoring.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import OpenAPIRequestValidationMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from listing_vision.api.access import Caller, caller_from
from listing_vision.api.body import expected_media_type, file_fields, form_fields, parse_body
from listing_vision.api.console_policy import ALLOW_HEADERS, EXPOSE_HEADERS, MAX_AGE_S
from listing_vision.api.query_parameters import check_parameters
from listing_vision.config import get_settings
from listing_vision.errors import InvalidRequest, NotFound, UnsupportedMedia, VisionError, http_status
from listing_vision.observability import count_per_version, logger


def error_response(error: VisionError, request_id: str | None = None) -> Response:
    """The HTTP response for a domain error."""
    return Response(
        status_code=http_status(error),
        content_type=content_types.APPLICATION_JSON,
        # default=str: whatever a message's details hold (a Decimal, a date, an object a check named),
        # the answer is the error it describes, never a 500 raised while writing it.
        body=json.dumps(error.to_body(request_id), default=str),
    )


def _field_errors(errors: Any) -> list[dict[str, str]]:
    # Name the field and the problem; never echo the input (it may be a multi-megabyte upload).
    out = []
    for err in errors:
        loc = [str(part) for part in err.get("loc", ()) if part not in ("body", "query", "path")]
        out.append({"field": ".".join(loc) or "body", "problem": str(err.get("msg") or err.get("type"))})
    return out


class _RequestValidation(OpenAPIRequestValidationMiddleware):
    """Powertools' request validation, reading the body with the one body parser (api/body.py)
    instead of its own (which lets a missing multipart boundary, a non-UTF-8 part or deeply nested
    JSON escape as a 500, and takes multipart on a JSON route)."""

    def _get_body(self, app: Any) -> Any:
        event = app.current_event
        dependant = app.context["_route"].dependant
        # A query parameter the route does not declare is refused before its body is read: on a route
        # with a body (the only ones that come here) a misspelt or misplaced `website` would be ignored.
        check_parameters(
            event.multi_value_query_string_parameters or {},
            tuple(param.alias for param in dependant.query_params),
            f"{event.http_method} {event.resource}",
        )
        params = dependant.body_params
        expected, files, fields = expected_media_type(params), file_fields(params), form_fields(params)
        return parse_body(dict(event.headers or {}), event.body, bool(event.is_base64_encoded), expected, files, fields)


class _CountingResolver(APIGatewayRestResolver):
    """Powertools' REST resolver, counting the 5xx answers it gives (the exception handlers' and any
    a route returns itself)."""

    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        answer = super().resolve(event, context)
        if int(answer.get("statusCode") or 0) >= 500:
            count_per_version("Answered5xx")  # a release is rolled back on it
        return answer


def current_caller(app: APIGatewayRestResolver) -> Caller:
    """The caller of the request being handled (api/access.py)."""
    return caller_from(app.current_event.raw_event.get("requestContext") or {})


def create_resolver(**kwargs: Any) -> APIGatewayRestResolver:
    """An APIGatewayRestResolver with request validation (and OpenAPI) on, errors mapped, and CORS for
    the console's origins (api/console_policy.py) when there are any."""
    origins = get_settings().console_origins
    if origins and "cors" not in kwargs:
        kwargs["cors"] = CORSConfig(
            allow_origin=origins[0],
            extra_origins=origins[1:],
            allow_headers=list(ALLOW_HEADERS),
            expose_headers=list(EXPOSE_HEADERS),
            max_age=MAX_AGE_S,
        )
    app = _CountingResolver(enable_validation=True, **kwargs)
    # Powertools builds its validation middleware on first use unless one is set (api_gateway.py,
    # `_request_validation_middleware`): ours differs only in how the body is read.
    app._request_validation_middleware = _RequestValidation()  # type: ignore[attr-defined]

    def request_id() -> str | None:
        try:
            return app.current_event.request_context.request_id
        except (AttributeError, KeyError, TypeError):
            return None

    @app.exception_handler(VisionError)
    def _domain_error(error: VisionError) -> Response:
        # Our faults and upstream faults get a stack trace; the caller's (4xx, 501) a line.
        log = logger.exception if http_status(error) >= 500 and http_status(error) != 501 else logger.info
        log("request failed", extra={"error_code": error.code, "status": http_status(error)})
        return error_response(error, request_id())

    @app.exception_handler(RequestValidationError)
    def _validation_error(error: RequestValidationError) -> Response:
        fields = _field_errors(error.errors())
        names = ", ".join(f["field"] for f in fields)
        invalid = InvalidRequest(f"Invalid request: check {names}.", details={"fields": fields})
        return error_response(invalid, request_id())

    @app.exception_handler(RequestUnsupportedContentType)
    def _unsupported_content_type(error: RequestUnsupportedContentType) -> Response:
        content_type = app.current_event.headers.get("content-type", "")
        unsupported = UnsupportedMedia(
            f"Content type '{content_type}' is not accepted here.",
            code="unsupported_content_type",
            details={"content_type": content_type},
        )
        return error_response(unsupported, request_id())

    @app.not_found
    def _route_not_found(error: NotFoundError) -> Response:
        event = app.current_event
        missing = NotFound(
            f"No route for {event.http_method} {event.path}.",
            code="route_not_found",
            details={"method": event.http_method, "path": event.path},
        )
        return error_response(missing, request_id())

    @app.exception_handler(Exception)
    def _unexpected(error: Exception) -> Response:
        logger.exception("unhandled error")
        internal = VisionError("Something went wrong on our side; it has been logged.")
        return error_response(internal, request_id())

    return app
