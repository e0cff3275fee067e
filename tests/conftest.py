"""Shared fixtures. The local stack (moto, osmem-server, Milvus Lite, the gateway) starts once per
test session, on free ports and a temporary state folder, exactly as `make run` starts it. Under
pytest-xdist (`make test`) each worker is a session with its own stack."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests import scheduling

if TYPE_CHECKING:  # imported when a test first asks for the stack: unit tests never pay for it
    from local.stack import LocalStack

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")

PHOTOS = Path(__file__).parent / "data" / "photos"
# A folder: each session's stack writes the AWS calls it recorded there as <worker>.json when the
# session ends, and the permission tests read every file in it (`make test` sets it).
RECORDED_CALLS = "LOCAL_RECORDED_CALLS"
# Set by `make test` for its permission step only: the roles' grants are read back from the stack its
# parallel run synthesized (left in RECORDED_CALLS) rather than synthesized again.
GRANTS_FROM_THIS_RUN = "LOCAL_GRANTS_FROM_THIS_RUN"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `after_recording` read what the others recorded: they run last. An xdist worker
    sees only its own share of the calls, so there they are left out; `make test` runs them after
    the parallel run, over every worker's recording."""
    recording_readers = [item for item in items if item.get_closest_marker("after_recording")]
    if recording_readers and os.environ.get("PYTEST_XDIST_WORKER"):
        config.hook.pytest_deselected(items=recording_readers)
        items[:] = [item for item in items if not item.get_closest_marker("after_recording")]
    items.sort(key=lambda item: item.get_closest_marker("after_recording") is not None)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadscope` (`make test`): a module's tests run on one worker, in order, and so does
    each folder of RUN_TOGETHER; the longest units are handed out first (tests/scheduling.py). (xdist's
    own `loadgroup` would say this with marks, but it no longer groups under pytest 9.2:
    pytest-dev/pytest-xdist#1386.)"""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    seconds = scheduling.recorded_seconds()

    class LongestUnitsFirst(LoadScopeScheduling):
        ordered = False

        def _split_scope(self, nodeid: str) -> str:
            return scheduling.unit_of(nodeid)

        def _assign_work_unit(self, node: Any) -> None:
            if not self.ordered:  # the first call comes once the whole queue is built
                scheduling.longest_first(self.workqueue, seconds)
                self.ordered = True
            super()._assign_work_unit(node)

    return LongestUnitsFirst(config, log)


_UNIT_TIMER = scheduling.UnitTimer()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # the controller (or a run without xdist)
        _UNIT_TIMER.add(report)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A parallel run writes its units' seconds (build/test-durations.json) for `make test-durations`."""
    if not os.environ.get("PYTEST_XDIST_WORKER") and session.config.getvalue("dist") == "loadscope":
        _UNIT_TIMER.write()


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    from local.stack import LocalStack

    stack = LocalStack(state_dir=tmp_path_factory.mktemp("state"), port=0, keep_snapshot=False, record_calls=True)
    stack.router.retry_delays_s = (0.05,)  # asynchronous retries in tenths of a second, not minutes
    stack.start()
    yield stack
    if os.environ.get(RECORDED_CALLS) and stack.recorder is not None:
        folder = Path(os.environ[RECORDED_CALLS])
        folder.mkdir(parents=True, exist_ok=True)
        stack.recorder.dump(folder / f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}.json")
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
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Change settings: unset the names in `unset`, set `values`, then forget what was read from the old
    ones (cached settings, AWS and provider clients, parameters and secrets): a local stack an earlier
    module left running in this worker may have read them already. Undone afterwards."""
    from aws_lambda_powertools.utilities import parameters

    from listing_vision import aws
    from listing_vision.config import get_settings
    from listing_vision.providers.clients import reset_clients

    def forget() -> None:
        get_settings.cache_clear()
        aws.reset_clients()
        reset_clients()
        parameters.clear_caches()

    def configure(unset: Iterable[str] = (), **values: str) -> None:
        for name in unset:
            monkeypatch.delenv(name, raising=False)
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        forget()

    yield configure
    monkeypatch.undo()
    forget()


@pytest.fixture
def provider_env(settings_env: Callable[..., None]) -> Callable[..., None]:
    """Point the running stack at a provider: clear the provider settings and set the given ones
    (`settings_env`, undone afterwards). A key is stored in the stack's Secrets Manager and named by
    its `…_SECRET` setting, as on AWS, so the functions read it the deployed way."""
    from listing_vision import aws
    from listing_vision.config import get_settings

    def configure(**env: str) -> None:
        values: dict[str, str] = {}
        for name, value in env.items():
            if name in KEY_SECRETS:
                secrets = aws.client("secretsmanager")
                try:
                    secrets.put_secret_value(SecretId=KEY_SECRETS[name], SecretString=value)
                except secrets.exceptions.ResourceNotFoundException:
                    secrets.create_secret(Name=KEY_SECRETS[name], SecretString=value)
                values[f"{name}_SECRET"] = KEY_SECRETS[name]
            else:
                values[name] = value
        settings_env(PROVIDER_SETTINGS, **values)
        if "IMAGE_EDIT_RATE_PER_MINUTE" in env:
            empty_token_buckets(get_settings().rate_limit_table)

    return configure


def empty_token_buckets(table: str) -> None:
    """A test that sets its own rate starts from full buckets: a schedule another test left at the
    default 5 edits a minute would otherwise hold its first edits back for up to a minute (the log
    of starts another test left is still in the old rate's window)."""
    from listing_vision import aws

    dynamodb = aws.client("dynamodb")
    for page in dynamodb.get_paginator("scan").paginate(TableName=table, ProjectionExpression="bucket_id"):
        for item in page["Items"]:
            dynamodb.delete_item(TableName=table, Key={"bucket_id": item["bucket_id"]})


@pytest.fixture(scope="session")
def photos() -> list[Path]:
    return sorted(PHOTOS.glob("*.jpg"))


@pytest.fixture
def image_server() -> Iterator[Any]:
    """A loopback OpenAI images.edit server answering each edit with a new generated image."""
    from doubles.loopback import OPENAI_IMAGE_EDITS, LoopbackServer, openai_image

    server = LoopbackServer({OPENAI_IMAGE_EDITS: lambda request: openai_image(seed=len(server.requests))}).start()
    yield server
    server.stop()


@pytest.fixture
def edit_provider(provider_env: Callable[..., None]) -> Callable[..., None]:
    """Point the stack at a loopback images.edit server as OpenAI, with a rate limit too generous to
    wait on; `settings` add to that or override it (a concurrency, retries, a quota)."""

    def configure(server: Any, **settings: str) -> None:
        provider_env(
            OPENAI_API_KEY="sk-test",
            OPENAI_BASE_URL=f"{server.url}/v1",
            **{"IMAGE_EDIT_RATE_PER_MINUTE": "6000", "IMAGE_EDIT_BURST": "50", **settings},
        )

    return configure
