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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `after_recording` read what the others recorded: they run last."""
    items.sort(key=lambda item: item.get_closest_marker("after_recording") is not None)


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    stack = LocalStack(state_dir=tmp_path_factory.mktemp("state"), port=0, keep_snapshot=False, record_calls=True)
    stack.router.retry_delays_s = (0.05,)  # asynchronous retries in tenths of a second, not minutes
    stack.start()
    yield stack
    if os.environ.get("LOCAL_RECORDED_CALLS") and stack.recorder is not None:
        stack.recorder.dump(Path(os.environ["LOCAL_RECORDED_CALLS"]))
    stack.stop()


PROVIDER_SETTINGS = (
    "CAPTION_PROVIDER",
    "PHRASE_CLASSIFIER",
    "PHRASE_CLASSIFY_BATCH",
    "OPENAI_API_KEY",
    "OPENAI_API_KEY_SECRET",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_API_KEY_SECRET",
    "ANTHROPIC_BASE_URL",
    "PROVIDER_MAX_RETRIES",
    "PROVIDER_TIMEOUT_S",
    "IMAGE_EDIT_RATE_PER_MINUTE",
    "IMAGE_EDIT_BURST",
    "IMAGE_EDIT_CONCURRENCY",
)


# Where the provider keys live in Secrets Manager (the names the infrastructure tests deploy with).
KEY_SECRETS = {"OPENAI_API_KEY": "openai-key", "ANTHROPIC_API_KEY": "anthropic-key"}


@pytest.fixture
def provider_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Point the running stack at a provider: settings come from the environment, so clear the
    provider settings, set the given ones and drop cached settings, clients and secrets; undone
    afterwards. A key is stored in the stack's Secrets Manager and named by its `…_SECRET` setting,
    as on AWS, so the functions read it the deployed way."""
    from aws_lambda_powertools.utilities import parameters

    from listing_vision import aws
    from listing_vision.config import get_settings
    from listing_vision.providers.clients import reset_clients

    def configure(**env: str) -> None:
        for name in PROVIDER_SETTINGS:
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            if name in KEY_SECRETS:
                secrets = aws.client("secretsmanager")
                try:
                    secrets.put_secret_value(SecretId=KEY_SECRETS[name], SecretString=value)
                except secrets.exceptions.ResourceNotFoundException:
                    secrets.create_secret(Name=KEY_SECRETS[name], SecretString=value)
                monkeypatch.setenv(f"{name}_SECRET", KEY_SECRETS[name])
            else:
                monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        reset_clients()
        parameters.clear_caches()

    yield configure
    monkeypatch.undo()
    get_settings.cache_clear()
    reset_clients()
    parameters.clear_caches()


@pytest.fixture(scope="session")
def photos() -> list[Path]:
    return sorted(PHOTOS.glob("*.jpg"))
