"""OpenAI and Anthropic clients: keys, timeouts, retries, and one mapping of their errors.

Keys come from the environment locally (OPENAI_API_KEY, ANTHROPIC_API_KEY) and from Secrets
Manager on AWS (…_API_KEY_SECRET, read once per process with Powertools parameters). Retries are
the SDKs' own (429 honouring retry-after, 5xx, timeouts), bounded by PROVIDER_MAX_RETRIES and
PROVIDER_TIMEOUT_S so an API call answers inside API Gateway's 29 s. The SDKs are imported when a
client is first made (each takes about a second to import), so functions that never call a
provider, and cold starts of those that do, do not pay for them.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from listing_vision.config import get_settings
from listing_vision.errors import InvalidRequest, ProviderUnavailable, RateLimited, UpstreamError, VisionError
from listing_vision.redaction import register_secret

if TYPE_CHECKING:
    import anthropic
    import openai

_lock = threading.Lock()
_clients: dict[tuple[Any, ...], Any] = {}


def _secret(name: str | None) -> str | None:
    if not name:
        return None
    from listing_vision import aws

    value = aws.secret(name, max_age=3600)
    register_secret(value)
    return value


def openai_key() -> str | None:
    settings = get_settings()
    register_secret(settings.openai_api_key)
    return settings.openai_api_key or _secret(settings.openai_api_key_secret)


def anthropic_key() -> str | None:
    settings = get_settings()
    register_secret(settings.anthropic_api_key)
    return settings.anthropic_api_key or _secret(settings.anthropic_api_key_secret)


def _cached(cache_key: tuple[Any, ...], build: Any) -> Any:
    with _lock:
        if cache_key not in _clients:
            _clients[cache_key] = build()
        return _clients[cache_key]


def openai_client(timeout_s: float | None = None) -> openai.OpenAI:
    """The OpenAI client; `timeout_s` overrides PROVIDER_TIMEOUT_S (image edits take minutes)."""
    import openai

    settings = get_settings()
    key = openai_key()
    if not key:
        raise ProviderUnavailable("No OpenAI key is configured.", code="provider_unavailable")
    timeout = timeout_s or settings.provider_timeout_s
    return _cached(  # type: ignore[no-any-return]
        ("openai", key, settings.openai_base_url, timeout),
        lambda: openai.OpenAI(
            api_key=key, base_url=settings.openai_base_url, timeout=timeout, max_retries=settings.provider_max_retries
        ),
    )


def anthropic_client() -> anthropic.Anthropic:
    import anthropic

    settings = get_settings()
    key = anthropic_key()
    if not key:
        raise ProviderUnavailable("No Anthropic key is configured.", code="provider_unavailable")
    return _cached(  # type: ignore[no-any-return]
        ("anthropic", key, settings.anthropic_base_url, settings.provider_timeout_s),
        lambda: anthropic.Anthropic(
            api_key=key,
            base_url=settings.anthropic_base_url,
            timeout=settings.provider_timeout_s,
            max_retries=settings.provider_max_retries,
        ),
    )


def reset_clients() -> None:
    with _lock:
        _clients.clear()


def _error_code(error: Any) -> str | None:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return inner.get("code") or inner.get("type")
    return getattr(error, "code", None)


def provider_error(error: Exception, provider: str) -> VisionError:
    """The domain error for an SDK exception (after the SDK's own retries)."""
    import anthropic
    import openai

    code = _error_code(error)
    details = {"provider": provider}
    if code == "insufficient_quota":
        return ProviderUnavailable(
            f"The {provider} account is out of quota.", code="insufficient_quota", details=details
        )
    if code in ("content_policy_violation", "moderation_blocked", "content_filter"):
        return InvalidRequest(
            f"{provider} refused the image under its content policy.", code="content_policy_refusal", details=details
        )
    if isinstance(
        error,
        (
            openai.AuthenticationError,
            anthropic.AuthenticationError,
            openai.PermissionDeniedError,
            anthropic.PermissionDeniedError,
        ),
    ):
        return ProviderUnavailable(
            f"{provider} rejected the configured key.", code="provider_auth_failed", details=details
        )
    if isinstance(error, (openai.RateLimitError, anthropic.RateLimitError)):
        return RateLimited(
            f"{provider} is rate limiting us; try again shortly.", code="provider_rate_limited", details=details
        )
    if isinstance(error, (openai.APITimeoutError, anthropic.APITimeoutError)):
        return UpstreamError(f"{provider} did not answer in time.", code="provider_timeout", details=details)
    if isinstance(error, (openai.APIConnectionError, anthropic.APIConnectionError)):
        return UpstreamError(f"{provider} could not be reached.", code="provider_unreachable", details=details)
    if getattr(error, "status_code", 0) == 529 or code == "overloaded_error":
        return UpstreamError(f"{provider} is overloaded.", code="provider_overloaded", details=details)
    return UpstreamError(f"{provider} failed: {type(error).__name__}.", code="provider_error", details=details)


def sdk_errors() -> tuple[type[Exception], ...]:
    """The base errors of both SDKs (imported by then: a client was made before any call)."""
    import anthropic
    import openai

    return (openai.OpenAIError, anthropic.AnthropicError)
