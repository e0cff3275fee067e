"""Secrets kept out of everything the platform writes: log lines, error bodies, stored messages.

Two nets. Every secret value the code reads (provider keys, the Milvus token) is registered here
when read, and replaced wherever it appears. Key-shaped tokens are replaced too, whoever's they
are: a provider's error that echoes a key back, or a caller's API key in a message. The logger's
formatter (`observability.py`) and the one error shape (`errors.py`) pass their text through
`redact`, so a traceback that quotes an SDK error cannot carry a key into the logs.
"""

from __future__ import annotations

import re
import threading

REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 8  # shorter values would redact ordinary words
KEY_SHAPES = re.compile(
    r"sk-[A-Za-z0-9_\-]{16,}"  # OpenAI and Anthropic keys (sk-…, sk-proj-…, sk-ant-…)
    r"|lvk_[A-Za-z0-9_\-]{16,}"  # this platform's API keys (listing_vision.api.clients)
)

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Redact this value wherever it appears from now on (in this process)."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)  # longest first: one secret may contain another
    for secret in known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return KEY_SHAPES.sub(REDACTED, text)
