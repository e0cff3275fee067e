"""Fixtures shared by the integration modules."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from doubles.loopback import OPENAI_CHAT, LoopbackServer, openai_completion
from tests.integration.test_captions import GOOD


@pytest.fixture
def openai_chat(provider_env: Callable[..., None]) -> Iterator[LoopbackServer]:
    """The loopback OpenAI chat server as the caption provider (a good caption unless scripted)."""
    server = LoopbackServer({OPENAI_CHAT: lambda request: openai_completion(json.dumps(GOOD))}).start()
    provider_env(OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=f"{server.url}/v1")
    yield server
    server.stop()
