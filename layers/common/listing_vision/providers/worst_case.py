"""How long one model answer may take at most, from the provider settings: what the API functions'
timeouts are checked against (infra/constructs/service_function.py), so a paid call never outlives
API Gateway's wait."""

from __future__ import annotations

# One model answer takes at most two requests: the reply, and one repair (providers/structured.py).
PROVIDER_REQUESTS_PER_ANSWER = 2
# Between tries the SDKs wait up to 8 s, or what a 429's retry-after says, up to 2 minutes.
PROVIDER_RETRY_WAIT_MAX_S = 120.0


def provider_worst_case_s(timeout_s: float, max_retries: int) -> float:
    """The longest one model answer may take with these settings (PROVIDER_TIMEOUT_S,
    PROVIDER_MAX_RETRIES): each request tried 1 + max_retries times, each try up to the timeout, and
    the SDK's wait between tries. Only max_retries=0 bounds it by the timeout alone."""
    per_request = (1 + max_retries) * timeout_s + max_retries * PROVIDER_RETRY_WAIT_MAX_S
    return PROVIDER_REQUESTS_PER_ANSWER * per_request
