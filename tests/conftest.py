"""Shared fixtures. The local stack (moto, osmem-server, Milvus Lite, the gateway) starts once per
test session, on free ports and a temporary state folder, exactly as `make run` starts it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from local.stack import LocalStack

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")

PHOTOS = Path(__file__).parent / "data" / "photos"


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    stack = LocalStack(state_dir=tmp_path_factory.mktemp("state"), port=0, keep_snapshot=False)
    stack.start()
    yield stack
    stack.stop()


PROVIDER_SETTINGS = (
    "CAPTION_PROVIDER",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "PROVIDER_MAX_RETRIES",
    "PROVIDER_TIMEOUT_S",
    "IMAGE_EDIT_RATE_PER_MINUTE",
    "IMAGE_EDIT_BURST",
    "IMAGE_EDIT_CONCURRENCY",
)


@pytest.fixture
def provider_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Point the running stack at a provider: settings come from the environment, so clear the
    provider settings, set the given ones and drop cached settings and clients; undone afterwards."""
    from listing_vision.config import get_settings
    from listing_vision.providers.clients import reset_clients

    def configure(**env: str) -> None:
        for name in PROVIDER_SETTINGS:
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        reset_clients()

    yield configure
    monkeypatch.undo()
    get_settings.cache_clear()
    reset_clients()


@pytest.fixture(scope="session")
def photos() -> list[Path]:
    return sorted(PHOTOS.glob("*.jpg"))
