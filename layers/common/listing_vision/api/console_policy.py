"""What a browser may do with the review console and the API, declared once for the local stack and AWS.

The Content-Security-Policy the console's files go out with: the local gateway sends it
(local/console_site.py) and on AWS CloudFront's response-headers policy does (infra/constructs/console.py),
built by the same function. Scripts, styles and API calls from the console's own origin only (no inline
script or style, no eval), images from there, the photos' origins and the browser's own copy of an
upload (blob:); on AWS the API and the sign-in (Cognito's token endpoint) are other origins, named in
`connect-src`.

CORS: the API answers browsers on the console's origins only (`CONSOLE_ORIGINS`: on AWS the console's
CloudFront origin and the stage's `console_origins`). A preflight (OPTIONS) from one of them is answered
with the methods and headers below; any answer to one of them carries `Access-Control-Allow-Origin` naming
it; a request from any other origin gets no CORS header at all, so its browser keeps the answer from it.
Every answer varies on `Origin`. The functions' answers (Powertools' CORS, api/resolver.py), the local
gateway's own answers (local/gateway.py) and API Gateway's preflights and gateway responses (infra) all
read these constants.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# What the console's requests carry: a client key, a person's token, JSON bodies, idempotent retries,
# `Prefer: respond-async` on generation.
ALLOW_HEADERS: tuple[str, ...] = ("Authorization", "Content-Type", "Idempotency-Key", "Prefer", "x-api-key")
ALLOW_METHODS: tuple[str, ...] = ("GET", "POST", "PUT", "PATCH", "DELETE")
EXPOSE_HEADERS: tuple[str, ...] = ("Location", "Retry-After")
MAX_AGE_S = 600  # how long a browser may reuse a preflight's answer


def content_security_policy(image_origins: Iterable[str] = (), connect_origins: Iterable[str] = ()) -> str:
    images = " ".join(("'self'", "blob:", *image_origins))
    connect = " ".join(("'self'", *connect_origins))
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src {images}",
            f"connect-src {connect}",
            "form-action 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        )
    )


# The console's other security headers, beside its CSP (CloudFront sends them from its managed options).
REFERRER_POLICY = "no-referrer"


def allowed_origin(headers: Mapping[str, str], origins: Iterable[str]) -> str | None:
    """The request's Origin when it is one of the console's origins, else None."""
    origin = next((value for name, value in headers.items() if name.lower() == "origin"), None)
    return origin if origin and origin in set(origins) else None


def cors_headers(headers: Mapping[str, str], origins: Iterable[str]) -> dict[str, str]:
    """The CORS headers of an answer to a request with these headers: none unless its origin is allowed."""
    origin = allowed_origin(headers, origins)
    if origin is None:
        return {"Vary": "Origin"}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Expose-Headers": ",".join(EXPOSE_HEADERS),
        "Vary": "Origin",
    }


def preflight_headers(headers: Mapping[str, str], origins: Iterable[str]) -> dict[str, str]:
    """The answer to a preflight (OPTIONS): its CORS headers, and what the browser may send, if allowed."""
    answer = cors_headers(headers, origins)
    if "Access-Control-Allow-Origin" in answer:
        answer.update(
            {
                "Access-Control-Allow-Methods": ",".join(ALLOW_METHODS),
                "Access-Control-Allow-Headers": ",".join(ALLOW_HEADERS),
                "Access-Control-Max-Age": str(MAX_AGE_S),
            }
        )
    return answer
